"""The device image: the .mpy bundle and the LittleFS filesystem image (make image)."""
import subprocess
import sys

import pytest

from host_tools import image, partitions
from tests_host.fake_firmware import TABLE_4MB, make_firmware, partition_table
from tests_host.mpy import MICROPYTHON, ROOT

# Just enough of `machine` for the ESP32 board module to import on the unix port.
FAKE_MACHINE = """
class Pin:
    IN = 1
    OUT = 2
    PULL_DOWN = 3
    IRQ_RISING = 1
    IRQ_FALLING = 2
class PWM: pass
class ADC:
    ATTN_11DB = 3
class UART: pass
class WDT: pass
def unique_id():
    return b"\\x01\\x02"
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "esp32_devkitc"
    return image.build_bundle("esp32_devkitc", out), out


def test_bundle_keeps_package_layout_and_adds_the_device_entry(bundle):
    summary, out = bundle
    for rel in ("main.py", "firmware/app.mpy", "firmware/ocpp/rpc.mpy", "boards/__init__.mpy",
                "boards/esp32_devkitc/board.mpy", "microdot/__init__.mpy", "microdot/microdot.mpy"):
        assert (out / rel).is_file(), rel
    assert not (out / "boards" / "host").exists()
    assert [p.name for p in out.rglob("*.py")] == ["main.py"]


def test_device_bundle_carries_no_simulator_routes(bundle):
    _, out = bundle
    assert [p for p in out.rglob("*.mpy") if b"/sim/" in p.read_bytes()] == []


def test_bundle_holds_only_the_microdot_modules_the_firmware_imports(bundle):
    _, out = bundle
    assert sorted(p.name for p in (out / "microdot").iterdir()) == ["__init__.mpy", "microdot.mpy"]


def test_bundle_size_is_within_budget(bundle):
    summary, out = bundle
    assert summary["bytes"] == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert summary["bytes"] < image.BUNDLE_BUDGET


def test_every_mpy_module_imports_on_micropython(bundle, tmp_path):
    _, out = bundle
    (tmp_path / "machine.py").write_text(FAKE_MACHINE)
    mods = sorted(p.relative_to(out).with_suffix("").as_posix().replace("/", ".") for p in out.rglob("*.mpy"))
    mods = [m[:-len(".__init__")] if m.endswith(".__init__") else m for m in mods]
    code = "import sys\nfor m in %r:\n    __import__(m)\n    assert m in sys.modules, m\nprint('OK', len(%r))" % (
        mods, mods)
    env = {"MICROPYPATH": ":".join([".frozen", str(out), str(tmp_path)]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=512K", "-c", code], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "OK %d" % len(mods)
    assert "firmware.app" in mods and "boards.esp32_devkitc.board" in mods


def test_modules_load_from_the_bundle_not_the_sources(bundle, tmp_path):
    _, out = bundle
    env = {"MICROPYPATH": ":".join([".frozen", str(out)]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([MICROPYTHON, "-c", "import firmware.ocpp.rpc as r; print(r.__file__)"],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=30)
    assert proc.stdout.strip().endswith("firmware/ocpp/rpc.mpy"), proc.stdout + proc.stderr


def test_fs_image_reads_back_with_every_bundle_file(bundle, tmp_path):
    from littlefs import LittleFS
    _, out = bundle
    info = image.build_fs_image(out, tmp_path / "fs.img")
    data = (tmp_path / "fs.img").read_bytes()
    assert len(data) == image.VFS_SIZE == info["block_count"] * info["block_size"]
    fs = LittleFS(block_size=image.BLOCK_SIZE, block_count=image.VFS_SIZE // image.BLOCK_SIZE, mount=False)
    fs.context.buffer = bytearray(data)
    fs.mount()
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    in_image = sorted(("%s/%s" % (root, name)).lstrip("/") for root, _, names in fs.walk("/") for name in names)
    assert in_image == files
    with fs.open("firmware/ocpp/rpc.mpy", "rb") as f:
        assert f.read() == (out / "firmware/ocpp/rpc.mpy").read_bytes()


def test_image_command_prints_bundle_size_and_writes_fs_image():
    proc = subprocess.run([sys.executable, "-m", "host_tools", "image", "--board", "esp32_devkitc"],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("bundle ") and " bytes (" in proc.stdout
    assert (ROOT / "build" / "esp32_devkitc" / "fs.img").stat().st_size == image.VFS_SIZE


def test_unknown_board_is_refused():
    with pytest.raises(SystemExit):
        image.build_bundle("no_such_board")


def mount(data, size):
    from littlefs import LittleFS
    fs = LittleFS(block_size=image.BLOCK_SIZE, block_count=size // image.BLOCK_SIZE, mount=False)
    fs.context.buffer = bytearray(data)
    fs.mount()
    return fs


def test_merge_puts_micropython_and_the_filesystem_at_the_offsets_of_the_firmwares_table(bundle, tmp_path):
    _, out = bundle
    rows = [r if r[0] != "vfs" else ("vfs", 1, 0x81, 0x280000, 0x180000) for r in TABLE_4MB]
    fw = make_firmware(tmp_path / "ESP32_GENERIC.bin", rows=rows)
    info = image.merge("esp32_devkitc", fw, out, tmp_path / "build")
    assert (info["chip"], info["offset"], info["vfs_offset"], info["vfs_size"]) == ("esp32", 0x1000, 0x280000, 0x180000)
    merged = (tmp_path / "build" / "flash.bin").read_bytes()
    assert merged[:fw.stat().st_size] == fw.read_bytes()  # written at 0x1000, where MicroPython's .bin goes
    assert len(merged) == 0x280000 + 0x180000 - 0x1000
    fs = mount(merged[0x280000 - 0x1000:], 0x180000)  # LittleFS sized for this table's vfs partition
    with fs.open("firmware/app.mpy", "rb") as f:
        assert f.read() == (out / "firmware" / "app.mpy").read_bytes()
    assert fs.fs_stat().block_count == 0x180000 // image.BLOCK_SIZE


def test_merged_file_is_an_image_esptools_image_info_reads(bundle, tmp_path):
    _, out = bundle
    fw = make_firmware(tmp_path / "ESP32_GENERIC.bin")
    assert subprocess.run([sys.executable, "-m", "esptool", "image-info", str(fw)], capture_output=True,
                          timeout=60).returncode == 0
    info = image.merge("esp32_devkitc", fw, out, tmp_path / "build")
    res = subprocess.run([sys.executable, "-m", "esptool", "image-info", info["flash_bin"]], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Detected image type: ESP32" in res.stdout and "Checksum: 0xef (valid)" in res.stdout


def test_an_s3_firmware_is_merged_from_offset_0(bundle, tmp_path):
    _, out = bundle
    fw = make_firmware(tmp_path / "ESP32_GENERIC_S3.bin", chip="esp32s3")
    info = image.merge("esp32_s3_devkitc", fw, out, tmp_path / "build")
    assert (info["chip"], info["offset"], info["vfs_offset"]) == ("esp32s3", 0x0, 0x200000)
    assert (tmp_path / "build" / "flash.bin").read_bytes()[:0x8010] == fw.read_bytes()[:0x8010]


def test_partition_table_is_read_from_the_firmware(tmp_path):
    fw = partitions.read_firmware(make_firmware(tmp_path / "fw.bin"))
    assert (fw.chip, fw.offset) == ("esp32", 0x1000)
    assert [(p.label, p.type, p.subtype, p.offset, p.size) for p in fw.partitions] == TABLE_4MB
    assert partitions.vfs_partition(fw).offset == 0x200000


def test_a_damaged_or_unusual_table_is_refused_with_the_reason(tmp_path):
    fw = make_firmware(tmp_path / "fw.bin")
    data = bytearray(fw.read_bytes())
    data[0x7000 + 4] ^= 1  # one bit of the first entry's offset
    fw.write_bytes(bytes(data))
    with pytest.raises(partitions.LayoutError, match="MD5 does not match"):
        partitions.read_firmware(fw)
    no_vfs = make_firmware(tmp_path / "novfs.bin", rows=[r for r in TABLE_4MB if r[0] != "vfs"])
    with pytest.raises(partitions.LayoutError, match="no data partition labelled 'vfs' .partitions: nvs, phy_init"):
        partitions.vfs_partition(partitions.read_firmware(no_vfs))
    assert partition_table(TABLE_4MB, md5=False)[:2] == b"\xaa\x50"
    no_md5 = partitions.read_firmware(make_firmware(tmp_path / "nomd5.bin", md5=False))
    assert len(no_md5.partitions) == 4


def test_image_command_refuses_firmware_for_another_chip_before_building(tmp_path):
    fw = make_firmware(tmp_path / "ESP32_GENERIC_S3.bin", chip="esp32s3")
    proc = subprocess.run([sys.executable, "-m", "host_tools", "image", "--board", "esp32_devkitc", "--micropython",
                           str(fw)], capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("image: %s is MicroPython for esp32s3; board esp32_devkitc has an esp32" % fw)
    assert proc.stdout == ""


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(SystemExit, match="no board 'no_such_board' under boards/; known boards: .*esp32_devkitc"):
        image.build_bundle("no_such_board")
