"""python -m host_tools config PORT get/set: a board's settings from the host, through mpremote and the
firmware's REPL configuration module, against the virtual board running the deployed bundle."""
import json
import subprocess
import sys

import pytest

from host_tools import image
from tests_host.mpy import ROOT
from tests_host.virtual_board import VirtualBoard

pytestmark = pytest.mark.micropython


@pytest.fixture(scope="module")
def host_bundle(tmp_path_factory):
    # The simulation board's bundle: the charger can then be started from the deployed files.
    out = tmp_path_factory.mktemp("build") / "host" / "bundle"
    image.build_bundle("host", out)
    return out


@pytest.fixture
def board(tmp_path, host_bundle):
    root = tmp_path / "board"
    root.mkdir()
    b = VirtualBoard(root, repo_on_path=False)
    b.root = root
    out = run_tool("deploy", "--port", b.port, "--bundle", str(host_bundle))
    assert out.returncode == 0, out.stdout + out.stderr
    yield b
    b.close()


def run_tool(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "host_tools", *args], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=timeout)


def test_set_then_get_reads_the_values_back_by_api_and_ocpp_name(board):
    out = run_tool("config", board.port, "set", "ocpph=42", 'fna="garage"')
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[:2] == ["set     ocpph = 42", 'set     fna = "garage"']
    assert "reboot  needed: settings written from the REPL apply at the next boot" in out.stdout
    got = run_tool("config", board.port, "get", "fna", "HeartbeatInterval")
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == ['fna = "garage"', "HeartbeatInterval = 42"]
    assert json.loads((board.root / "data" / "settings.json").read_text())["fna"] == "garage"


def test_a_refused_value_is_reported_with_the_chargers_message_and_exits_1(board):
    out = run_tool("config", board.port, "set", "amp=40", "ocpph=60")
    assert out.returncode == 1
    assert "refused amp = 40: amp: value 40 out of range 6..32" in out.stdout
    assert "set     ocpph = 60" in out.stdout
    assert "some values were refused" in out.stderr and "Traceback" not in out.stderr
    assert json.loads((board.root / "data" / "settings.json").read_text()) == {"HeartbeatInterval": 60}


def test_a_secret_is_stored_and_read_back_masked(board):
    out = run_tool("config", board.port, "set", 'AuthorizationKey="0123456789abcdef"')
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0123456789abcdef" not in out.stdout
    got = run_tool("config", board.port, "get", "AuthorizationKey", "ocppck")
    assert got.stdout.splitlines() == ['AuthorizationKey = "***"  (secret: set, shown masked)',
                                       "ocppck = null  (secret: not set)"]
    saved = json.loads((board.root / "data" / "settings.json").read_text())
    assert saved["AuthorizationKey"] == "0123456789abcdef"


def test_a_key_applied_over_ocpp_without_reboot_is_not_named_as_needing_one(board):
    # SecurityProfile changed over OCPP reconnects with the new profile (security whitepaper
    # A05); from the REPL, like every key, it applies at the next boot.
    out = run_tool("config", board.port, "set", "SecurityProfile=0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "apply at the next boot" in out.stdout and "also needs one when changed over OCPP" not in out.stdout


def test_get_without_keys_lists_every_key_and_an_unknown_key_exits_1(board):
    out = run_tool("config", board.port, "get")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "amp = 16" in lines and "ocppck = null  (secret: not set)" in lines and len(lines) > 50
    out = run_tool("config", board.port, "get", "nosuch")
    assert out.returncode == 1 and out.stdout.strip() == "nosuch: unknown key"


def test_config_reaches_a_board_whose_program_is_running_and_says_it_stopped_it(board):
    board.start_program("charger running")
    out = run_tool("config", board.port, "set", "ocpph=33")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "set     ocpph = 33" in out.stdout
    assert "the charger was stopped to reach the REPL" in out.stdout and "--reset" in out.stdout


def test_a_value_not_json_is_refused_before_the_board_is_touched(tmp_path):
    out = run_tool("config", str(tmp_path / "no-board"), "set", "fna=garage")
    assert out.returncode == 1
    assert "set fna: 'garage' is not JSON" in out.stderr and "Traceback" not in out.stderr


def test_a_missing_board_gives_a_clear_message(tmp_path):
    out = run_tool("config", str(tmp_path / "ttyUSB9"), "get", "amp")
    assert out.returncode == 1
    assert "no board at %s: the port does not exist" % (tmp_path / "ttyUSB9") in out.stderr
    assert "Traceback" not in out.stderr


def test_the_charger_started_from_the_deployed_files_uses_the_values_set(board, sims):
    out = run_tool("config", board.port, "set", "amp=9", 'fna="from host"', "ocpph=42")
    assert out.returncode == 0, out.stdout + out.stderr
    board.close()  # the board's files stay; the charger now boots from them
    sim = sims("micropython", board.root / "data", extra=["--bundle", str(board.root)]).start()
    assert sim.status("amp", "fna", "ocpph") == {"amp": 9, "fna": "from host", "ocpph": 42}


def test_make_config_runs_the_host_tool():
    out = subprocess.run(["make", "-n", "-o", ".venv/.installed", "-C", str(ROOT), "config", "PORT=/dev/ttyUSB3",
                          "ARGS=set ocpph=60"], capture_output=True, text=True, timeout=30)
    assert "-m host_tools config /dev/ttyUSB3 set ocpph=60" in out.stdout
