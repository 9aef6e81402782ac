"""python -m host_tools flash --port PORT --firmware MICROPYTHON.bin: write MicroPython and the image.

Writes the MicroPython firmware file (downloaded by the user from
micropython.org) and build/<board>/fs.img (the LittleFS image of the bundle,
rebuilt first when stale) with the pinned esptool, in one write-flash at the
offsets of MicroPython's standard ESP32 4 MB partition table. --dry-run prints
the esptool command instead of running it.
"""
import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from host_tools import image
from host_tools.deploy import ensure_built

# Per board: esptool's chip name and where the firmware file starts. MicroPython's
# ESP32 .bin (bootloader + partition table + app) starts at 0x1000; the vfs partition
# of its 4 MB table is where image.py sizes fs.img for.
BOARDS = {
    "esp32_devkitc": {"chip": "esp32", "firmware_offset": 0x1000, "fs_offset": image.VFS_OFFSET},
}
DEFAULT_BAUD = 460800
ESP_IMAGE_MAGIC = 0xE9  # first byte of every ESP bootloader/app image

DOWNLOAD_HINT = """\
flash: --firmware MICROPYTHON.bin is needed: MicroPython itself is not built here.
Download the ESP32 firmware (.bin, MicroPython 1.23 or newer) from https://micropython.org/download/
  - boards with PSRAM (ESP32-WROVER and the like): the ESP32_GENERIC "SPIRAM" variant
  - boards without PSRAM (ESP32-WROOM DevKitC): the generic ESP32_GENERIC build
then: make flash PORT=%s FIRMWARE=path/to/ESP32_GENERIC-<version>.bin"""


class FlashError(Exception):
    """A check or step that failed, with a message for the user."""


def check_firmware(path):
    """Refuse a missing, empty or non-ESP image before esptool touches the board."""
    p = Path(path)
    if not p.is_file():
        raise FlashError("firmware file %s does not exist" % path)
    with p.open("rb") as f:
        head = f.read(1)
    if not head:
        raise FlashError("firmware file %s is empty" % path)
    if head[0] != ESP_IMAGE_MAGIC:
        raise FlashError("%s is not an ESP32 firmware image (it does not start with byte 0x%02X); "
                         "use the .bin from micropython.org/download" % (path, ESP_IMAGE_MAGIC))


def esptool_command(port, board, firmware, fs_image=None, baud=DEFAULT_BAUD, erase=False):
    """The esptool command line (a list) that writes the firmware and, if given, the fs image."""
    if board not in BOARDS:
        raise FlashError("no flash layout for board %r (known: %s)" % (board, ", ".join(sorted(BOARDS))))
    b = BOARDS[board]
    cmd = [sys.executable, "-m", "esptool", "--chip", b["chip"], "--port", port, "--baud", str(baud),
           "write-flash"]
    if erase:
        cmd.append("--erase-all")  # a board that ran something else first: no stale filesystem left behind
    cmd += ["0x%x" % b["firmware_offset"], str(firmware)]
    if fs_image is not None:
        cmd += ["0x%x" % b["fs_offset"], str(fs_image)]
    return cmd


def run_esptool(cmd):
    """Run esptool, passing its progress through; returns (exit status, its last message)."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    except OSError as e:
        return 1, str(e)
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.strip():
            lines.append(line.strip())
    return proc.wait(), _reason(lines)


def _reason(lines):
    """esptool's own error line (it follows it with hints), else its last line."""
    for line in lines:
        if "fatal error" in line.lower():
            return line
    return lines[-1] if lines else ""


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools flash", description=__doc__.split("\n")[0])
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--board", default="esp32_devkitc")
    p.add_argument("--firmware", help="the MicroPython .bin downloaded from micropython.org")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    p.add_argument("--no-fs", dest="fs", action="store_false",
                   help="write MicroPython only (then copy the bundle with deploy)")
    p.add_argument("--fs-image", help="write this LittleFS image (default: build/<board>/fs.img, rebuilt when stale)")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first (esptool --erase-all)")
    p.add_argument("--dry-run", action="store_true", help="print the esptool command, do not run it")
    args = p.parse_args(argv)
    if not args.firmware:
        print(DOWNLOAD_HINT % args.port, file=sys.stderr)
        return 2
    try:
        check_firmware(args.firmware)
        if args.board not in BOARDS:
            raise FlashError("no flash layout for board %r (known: %s)" % (args.board, ", ".join(sorted(BOARDS))))
        fs_image = None
        if args.fs and args.fs_image:
            fs_image = Path(args.fs_image)
            if not fs_image.is_file():
                raise FlashError("filesystem image %s does not exist" % fs_image)
        elif args.fs:
            bundle, rebuilt = ensure_built(args.board, fs=True)
            fs_image = bundle.parent / "fs.img"
            print("fs.img  %s (%s)" % (fs_image, "rebuilt" if rebuilt else "up to date"))
        cmd = esptool_command(args.port, args.board, args.firmware, fs_image, args.baud, args.erase)
    except FlashError as e:
        print("flash: %s" % e, file=sys.stderr)
        return 1
    print(shlex.join(cmd), flush=True)
    if args.dry_run:
        return 0
    status, last = run_esptool(cmd)
    if status != 0:
        print("flash: esptool could not write the board on %s: %s" % (args.port, last or "exit status %d" % status),
              file=sys.stderr)
        return 1
    print("flash: done. Next: make deploy PORT=%s (Wi-Fi and settings: python -m host_tools deploy --help)"
          % args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
