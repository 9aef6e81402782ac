"""Configuring a board from the REPL with the real mpremote, against the virtual board."""
import json

import pytest

from tests_host.virtual_board import VirtualBoard

pytestmark = pytest.mark.micropython


@pytest.fixture
def board(tmp_path):
    b = VirtualBoard(tmp_path)
    yield b
    b.close()


def test_mpremote_exec_configures_the_board_through_the_config_module(board, tmp_path):
    state = tmp_path / "data"
    code = ("from firmware import config; config.open(%r); "
            "print(config.set(ocpph=42, ocppu='ws://csms.local/ocpp/CP 1', ocppe=True))" % str(state))
    out = board.mpremote("exec", code)
    assert out.returncode == 0, out.stderr
    assert all(("'%s': True" % k) in out.stdout for k in ("ocpph", "ocppu", "ocppe")), out.stdout
    saved = json.loads((state / "settings.json").read_text())
    assert saved["HeartbeatInterval"] == 42 and saved["ocppe"] is True and saved["ocppu"].endswith("CP 1")


def test_mpremote_exec_reports_a_bad_value_and_keeps_the_setting(board, tmp_path):
    state = tmp_path / "data"
    out = board.mpremote("exec", "from firmware import config; config.open(%r); "
                                 "print(config.set(ocpph=-5)); print(config.get('ocpph'))" % str(state))
    assert out.returncode == 0, out.stderr
    assert "out of range" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "300"
