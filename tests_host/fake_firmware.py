"""A stand-in for a MicroPython ESP32 firmware file (.bin from micropython.org), built for the tests:
a real ESP bootloader image (esptool's own image writer), a partition table at flash 0x8000 and a small
application image, each at the file offset its flash offset gives."""
import hashlib
import struct

from esptool.bin_image import ELFSection, ESP32FirmwareImage, ESP32S3FirmwareImage

# MicroPython's partitions-4MiB.csv: nvs, phy_init, factory app, vfs.
TABLE_4MB = [("nvs", 1, 0x02, 0x9000, 0x6000), ("phy_init", 1, 0x01, 0xF000, 0x1000),
             ("factory", 0, 0x00, 0x10000, 0x1F0000), ("vfs", 1, 0x81, 0x200000, 0x200000)]
CHIPS = {"esp32": (ESP32FirmwareImage, 0x1000, 0x3FFF0000, 0x40080000),
         "esp32s3": (ESP32S3FirmwareImage, 0x0, 0x3FCE3700, 0x403C8000)}


def partition_table(rows, md5=True):
    out = b""
    for label, ptype, subtype, offset, size in rows:
        out += b"\xaa\x50" + struct.pack("<BBII", ptype, subtype, offset, size) + label.encode().ljust(16, b"\0") \
            + struct.pack("<I", 0)
    if md5:
        out += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(out).digest()
    return out + b"\xff" * 32


def esp_image(chip, load, entry, payload, path):
    cls = CHIPS[chip][0]
    img = cls()
    img.entrypoint = entry
    img.segments = [ELFSection(b".dram0.data", load, payload, 0)]
    img.save(str(path))
    return path.read_bytes()


def make_firmware(path, chip="esp32", rows=TABLE_4MB, md5=True):
    """Write a fake MicroPython firmware file for chip; returns its path."""
    _, base, load, entry = CHIPS[chip]
    boot = esp_image(chip, load, entry, b"\x01" * 256, path.with_suffix(".boot"))
    app = esp_image(chip, load, entry, b"\x02" * 4096, path.with_suffix(".app"))
    app_offset = next(r[3] for r in rows if r[1] == 0)
    data = bytearray(b"\xff" * (app_offset - base))
    data[0:len(boot)] = boot
    table = partition_table(rows, md5)
    data[0x8000 - base:0x8000 - base + len(table)] = table
    path.write_bytes(bytes(data) + app)
    return path
