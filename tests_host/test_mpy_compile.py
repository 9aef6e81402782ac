"""Every file that goes on the board compiles with mpy-cross, and the firmware
keeps to what MicroPython has (the rules of DESIGN §2)."""
import re
import subprocess
from pathlib import Path

import pytest

from tests_host.mpy import MPY_CROSS, ROOT

DEVICE_FILES = sorted(p for d in ("firmware", "boards") for p in (ROOT / d).rglob("*.py"))
FORBIDDEN = re.compile(r"^\s*(from|import)\s+(typing|dataclasses|enum|logging|uasyncio|ujson|abc|functools|inspect)\b"
                       r"|asyncio\.Queue|sys\.implementation", re.M)


@pytest.mark.parametrize("path", DEVICE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compiles_with_mpy_cross(path, tmp_path):
    out = tmp_path / (path.stem + ".mpy")
    proc = subprocess.run([MPY_CROSS, "-o", str(out), str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


@pytest.mark.parametrize("path", DEVICE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_uses_only_what_micropython_has(path):
    hits = FORBIDDEN.findall(path.read_text())
    assert not hits, "%s uses %r" % (path, hits)


def test_only_board_code_imports_machine():
    for path in (ROOT / "firmware").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(machine|network)\b", text, re.M), path


def test_runtime_feature_detection_lives_in_compat():
    # Attributes that one runtime lacks are looked up in firmware/compat.py only.
    probes = re.compile(r"asyncio\.current_task|\.check_hostname|hasattr\(asyncio")
    for path in (ROOT / "firmware").rglob("*.py"):
        if path.name != "compat.py":
            assert not probes.search(path.read_text()), path
