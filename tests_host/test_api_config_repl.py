"""The REPL configuration module on the MicroPython runtime: same registry and
validators as the charger, same atomic settings file, read by the app at boot."""
import json

import pytest

from host_tools.runtime import device_lib
from tests_host.certs import pem_pair
from tests_host.mpy import run_mp

pytestmark = pytest.mark.micropython


def mp_config(state, code):
    pre = "import json\nfrom firmware import config\nconfig.open(%r)\n" % str(state)
    return run_mp(pre + code, extra_paths=[device_lib()]).strip().splitlines()[-1]


def test_set_then_get_returns_the_value(tmp_path):
    out = mp_config(tmp_path, "r = config.set(ocppu='ws://csms:9000/ocpp/CP-1', amp=10)\n"
                              "print(json.dumps([r, config.get('ocppu'), config.get('amp')]))")
    assert json.loads(out) == [{"ocppu": True, "amp": True}, "ws://csms:9000/ocpp/CP-1", 10]


def test_validation_errors_come_back_and_nothing_is_stored(tmp_path):
    out = mp_config(tmp_path, "print(json.dumps(config.set(amp=40, ocppu='http://x', nosuch=1, car=2)))")
    assert json.loads(out) == {"amp": "amp: value 40 out of range 6..32",
                               "ocppu": "ocppu: URL must start with ws:// or wss://",
                               "nosuch": "nosuch: unknown key", "car": "car: read-only key"}
    assert not (tmp_path / "settings.json").exists()


def test_ocpp_names_are_accepted_case_insensitively(tmp_path):
    out = mp_config(tmp_path, "config.set(HeartbeatInterval=45)\nprint(json.dumps(config.get('heartbeatinterval')))")
    assert json.loads(out) == 45


def test_secrets_are_stored_but_read_as_none(tmp_path):
    out = mp_config(tmp_path, "config.set(AuthorizationKey='0123456789abcdef', ocppck=%r)\n" % pem_pair()[1] +
                              "print(json.dumps([config.get('AuthorizationKey'), config.get('ocppck')]))")
    assert json.loads(out) == [None, None]
    assert json.loads((tmp_path / "settings.json").read_text())["AuthorizationKey"] == "0123456789abcdef"


def test_settings_written_from_the_repl_are_used_by_the_charger(tmp_path, sims):
    mp_config(tmp_path / "flash", "print(config.set(amp=9, fna='from repl', ocpph=42))")
    assert not list((tmp_path / "flash").glob("*.tmp"))  # written atomically, nothing left over
    sim = sims("micropython", tmp_path / "flash").start()
    assert sim.status("amp", "fna", "ocpph") == {"amp": 9, "fna": "from repl", "ocpph": 42}


def test_show_prints_every_key(tmp_path):
    out = run_mp("from firmware import config\nconfig.open(%r)\nconfig.show()" % str(tmp_path),
                 extra_paths=[device_lib()])
    # Live values need the running charger: listed, read null here.
    assert "amp = 16" in out and "ocppck = null" in out and "nrg = null" in out


def test_the_config_module_builds_the_keys_without_the_charger(tmp_path):
    out = run_mp("import sys\nfrom firmware import config\nconfig.open(%r)\nconfig.show()\n"
                 "print(sorted(m for m in ('firmware.app', 'firmware.evse.controller', 'firmware.api.http',"
                 " 'microdot') if m in sys.modules))" % str(tmp_path), extra_paths=[device_lib()])
    assert out.strip().splitlines()[-1] == "[]"
