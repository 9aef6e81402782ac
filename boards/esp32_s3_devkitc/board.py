"""ESP32-S3-DevKitC-1 board: the ESP32-DevKitC board code with this board's pin map.

Only imported on the device (the only place that imports machine).
"""
from boards.esp32_devkitc.board import Esp32Board
from boards.esp32_s3_devkitc import pins


class Esp32S3Board(Esp32Board):
    model = "OpenWallbox-ESP32-S3"
    PINS = pins
