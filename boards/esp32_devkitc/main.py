"""Device entry of the ESP32-DevKitC (copied to the filesystem root as main.py).

Connects Wi-Fi from /wifi.json ({"ssid": ..., "password": ...}), starts the
watchdog, builds the board with its meter (/meter.json: {"type": "s0"|"modbus",
...}, S0 by default) and runs the application until it asks for a reboot.
Charger settings live in /data (settings.json and the other state files).
Other ESP32 boards run the same entry with their board class: main(TheirBoard).
"""
import asyncio
import json

import machine
import network

from boards.esp32_devkitc.board import Esp32Board
from firmware import log
from firmware.app import App

STATE_DIR = "/data"
HTTP_PORT = 80
WDT_MS = 10000
WIFI_TIMEOUT_MS = 20000


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None  # missing or unreadable: fall back, never stop the boot


def connect_wifi(conf):
    """Start connecting; the application runs (safely, offline) while it does."""
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if conf and conf.get("ssid") and not sta.isconnected():
        sta.connect(conf["ssid"], conf.get("password", ""))
    return sta


async def wait_wifi(sta, board, timeout_ms=WIFI_TIMEOUT_MS):
    # The OCPP session retries on its own; this only logs the outcome once.
    waited = 0
    while not sta.isconnected() and waited < timeout_ms:
        board.feed_watchdog()
        await asyncio.sleep_ms(200)
        waited += 200
    if sta.isconnected():
        log.info("Wi-Fi connected, address " + sta.ifconfig()[0])
    else:
        log.error("Wi-Fi not connected after %d ms" % timeout_ms)


def make_meter(board, conf):
    conf = conf or {}
    if conf.get("type") == "modbus":
        from firmware.evse.modbus import ModbusMeter
        uart, de = board.modbus_uart(conf.get("baudrate", 9600))
        return ModbusMeter(uart, slave=conf.get("slave", 1), de=de)
    from firmware.evse.s0 import S0Meter
    return S0Meter(board.s0_pin(), impulses_per_kwh=conf.get("impulses_per_kwh", 1000))


def main(board_class=Esp32Board):
    sta = connect_wifi(_read_json("/wifi.json"))
    board = board_class()
    meter = make_meter(board, _read_json("/meter.json"))
    board.drivers.meter = meter
    board.start_watchdog(WDT_MS)
    while True:
        app = App(board, STATE_DIR)
        if hasattr(meter, "run"):
            app.tasks.append(meter.run)
        if not sta.isconnected():
            app.tasks.append(lambda: wait_wifi(sta, board))
        reason = asyncio.run(app.main("0.0.0.0", HTTP_PORT))
        if reason == "hard":
            machine.reset()  # outputs return to their safe levels on reset


if __name__ == "__main__":  # run as the device's main.py; imported by other boards' entries
    main()
