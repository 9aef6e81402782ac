"""Device entry of the ESP32-S3-DevKitC-1 (copied to the filesystem root as main.py).

The ESP32-DevKitC entry (Wi-Fi from /wifi.json, meter from /meter.json, state in
/data, watchdog) with this board's class.
"""
from boards.esp32_devkitc.main import main
from boards.esp32_s3_devkitc.board import Esp32S3Board

main(Esp32S3Board)
