"""ROMFS for boards without PSRAM: make image ROMFS=1 builds the bundle's ROMFS image, the charger boots
from it mounted with vfs.VfsRom, make deploy ROMFS=1 writes it with `mpremote romfs deploy`."""
import hashlib
import json
import os
import subprocess
import sys
import urllib.request

import pytest

from host_tools import deploy, image
from host_tools.launcher import Process, free_port
from host_tools.runtime import MICROPYTHON
from tests_host.harness import CsmsThread
from tests_host.test_deploy_flash import board, bundle, on_board, run_tool  # noqa: F401 - fixtures

pytestmark = pytest.mark.micropython

# The unix port has no ROMFS partition: the image is read into RAM and mounted at /rom as a board
# mounts its partition, with /rom alone on sys.path (no sources, no filesystem bundle).
_BOOT = """import sys, vfs
_f = open(%r, 'rb')
_img = _f.read()
_f.close()
vfs.mount(vfs.VfsRom(_img), '/rom')
sys.path[:] = ['/rom', '.frozen']  # nothing of the project but through /rom
import boards.host.main
print('ENTRY ' + boards.host.main.__file__)
boards.host.main.main(%r)
"""


@pytest.mark.e2e
def test_the_charger_boots_from_the_romfs_image_to_bootnotification_accepted(tmp_path):
    out = tmp_path / "host" / "bundle"
    image.build_bundle("host", out)
    img = tmp_path / "romfs.img"
    assert image.build_romfs_image(out, img) == img.stat().st_size
    csms = CsmsThread()
    port = free_port()
    state = tmp_path / "state"
    state.mkdir()
    args = ["--state", str(state), "--url", csms.url("ROM1"), "--http", "127.0.0.1:%d" % port]
    script = tmp_path / "boot.py"
    script.write_text(_BOOT % (str(img), args))
    proc = Process([MICROPYTHON, "-X", "heapsize=2M", str(script)], "READY http://")
    try:
        proc.start()
        assert "ENTRY /rom/boards/host/main.mpy" in proc.output
        boot = csms.wait_received("BootNotification", cp_id="ROM1")
        assert boot[0]["chargePointVendor"]
        csms.wait_for(lambda: _status(port).get("ocppa") is True)
    finally:
        proc.kill()
        csms.close_checked()


def _status(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/api/status?filter=ocppa" % port, timeout=10) as r:
        return json.loads(r.read())


def test_image_command_with_romfs_writes_the_image_and_prints_its_size():
    out = run_tool("image", "--board", "esp32_devkitc", "--no-fs", "--romfs")
    assert out.returncode == 0, out.stdout + out.stderr
    img = image.ROOT / "build" / "esp32_devkitc" / "romfs.img"
    data = img.read_bytes()
    assert data.startswith(b"\xd2\xcd\x31")  # the ROMFS header mpremote checks before writing it
    assert "romfs   %s: %d bytes" % (img, len(data)) in out.stdout


def test_romfs_deploy_command_line_is_mpremotes_romfs_deploy():
    assert deploy.mpremote_command("/dev/ttyUSB3", *deploy.romfs_args("build/esp32_devkitc/romfs.img")) == [
        sys.executable, "-m", "mpremote", "connect", "/dev/ttyUSB3", "resume", "romfs", "deploy",
        "build/esp32_devkitc/romfs.img"]


def test_make_passes_romfs_to_image_and_deploy():
    for target, flag in (("image", "--romfs"), ("deploy", "--romfs")):
        out = subprocess.run(["make", "-n", target, "ROMFS=1", "PORT=/dev/ttyUSB3"], capture_output=True,
                             text=True, cwd=str(image.ROOT))
        line = [ln for ln in out.stdout.splitlines() if "host_tools " + target in ln][0]
        assert line.split()[-1] == flag, line
        out = subprocess.run(["make", "-n", target, "PORT=/dev/ttyUSB3"], capture_output=True, text=True,
                             cwd=str(image.ROOT))
        assert "--romfs" not in out.stdout


# A ROMFS partition for the virtual board: the unix port has none (no vfs.rom_ioctl), so the REPL's
# `vfs` is replaced by one whose rom_ioctl keeps the partition in a bytearray, with the calls
# mpremote's romfs deploy makes on a device (2: the partition, 6: its block size, 3: prepare,
# 4: write, 5: done).
ROM_PRELUDE = """import sys, vfs as _vfs
class _RomVfs:
    VfsRom = _vfs.VfsRom
    mount = _vfs.mount
    umount = _vfs.umount
    part = bytearray(192 * 1024)
    def rom_ioctl(op, rom_id=0, *args):
        if rom_id != 0:
            return -19
        if op == 1:
            return 1
        if op == 2:
            return memoryview(_RomVfs.part)
        if op == 6:
            return 4096
        if op == 3:
            return 4
        if op == 4:
            _RomVfs.part[args[0]:args[0] + len(args[1])] = args[1]
        return 0
sys.modules['vfs'] = _RomVfs
"""


def test_romfs_deploy_writes_the_partition_and_main_py_and_removes_the_filesystem_bundle(board, bundle):
    board.mpremote("exec", ROM_PRELUDE)
    stale = ["firmware/app.mpy", "boards/__init__.mpy", "microdot/__init__.mpy", "firmware/app.py"]
    kept = {"data/settings.json": b'{"amp": 9}', "wifi.json": b'{"ssid": "x"}', "meter.json": b'{"type": "s0"}'}
    for rel, data in [(r, b"stale") for r in stale] + list(kept.items()):
        (board.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (board.root / rel).write_bytes(data)
    out = run_tool("deploy", "--port", board.port, "--bundle", str(bundle), "--romfs")
    assert out.returncode == 0, out.stdout + out.stderr
    n = image.build_romfs_image(bundle, bundle.parent / "expected.img")
    expected = hashlib.sha256((bundle.parent / "expected.img").read_bytes()).hexdigest()
    got = board.mpremote("exec", "import hashlib, binascii; print(binascii.hexlify(hashlib.sha256("
                                 "memoryview(sys.modules['vfs'].part)[:%d]).digest()).decode())" % n)
    assert got.stdout.strip() == expected, got.stderr
    # What was written mounts as a ROMFS and the application imports from it, with the filesystem
    # first on sys.path as on a device: nothing there shadows /rom.
    got = board.mpremote("exec", "_vfs.mount(_vfs.VfsRom(memoryview(_RomVfs.part)), '/rom')\n"
                                 "sys.path[:] = ['', '/rom', '.frozen']\nimport firmware.app\n"
                                 "print(firmware.app.__file__)")
    assert got.stdout.strip() == "/rom/firmware/app.mpy", got.stdout + got.stderr
    files = on_board(board)
    assert sorted(files) == sorted(["main.py"] + list(kept))
    assert sorted(p.name for p in board.root.iterdir()) == ["data", "main.py", "meter.json", "wifi.json"]
    assert files["main.py"][0] == (bundle / "main.py").read_bytes()
    assert all(files[rel][0] == data for rel, data in kept.items())
    assert "written to the ROMFS partition (mounted at /rom)" in out.stdout
    assert "removed the filesystem copy of the bundle, which would shadow /rom: " in out.stdout


def test_romfs_deploy_to_a_board_without_a_romfs_partition_says_so_and_changes_nothing(board, bundle):
    (board.root / "firmware").mkdir()
    (board.root / "firmware" / "app.mpy").write_bytes(b"old")
    out = run_tool("deploy", "--port", board.port, "--bundle", str(bundle), "--romfs")
    assert out.returncode == 1
    assert "has no ROMFS partition (ROMFS is not enabled on this device)" in out.stderr
    assert "Traceback" not in out.stderr
    assert sorted(on_board(board)) == ["firmware/app.mpy"]


def test_a_romfs_deploy_rebuilds_when_the_image_is_missing_or_older_than_the_bundle(tmp_path):
    out = tmp_path / "esp32_devkitc" / "bundle"
    image.build_bundle("esp32_devkitc", out)
    assert not deploy.is_stale("esp32_devkitc", out)
    assert deploy.is_stale("esp32_devkitc", out, romfs=True)  # no romfs.img next to it
    img = out.parent / "romfs.img"
    image.build_romfs_image(out, img)
    assert not deploy.is_stale("esp32_devkitc", out, romfs=True)
    built = (out.parent / "bundle-manifest.json").stat().st_mtime
    os.utime(img, (built - 10, built - 10))
    assert deploy.is_stale("esp32_devkitc", out, romfs=True)
