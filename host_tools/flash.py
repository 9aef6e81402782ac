"""python -m host_tools flash --port PORT [--firmware MICROPYTHON.bin]: write MicroPython and the image.

Writes one file with the pinned esptool, at the flash offset of the
bootloader: build/<board>/flash.bin, MicroPython and the filesystem image
merged at the offsets of the partition table read from the MicroPython .bin
(host_tools/image.py, host_tools/partitions.py). With --firmware (the .bin
downloaded from micropython.org) that file is made first; without it, the one
`make image MICROPYTHON_BIN=...` made is written (remade when the bundle is
older than its sources). --no-fs writes MicroPython alone, --fs-image FILE
another filesystem image at the vfs partition. --dry-run prints the esptool
command instead of running it.
"""
import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from host_tools import image, partitions
from host_tools.deploy import ensure_built, is_stale

# Boards flashed with esptool and their chip (esptool's name); the offsets come from the firmware file.
BOARDS = image.BOARD_CHIPS
DEFAULT_BAUD = 460800
ESP_IMAGE_MAGIC = partitions.IMAGE_MAGIC  # first byte of every ESP bootloader/app image

DOWNLOAD_HINT = """\
flash: no firmware to write: MicroPython itself is not built here.
Download the ESP32 firmware (.bin, MicroPython 1.23 or newer) from https://micropython.org/download/
  - boards with PSRAM (ESP32-WROVER and the like): the ESP32_GENERIC "SPIRAM" variant
  - boards without PSRAM (ESP32-WROOM DevKitC): the generic ESP32_GENERIC build
  - ESP32-S3 DevKitC (BOARD=esp32_s3_devkitc): ESP32_GENERIC_S3 (the SPIRAM_OCT variant for N8R8 modules)
then: make image MICROPYTHON_BIN=path/to/ESP32_GENERIC-<version>.bin && make flash PORT=%s
  or: make flash PORT=%s FIRMWARE=path/to/ESP32_GENERIC-<version>.bin"""


class FlashError(Exception):
    """A check or step that failed, with a message for the user."""


def check_firmware(path):
    """Refuse a missing, empty or non-ESP image before esptool touches the board; returns its layout."""
    try:
        return partitions.read_firmware(path)
    except partitions.LayoutError as e:
        raise FlashError(str(e))


def check_board(board):
    if board not in BOARDS:
        raise FlashError("no flash layout for board %r (boards flashed with esptool: %s)" % (
            board, ", ".join(sorted(BOARDS))))
    return BOARDS[board]


def esptool_command(port, chip, writes, baud=DEFAULT_BAUD, erase=False):
    """The esptool command line (a list) that writes each (offset, file) of writes."""
    cmd = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud), "write-flash"]
    if erase:
        cmd.append("--erase-all")  # a board that ran something else first: no stale filesystem left behind
    for offset, path in writes:
        cmd += ["0x%x" % offset, str(path)]
    return cmd


def run_esptool(cmd):
    """Run esptool, passing its output through as it comes (its progress bar redraws itself with
    carriage returns); returns (exit status, its output lines)."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        return 1, [str(e)]
    seen = bytearray()
    out = getattr(sys.stdout, "buffer", None)
    while True:
        chunk = proc.stdout.read1(4096)
        if not chunk:
            break
        seen += chunk
        if out is not None:
            out.write(chunk)
            out.flush()
        else:
            print(chunk.decode("utf-8", "replace"), end="", flush=True)
    text = seen.decode("utf-8", "replace").replace("\r", "\n")
    return proc.wait(), [line.strip() for line in text.split("\n") if line.strip()]


def _reason(lines):
    """esptool's own error line (it follows it with hints), else its last line."""
    for line in lines:
        if "fatal error" in line.lower() or line.startswith("A fatal error") or "Wrong chip argument" in line:
            return line
    return lines[-1] if lines else ""


def explain(port, chip, lines):
    """What a failed esptool run means for the user."""
    text = "\n".join(lines)
    if "Wrong chip argument" in text or "This chip is" in text:
        found = next((line for line in lines if "This chip is" in line), "")
        found = found[found.index("This chip is"):] if found else "another chip."
        return ("the board on %s is not what BOARD says (%s): %s Choose the board it is (BOARD=...: %s) and "
                "its MicroPython build" % (port, chip, found, ", ".join(
                    "%s (%s)" % (b, c) for b, c in sorted(BOARDS.items()))))
    if "No serial data received" in text or "Failed to connect" in text:
        return ("no board answered on %s: is it an ESP32 board, plugged in with a data cable? If it does not enter "
                "its bootloader by itself, hold its BOOT button while esptool connects" % port)
    return "esptool could not write the board on %s: %s" % (port, _reason(lines) or "no output")


def plan(args):
    """(chip, [(offset, file)], summary line) of what to write, building what is missing."""
    chip = check_board(args.board)
    if args.firmware:
        fw = check_firmware(args.firmware)
        if fw.chip != chip:
            raise FlashError("%s is MicroPython for %s; board %s has an %s" % (
                args.firmware, fw.chip, args.board, chip))
        vfs = partitions.vfs_partition(fw)
        if not args.fs:
            return chip, [(fw.offset, args.firmware)], "MicroPython alone"
        if args.fs_image:
            if not Path(args.fs_image).is_file():
                raise FlashError("filesystem image %s does not exist" % args.fs_image)
            return chip, [(fw.offset, args.firmware), (vfs.offset, args.fs_image)], "MicroPython and %s" % args.fs_image
        bundle, _ = ensure_built(args.board)
        info = image.merge(args.board, args.firmware, bundle, bundle.parent)
        return chip, [(info["offset"], info["flash_bin"])], "flash.bin: MicroPython and the bundle's fs.img"
    made = image.ROOT / "build" / args.board / "flash.json"
    if not made.exists():
        raise FlashError(DOWNLOAD_HINT % (args.port, args.port))
    info = json.loads(made.read_text())
    bundle = made.parent / "bundle"
    if is_stale(args.board, bundle):
        if not Path(info["micropython"]).is_file():
            raise FlashError("build/%s/flash.bin is older than the sources and %s is gone: make image "
                             "MICROPYTHON_BIN=..." % (args.board, info["micropython"]))
        bundle, _ = ensure_built(args.board)
        info = image.merge(args.board, info["micropython"], bundle, bundle.parent)
    return info["chip"], [(info["offset"], info["flash_bin"])], "flash.bin (MicroPython %s and the bundle)" % (
        Path(info["micropython"]).name)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools flash", description=__doc__.split("\n")[0])
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--board", default="esp32_devkitc")
    p.add_argument("--firmware", help="the MicroPython .bin downloaded from micropython.org (default: the "
                                      "build/<board>/flash.bin of make image MICROPYTHON_BIN=...)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    p.add_argument("--no-fs", dest="fs", action="store_false",
                   help="write MicroPython only (then copy the bundle with deploy)")
    p.add_argument("--fs-image", help="write this LittleFS image at the vfs partition (with --firmware)")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first (esptool --erase-all)")
    p.add_argument("--dry-run", action="store_true", help="print the esptool command, do not run it")
    args = p.parse_args(argv)
    try:
        chip, writes, what = plan(args)
    except FlashError as e:
        hint = str(e).startswith("flash: no firmware")  # the download hint speaks for itself
        print(e if hint else "flash: %s" % e, file=sys.stderr)
        return 2 if hint else 1
    except partitions.LayoutError as e:
        print("flash: %s" % e, file=sys.stderr)
        return 1
    cmd = esptool_command(args.port, chip, writes, args.baud, args.erase)
    print("writing %s" % what)
    print(shlex.join(cmd), flush=True)
    if args.dry_run:
        return 0
    status, lines = run_esptool(cmd)
    if status != 0:
        print("flash: %s" % explain(args.port, chip, lines), file=sys.stderr)
        return 1
    print("flash: done. Next: make deploy PORT=%s (Wi-Fi and settings: python -m host_tools deploy --help)"
          % args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
