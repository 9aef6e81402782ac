"""make deploy / make flash: the bundle copied to a (virtual) board with mpremote, MicroPython and
the filesystem image written with esptool."""
import json
import os
import pty
import shutil
import subprocess
import sys
import tty

import pytest

from host_tools import deploy, flash, image
from tests_host.fake_firmware import TABLE_4MB, make_firmware
from tests_host.mpy import ROOT
from tests_host.virtual_board import VirtualBoard

pytestmark = pytest.mark.micropython


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    # Built in a temp folder: build/ belongs to make image and its own test.
    out = tmp_path_factory.mktemp("build") / "esp32_devkitc" / "bundle"
    image.build_bundle("esp32_devkitc", out)
    return out


@pytest.fixture
def board(tmp_path):
    root = tmp_path / "board"
    root.mkdir()
    b = VirtualBoard(root, repo_on_path=False)
    b.root = root
    yield b
    b.close()


def run_tool(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "host_tools", *args], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=timeout)


def on_board(board):
    """{relative path: (bytes, mtime_ns)} of every file on the board."""
    return {p.relative_to(board.root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in board.root.rglob("*") if p.is_file()}


def test_deploy_copies_every_bundle_file_to_the_board(board, bundle):
    out = run_tool("deploy", "--port", board.port, "--bundle", str(bundle))
    assert out.returncode == 0, out.stdout + out.stderr
    manifest = json.loads((bundle.parent / "bundle-manifest.json").read_text())
    files = on_board(board)
    assert sorted(files) == sorted(rel for rel, _ in manifest["files"])
    for rel, size in manifest["files"]:
        assert files[rel][0] == (bundle / rel).read_bytes(), rel
        assert len(files[rel][0]) == size
    n = len(manifest["files"])
    assert "copied  %d of %d files" % (n, n) in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("done    in ")


def test_a_second_deploy_copies_nothing(board, bundle):
    assert run_tool("deploy", "--port", board.port, "--bundle", str(bundle)).returncode == 0
    before = on_board(board)
    out = run_tool("deploy", "--port", board.port, "--bundle", str(bundle))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "copied  0 of %d files, 0 bytes" % len(before) in out.stdout and "removed" not in out.stdout
    assert on_board(board) == before  # not one file rewritten


def test_a_changed_file_is_copied_alone(board, bundle, tmp_path):
    mine = tmp_path / "build" / "bundle"
    shutil.copytree(bundle, mine)
    shutil.copy(bundle.parent / "bundle-manifest.json", mine.parent)
    assert run_tool("deploy", "--port", board.port, "--bundle", str(mine)).returncode == 0
    before = on_board(board)
    changed = mine / "firmware" / "version.mpy"
    changed.write_bytes(changed.read_bytes() + b"\0")
    out = run_tool("deploy", "--port", board.port, "--bundle", str(mine))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "copied  1 of %d files, %d bytes" % (len(before), changed.stat().st_size) in out.stdout
    assert out.stdout.count("firmware/version.mpy") == 1
    after = on_board(board)
    assert after["firmware/version.mpy"][0] == changed.read_bytes()
    assert {k: v for k, v in after.items() if k != "firmware/version.mpy"} == {
        k: v for k, v in before.items() if k != "firmware/version.mpy"}


def test_stale_files_are_removed_and_the_state_is_untouched(board, bundle):
    stale = ["boards/__init__.py", "firmware/app.py", "firmware/gone.mpy", "firmware/old/mod.mpy",
             "boards/other_board/board.mpy", "main.mpy"]
    kept = {"data/settings.json": b'{"amp": 9}', "data/txq/1.json": b"[]", "data/certs/ca.pem": b"PEM",
            "wifi.json": b'{"ssid": "x"}', "meter.json": b'{"type": "s0"}', "boot.py": b"# boot",
            "notes.txt": b"mine"}
    for rel, data in [(r, b"stale") for r in stale] + list(kept.items()):
        (board.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (board.root / rel).write_bytes(data)
    times = {rel: (board.root / rel).stat().st_mtime_ns for rel in kept}
    out = run_tool("deploy", "--port", board.port, "--bundle", str(bundle))
    assert out.returncode == 0, out.stdout + out.stderr
    for rel in stale:
        assert not (board.root / rel).exists(), rel
    assert not (board.root / "firmware" / "old").exists() and not (board.root / "boards" / "other_board").exists()
    for rel, data in kept.items():
        assert (board.root / rel).read_bytes() == data and (board.root / rel).stat().st_mtime_ns == times[rel]
    assert "removed boards/__init__.py, " in out.stdout
    files = sorted(p.relative_to(board.root).as_posix() for p in board.root.rglob("*") if p.is_file())
    assert files == sorted(set(deploy.bundle_files(bundle)) | set(kept))


# A charger stand-in: a machine module that records what the pins are set to, and a board class
# with its pin map in the program's globals, as a device's main.py leaves them.
CHARGER_PRELUDE = """import sys
class _Machine:
    log = []
    class Pin:
        OUT = 3
        def __init__(self, gpio, mode=-1, value=None):
            self.gpio = gpio
            if value is not None:
                _Machine.log.append(('pin', gpio, value))
    class PWM:
        def __init__(self, pin, freq=0, duty_u16=0):
            _Machine.log.append(('pwm', pin.gpio, freq, duty_u16))
sys.modules['machine'] = _Machine
class _Pins:
    CP_PWM = 25
    CONTACTOR = 26
class ChargerBoard:
    PINS = _Pins
"""


def test_deploy_puts_the_interrupted_chargers_outputs_in_their_safe_state(board, bundle):
    board.start_program("charging", CHARGER_PRELUDE)
    out = run_tool("deploy", "--port", board.port, "--bundle", str(bundle))
    assert out.returncode == 0, out.stdout + out.stderr
    assert deploy.SAFE_NOTE in out.stdout
    got = board.mpremote("exec", "print(sys.modules['machine'].log)")
    assert got.stdout.strip() == "[('pwm', 25, 1000, 65535), ('pin', 26, 0)]"


def test_deploy_to_a_board_that_does_not_answer_says_so(tmp_path, bundle):
    master, slave = pty.openpty()  # a port with nothing answering on it
    try:
        tty.setraw(slave)
        out = run_tool("deploy", "--port", os.ttyname(slave), "--bundle", str(bundle))
    finally:
        os.close(master)
        os.close(slave)
    assert out.returncode == 1
    assert "does not answer (no MicroPython prompt" in out.stderr and "Traceback" not in out.stderr


def test_deployed_bundle_imports_on_the_board_from_its_own_files(board, bundle):
    assert run_tool("deploy", "--port", board.port, "--bundle", str(bundle)).returncode == 0
    out = board.mpremote("exec", "import firmware.app, microdot, os; print(firmware.app.__file__); "
                                 "print(os.getcwd())")
    assert out.returncode == 0, out.stderr
    path, cwd = out.stdout.strip().splitlines()[-2:]
    assert path.endswith("firmware/app.mpy") and os.path.samefile(os.path.join(cwd, path), board.root / path)


def test_deploy_writes_wifi_json_and_applies_settings_through_the_config_module(board, bundle):
    out = run_tool("deploy", "--port", board.port, "--bundle", str(bundle), "--wifi", "home net:pa:ss",
                   "--set", "ocpph=42", "--set", 'ocppu="ws://csms.local/ocpp/CP-1"', "--set", "ocppe=true")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((board.root / "wifi.json").read_text()) == {"ssid": "home net", "password": "pa:ss"}
    got = board.mpremote("exec", "from firmware import config; config.open('data'); "
                                 "print(config.get('ocpph'), config.get('HeartbeatInterval'), config.get('ocppe'))")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip().splitlines()[-1] == "42 42 True"
    assert json.loads((board.root / "data" / "settings.json").read_text())["ocppu"] == "ws://csms.local/ocpp/CP-1"
    assert "set     ocpph = 42: ok" in out.stdout


def test_deploy_reports_a_refused_setting_and_fails(board, bundle):
    out = run_tool("deploy", "--port", board.port, "--bundle", str(bundle), "--set", "amp=40", "--set", "ocpph=60")
    assert out.returncode == 1
    assert "amp = 40: amp: value 40 out of range" in out.stdout
    assert "set     ocpph = 60: ok" in out.stdout
    assert "some settings were refused" in out.stderr and "Traceback" not in out.stderr


def test_deploy_refuses_a_setting_that_is_not_json_before_touching_the_board(tmp_path):
    out = run_tool("deploy", "--port", str(tmp_path / "no-board"), "--set", "fna=garage")
    assert out.returncode == 1
    assert "is not JSON" in out.stderr and "Traceback" not in out.stderr


def test_deploy_to_a_missing_port_fails_with_a_clear_message(tmp_path, bundle):
    out = run_tool("deploy", "--port", str(tmp_path / "no-board"), "--bundle", str(bundle))
    assert out.returncode == 1
    assert out.stderr.startswith("deploy: no board at %s: the port does not exist" % (tmp_path / "no-board"))
    assert "Traceback" not in out.stderr


def test_deploy_of_an_unknown_board_lists_the_known_ones(tmp_path):
    out = run_tool("deploy", "--port", str(tmp_path / "no-board"), "--board", "esp32_nosuch")
    assert out.returncode == 1
    assert "no board 'esp32_nosuch' under boards/; known boards: " in out.stderr and "esp32_devkitc" in out.stderr
    assert "Traceback" not in out.stderr


def test_bundle_is_stale_when_missing_or_older_than_its_sources(bundle, tmp_path):
    assert deploy.is_stale("esp32_devkitc", tmp_path / "nothing" / "bundle")
    assert not deploy.is_stale("esp32_devkitc", bundle)
    manifest = bundle.parent / "bundle-manifest.json"
    st = manifest.stat()
    try:
        os.utime(manifest, (st.st_atime, (ROOT / "firmware" / "app.py").stat().st_mtime - 10))
        assert deploy.is_stale("esp32_devkitc", bundle)
    finally:
        os.utime(manifest, (st.st_atime, st.st_mtime))
    assert deploy.is_stale("esp32_devkitc", bundle, fs=True)  # no fs.img next to it


@pytest.fixture
def firmware(tmp_path):
    # A MicroPython-like ESP32 .bin: bootloader at 0x1000, partition table at 0x8000, app at 0x10000.
    return make_firmware(tmp_path / "ESP32_GENERIC-SPIRAM-v1.25.0.bin")


@pytest.fixture
def fs_img(tmp_path):
    img = tmp_path / "fs.img"
    img.write_bytes(bytes(4096))
    return img


def test_flash_dry_run_prints_the_esptool_command_with_the_offsets_of_the_firmwares_table(firmware, fs_img):
    out = run_tool("flash", "--port", "/dev/ttyUSB7", "--firmware", str(firmware), "--fs-image", str(fs_img),
                   "--dry-run")
    assert out.returncode == 0, out.stderr
    cmd = out.stdout.strip().splitlines()[-1].split()
    assert cmd[1:] == ["-m", "esptool", "--chip", "esp32", "--port", "/dev/ttyUSB7", "--baud", "460800",
                       "write-flash", "0x1000", str(firmware), "0x200000", str(fs_img)]


def test_flash_offsets_follow_the_partition_table_not_a_fixed_layout(tmp_path, fs_img):
    rows = [r if r[0] != "vfs" else ("vfs", 1, 0x81, 0x300000, 0x100000) for r in TABLE_4MB]
    fw = make_firmware(tmp_path / "custom.bin", rows=rows)
    out = run_tool("flash", "--port", "/dev/ttyUSB7", "--firmware", str(fw), "--fs-image", str(fs_img), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].split()[-4:] == ["0x1000", str(fw), "0x300000", str(fs_img)]


def test_flash_of_an_s3_board_writes_at_0(tmp_path):
    fw = make_firmware(tmp_path / "ESP32_GENERIC_S3.bin", chip="esp32s3")
    out = run_tool("flash", "--port", "/dev/ttyACM0", "--board", "esp32_s3_devkitc", "--firmware", str(fw), "--no-fs",
                   "--dry-run")
    assert out.returncode == 0, out.stderr
    cmd = out.stdout.strip().splitlines()[-1].split()
    assert cmd[3:5] == ["--chip", "esp32s3"] and cmd[-2:] == ["0x0", str(fw)]


def test_flash_refuses_firmware_for_another_chip_than_the_boards(tmp_path):
    fw = make_firmware(tmp_path / "ESP32_GENERIC_S3.bin", chip="esp32s3")
    out = run_tool("flash", "--port", "/dev/ttyUSB0", "--firmware", str(fw), "--dry-run")
    assert out.returncode == 1
    assert "is MicroPython for esp32s3; board esp32_devkitc has an esp32" in out.stderr


def test_flash_command_is_one_esptool_accepts(firmware, fs_img):
    cmd = flash.esptool_command("/dev/ttyUSB0", "esp32", [(0x1000, firmware), (0x200000, fs_img)], erase=True)
    i = cmd.index("write-flash")
    top = subprocess.run(cmd[:3] + ["--help"], capture_output=True, text=True, timeout=60).stdout
    sub = subprocess.run(cmd[:3] + ["write-flash", "--help"], capture_output=True, text=True, timeout=60).stdout
    for opt in cmd[3:i:2]:
        assert opt in top, opt
    assert "--erase-all" in sub and "<address> <filename>" in sub
    assert cmd[i + 1:] == ["--erase-all", "0x1000", str(firmware), "0x200000", str(fs_img)]


def test_flash_without_firmware_explains_where_to_get_micropython(tmp_path):
    out = run_tool("flash", "--port", "/dev/ttyUSB0", "--board", "esp32_s3_devkitc", "--dry-run")
    if (ROOT / "build" / "esp32_s3_devkitc" / "flash.json").exists():
        pytest.skip("a flash.bin was made for this board")
    assert out.returncode == 2
    assert "micropython.org/download" in out.stderr and "SPIRAM" in out.stderr and "MICROPYTHON_BIN=" in out.stderr


def test_flash_refuses_a_missing_or_foreign_firmware_file(tmp_path):
    out = run_tool("flash", "--port", "/dev/ttyUSB0", "--firmware", str(tmp_path / "nope.bin"), "--dry-run")
    assert out.returncode == 1 and "does not exist" in out.stderr
    (tmp_path / "page.bin").write_text("<html>")
    out = run_tool("flash", "--port", "/dev/ttyUSB0", "--firmware", str(tmp_path / "page.bin"), "--dry-run")
    assert out.returncode == 1 and "is not an ESP32 firmware image" in out.stderr and "Traceback" not in out.stderr
    app_only = tmp_path / "app.bin"  # an application image alone: no partition table behind it
    app_only.write_bytes(firmware_bytes_without_table(tmp_path))
    out = run_tool("flash", "--port", "/dev/ttyUSB0", "--firmware", str(app_only), "--dry-run")
    assert out.returncode == 1 and "has no partition table at flash 0x8000" in out.stderr


def firmware_bytes_without_table(tmp_path):
    return make_firmware(tmp_path / "whole.bin").read_bytes()[:0x7000]


def test_flash_to_a_missing_port_fails_with_esptools_reason(tmp_path, firmware, fs_img):
    port = str(tmp_path / "no-board")
    out = run_tool("flash", "--port", port, "--firmware", str(firmware), "--fs-image", str(fs_img))
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("flash: esptool could not write the board on %s: " % port)
    assert "Could not open" in last and "Traceback" not in out.stdout + out.stderr


def test_flash_explains_a_board_that_does_not_answer_and_a_wrong_chip():
    silent = ["Connecting......", "A fatal error occurred: Failed to connect to ESP32: No serial data received."]
    assert flash.explain("/dev/ttyUSB0", "esp32", silent).startswith("no board answered on /dev/ttyUSB0: ")
    wrong = ["Connecting....", "A fatal error occurred: This chip is ESP32-S3, not ESP32. Wrong chip argument?"]
    text = flash.explain("/dev/ttyUSB0", "esp32", wrong)
    assert text.startswith("the board on /dev/ttyUSB0 is not what BOARD says (esp32): "
                           "This chip is ESP32-S3, not ESP32.")
    assert "esp32_s3_devkitc (esp32s3)" in text


def test_make_targets_run_the_host_tools(firmware):
    args = ["make", "-n", "-o", ".venv/.installed", "-C", str(ROOT), "PORT=/dev/ttyUSB3"]
    out = subprocess.run(args + ["flash", "FIRMWARE=%s" % firmware], capture_output=True, text=True, timeout=30)
    assert "-m host_tools flash --port /dev/ttyUSB3 --board esp32_devkitc --firmware %s" % firmware in out.stdout
    out = subprocess.run(args + ["deploy"], capture_output=True, text=True, timeout=30)
    assert "-m host_tools deploy --port /dev/ttyUSB3 --board esp32_devkitc" in out.stdout
    out = subprocess.run(args + ["image", "MICROPYTHON_BIN=%s" % firmware], capture_output=True, text=True, timeout=30)
    assert "-m host_tools image --board esp32_devkitc --micropython %s" % firmware in out.stdout


def test_esptools_progress_passes_through_as_it_comes_and_its_error_is_explained(capsys):
    fake = [sys.executable, "-c", "import sys; sys.stdout.write('Writing at 0x1000 [   ] 10%\\rWriting at 0x9000 "
                                  "[## ] 60%\\r\\nA fatal error occurred: Failed to connect to ESP32: No serial data "
                                  "received.\\n'); sys.exit(2)"]
    status, lines = flash.run_esptool(fake)
    assert status == 2
    assert "10%\rWriting at 0x9000" in capsys.readouterr().out  # the progress bar redraws in place
    assert lines == ["Writing at 0x1000 [   ] 10%", "Writing at 0x9000 [## ] 60%",
                     "A fatal error occurred: Failed to connect to ESP32: No serial data received."]
    assert flash.explain("/dev/ttyUSB0", "esp32", lines).startswith("no board answered on /dev/ttyUSB0")
