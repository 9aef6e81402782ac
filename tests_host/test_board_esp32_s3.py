"""The ESP32-S3-DevKitC-1 board: the ESP32-DevKitC board code with its own pin map, its bundle and entry."""
import re
import subprocess
import sys

import pytest

from host_tools import image
from tests_host.fakes import FakeMachine
from tests_host.mpy import MICROPYTHON, ROOT
from tests_host.test_image import FAKE_MACHINE

BOARD_MODULES = ("boards.esp32_devkitc.board", "boards.esp32_s3_devkitc.board")


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setitem(sys.modules, "machine", FakeMachine)
    for m in BOARD_MODULES:
        sys.modules.pop(m, None)
    import boards.esp32_s3_devkitc.board as mod
    yield mod
    for m in BOARD_MODULES:
        sys.modules.pop(m, None)


def test_s3_board_builds_every_driver_on_its_own_pins(s3):
    from boards.esp32_s3_devkitc import pins
    b = s3.Esp32S3Board()
    d = b.drivers
    assert (d.contactor.gpio, d.phase_relay.gpio, d.lock.gpio, d.led.gpio) == (
        pins.CONTACTOR, pins.PHASE_RELAY, pins.LOCK, pins.LED)
    assert d.pilot_pwm.pin.gpio == pins.CP_PWM and d.pilot_adc.adc.pin.gpio == pins.CP_ADC
    assert d.rcm._pin.gpio == pins.RCM and b.s0_pin()._pin.gpio == pins.S0
    uart, de = b.modbus_uart()
    assert (uart.id, uart.tx, uart.rx, de.gpio) == (pins.MODBUS_UART, pins.MODBUS_TX, pins.MODBUS_RX, pins.MODBUS_DE)
    assert b.model == "OpenWallbox-ESP32-S3"


def test_s3_board_leaves_the_devkitc_board_on_its_pins(s3):
    from boards.esp32_devkitc import pins
    from boards.esp32_devkitc.board import Esp32Board
    s3.Esp32S3Board()
    assert Esp32Board().drivers.contactor.gpio == pins.CONTACTOR != s3.pins.CONTACTOR


def test_s3_pins_avoid_strapping_flash_psram_and_usb_pins():
    from boards.esp32_s3_devkitc import pins
    used = [v for k, v in vars(pins).items() if k.isupper() and isinstance(v, int) and not isinstance(v, bool)
            and k not in ("MODBUS_UART", "CP_ZERO_UV", "CP_UV_PER_V", "ADC_FULL_UV")]
    assert len(used) == len(set(used)) == 14
    assert not set(used) & ({0, 3, 45, 46, 19, 20, 43, 44} | set(range(26, 38)))
    assert pins.CP_ADC in range(1, 11) and pins.TEMP_ADC in range(1, 11)  # ADC1


def test_s3_readme_wiring_table_matches_pins():
    from boards.esp32_s3_devkitc import pins
    text = (ROOT / "boards" / "esp32_s3_devkitc" / "README.md").read_text()
    rows = {m.group(1).strip(): int(m.group(2)) for m in re.finditer(r"^\| ([^|]+) \| (\d+)", text, re.M)}
    assert rows == {"CP PWM": pins.CP_PWM, "CP ADC": pins.CP_ADC, "Contactor": pins.CONTACTOR,
                    "Contactor feedback": pins.CONTACTOR_FB, "Phase relay": pins.PHASE_RELAY, "RCM input": pins.RCM,
                    "S0 input": pins.S0, "Modbus TX": pins.MODBUS_TX, "Modbus RX": pins.MODBUS_RX,
                    "Modbus DE/RE": pins.MODBUS_DE, "Cable lock": pins.LOCK, "Lock feedback": pins.LOCK_FB,
                    "Temperature": pins.TEMP_ADC, "Status LED": pins.LED}


@pytest.mark.micropython
def test_s3_bundle_carries_the_reused_board_code_and_its_entry_starts_the_s3_board(tmp_path):
    out = tmp_path / "bundle"
    image.build_bundle("esp32_s3_devkitc", out)
    for rel in ("boards/esp32_devkitc/board.mpy", "boards/esp32_devkitc/pins.mpy", "boards/esp32_devkitc/main.mpy",
                "boards/esp32_s3_devkitc/board.mpy", "boards/esp32_s3_devkitc/pins.mpy", "main.py"):
        assert (out / rel).is_file(), rel
    assert not (out / "boards" / "host").exists()
    # The entry on MicroPython with stand-ins for machine and network, and a main() that records its board.
    (tmp_path / "machine.py").write_text(FAKE_MACHINE)
    (tmp_path / "network.py").write_text("")
    code = ("import sys\nimport boards.esp32_devkitc.main as m\n"
            "m.main = lambda cls=None: print('BOARD', cls.__name__, cls.PINS.CONTACTOR)\n"
            "exec(open('%s').read())\n" % (out / "main.py"))
    env = {"MICROPYPATH": ":".join([".frozen", str(out), str(tmp_path)]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=512K", "-c", code], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["BOARD", "Esp32S3Board", "5"]
