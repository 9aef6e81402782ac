"""The layout of a MicroPython ESP32 firmware file, read from the file itself.

A MicroPython `.bin` from micropython.org is the flash image from the
bootloader on: the bootloader (an ESP image: magic 0xE9, the chip id in its
extended header), the partition table at flash 0x8000 and the application. The
partition table is a list of 32-byte entries:

    magic 0x50AA (bytes AA 50) | type u8 | subtype u8 | offset u32 | size u32 | label 16 bytes | flags u32

(little-endian), optionally followed by an entry starting EB EB that carries
the MD5 of the entries before it, and ended by 0xFF bytes. MicroPython mounts
its filesystem on the data partition labelled "vfs".

This reader is a few dozen lines; a package such as mp-image-tool-esp32 could
do it too, but would add a dependency (and its own dependencies) to the
project for what these lines do.
"""
import hashlib
import struct
from collections import namedtuple
from pathlib import Path

TABLE_OFFSET = 0x8000  # flash offset of the partition table (ESP-IDF default, used by MicroPython)
TABLE_MAX = 0xC00  # the table and its MD5 entry fit in 3 KB
ENTRY = 32
ENTRY_MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
IMAGE_MAGIC = 0xE9
TYPE_APP = 0
TYPE_DATA = 1
VFS_LABEL = "vfs"

# ESP image chip id (extended header) -> (esptool's chip name, flash offset of the bootloader).
CHIPS = {
    0: ("esp32", 0x1000),
    2: ("esp32s2", 0x1000),
    5: ("esp32c3", 0x0),
    9: ("esp32s3", 0x0),
    12: ("esp32c2", 0x0),
    13: ("esp32c6", 0x0),
    16: ("esp32h2", 0x0),
}

Partition = namedtuple("Partition", "label type subtype offset size flags")
Firmware = namedtuple("Firmware", "path chip offset size partitions")


class LayoutError(ValueError):
    """The file is not a firmware image whose layout can be read; the message says why."""


def parse_table(blob):
    """The partitions of a partition table (bytes from its first entry on)."""
    parts = []
    for i in range(0, min(len(blob), TABLE_MAX), ENTRY):
        entry = blob[i:i + ENTRY]
        if len(entry) < ENTRY or entry[:2] == b"\xff\xff":
            break
        if entry[:2] == MD5_MAGIC:
            if hashlib.md5(blob[:i]).digest() != entry[16:32]:
                raise LayoutError("the partition table's MD5 does not match its entries: the file is damaged")
            break
        if entry[:2] != ENTRY_MAGIC:
            raise LayoutError("partition table entry %d has no 0xAA50 magic" % (i // ENTRY))
        ptype, subtype, offset, size = struct.unpack_from("<BBII", entry, 2)
        label = entry[12:28].split(b"\0", 1)[0].decode("ascii", "replace")
        parts.append(Partition(label, ptype, subtype, offset, size, struct.unpack_from("<I", entry, 28)[0]))
    if not parts:
        raise LayoutError("the partition table is empty")
    return parts


def read_firmware(path):
    """The chip, flash offset and partition table of a MicroPython firmware file."""
    p = Path(path)
    if not p.is_file():
        raise LayoutError("firmware file %s does not exist" % path)
    data = p.read_bytes()
    if not data:
        raise LayoutError("firmware file %s is empty" % path)
    if data[0] != IMAGE_MAGIC or len(data) < 24:
        raise LayoutError("%s is not an ESP32 firmware image (it does not start with byte 0x%02X); "
                          "use the .bin from micropython.org/download" % (path, IMAGE_MAGIC))
    chip_id = struct.unpack_from("<H", data, 12)[0]
    if chip_id not in CHIPS:
        raise LayoutError("%s is for a chip this tool does not know (image chip id %d)" % (path, chip_id))
    chip, offset = CHIPS[chip_id]
    at = TABLE_OFFSET - offset
    if data[at:at + 2] != ENTRY_MAGIC:
        raise LayoutError("%s has no partition table at flash 0x%x (file offset 0x%x): it is not a complete "
                          "MicroPython firmware (bootloader, partition table and application); use the .bin "
                          "from micropython.org/download, not the application alone" % (path, TABLE_OFFSET, at))
    return Firmware(str(path), chip, offset, len(data), parse_table(data[at:at + TABLE_MAX]))


def vfs_partition(fw):
    """The data partition MicroPython mounts as its filesystem ("vfs"); checks the firmware stops before it."""
    for part in fw.partitions:
        if part.type == TYPE_DATA and part.label == VFS_LABEL:
            if fw.offset + fw.size > part.offset:
                raise LayoutError("%s reaches past 0x%x, where its own vfs partition starts" % (fw.path, part.offset))
            return part
    raise LayoutError("%s has no data partition labelled %r (partitions: %s)" % (
        fw.path, VFS_LABEL, ", ".join(p.label for p in fw.partitions)))


def describe(fw):
    """One line per partition, for the user."""
    names = {TYPE_APP: "app", TYPE_DATA: "data"}
    return ["%-10s %-4s 0x%02x at 0x%06x, %5d KB" % (p.label, names.get(p.type, str(p.type)), p.subtype, p.offset,
                                                    p.size // 1024) for p in fw.partitions]
