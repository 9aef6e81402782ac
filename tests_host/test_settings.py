"""The settings registry: one validator for OCPP keys and API keys, atomic persistence."""
import json

import pytest

from firmware.settings import BOOL, CSL, FLOAT, INT, NULL, OCPP, PERSIST, R, REBOOT, RW, SECRET, STR, W, Settings
from firmware.store import Store
from tests_host.mpy import run_mp


def make(tmp_path, errors=None):
    s = Settings(Store(str(tmp_path)), report=(errors.append if errors is not None else None))
    s.define("HeartbeatInterval", INT, 300, RW | PERSIST | OCPP, 0, 86400, alias="ocpph")
    s.define("amp", INT, 16, RW | PERSIST, 6, 32)
    s.define("fna", STR, "charger", hi=32)
    s.define("ocppe", BOOL, False)
    s.define("dwo", FLOAT, None, RW | PERSIST | NULL, 0, 1e9)
    s.define("NumberOfConnectors", INT, 1, R | OCPP)
    s.define("AuthorizationKey", STR, "", W | PERSIST | SECRET | OCPP)
    s.define("SecurityProfile", INT, 0, RW | PERSIST | OCPP | REBOOT, 0, 3)
    s.define("MeterValuesSampledDataMaxLength", INT, 2, R | OCPP)
    s.define("MeterValuesSampledData", CSL, "Energy.Active.Import.Register", RW | PERSIST | OCPP,
             lo=("Energy.Active.Import.Register", "Power.Active.Import", "Voltage"),
             hi="MeterValuesSampledDataMaxLength")
    s.load()
    return s


def test_alias_and_ocpp_name_are_the_same_value(tmp_path):
    s = make(tmp_path)
    assert s.set("ocpph", 60) is None
    assert s.get("HeartbeatInterval") == 60
    assert s.change_configuration("HeartbeatInterval", "90") == "Accepted"
    assert s.api_get("ocpph") == 90


def test_ocpp_key_names_are_case_insensitive(tmp_path):
    s = make(tmp_path)
    assert s.change_configuration("heartbeatinterval", "120") == "Accepted"
    known, unknown = s.get_configuration(["HEARTBEATINTERVAL"])
    assert known == [{"key": "HeartbeatInterval", "readonly": False, "value": "120"}] and unknown == []


def test_only_ocpp_key_names_are_case_insensitive(tmp_path):
    s = make(tmp_path)
    assert s.find("metervaluessampleddata").name == "MeterValuesSampledData"
    assert s.find("METERVALUESSAMPLEDDATAMAXLENGTH").name == "MeterValuesSampledDataMaxLength"
    assert s.find("AMP") is None and s.find("OCPPH") is None  # API keys and aliases: exact names
    assert s.change_configuration("amp", "10") == "NotSupported"  # not an OCPP key
    assert s.change_configuration("heartbeatintervalx", "10") == "NotSupported"


def test_out_of_range_gives_clear_message_and_keeps_value(tmp_path):
    s = make(tmp_path)
    assert s.set("amp", 5) == "amp: value 5 out of range 6..32"
    assert s.get("amp") == 16


def test_wrong_types_are_rejected(tmp_path):
    s = make(tmp_path)
    assert s.set("amp", "16") == "amp: expected integer"
    assert s.set("amp", True) == "amp: expected integer"
    assert s.set("ocppe", 1) == "ocppe: expected boolean"
    assert s.set("fna", 3) == "fna: expected string"
    assert s.set("amp", None) == "amp: null not allowed"
    assert s.set("dwo", None) is None and s.get("dwo") is None
    assert s.set("amp", 20.0) is None and s.get("amp") == 20


def test_read_only_and_unknown_keys_fail(tmp_path):
    s = make(tmp_path)
    assert s.set("NumberOfConnectors", 2) == "NumberOfConnectors: read-only key"
    assert s.set("nosuch", 1) == "nosuch: unknown key"
    assert s.change_configuration("NumberOfConnectors", "2") == "Rejected"
    assert s.change_configuration("NoSuchKey", "2") == "NotSupported"


def test_change_configuration_parses_ocpp_text(tmp_path):
    s = make(tmp_path)
    assert s.change_configuration("HeartbeatInterval", "abc") == "Rejected"
    assert s.change_configuration("HeartbeatInterval", "-1") == "Rejected"
    assert s.change_configuration("SecurityProfile", "1") == "RebootRequired"


def test_comma_list_items_and_length_are_checked(tmp_path):
    s = make(tmp_path)
    assert s.change_configuration("MeterValuesSampledData", "Energy.Active.Import.Register, Voltage") == "Accepted"
    assert s.get("MeterValuesSampledData") == "Energy.Active.Import.Register,Voltage"
    assert s.change_configuration("MeterValuesSampledData", "Foo") == "Rejected"
    assert s.change_configuration("MeterValuesSampledData", "Voltage,Voltage,Voltage") == "Rejected"


def test_secret_is_write_only(tmp_path):
    s = make(tmp_path)
    assert s.change_configuration("AuthorizationKey", "0123456789abcdef0123") == "Accepted"
    assert s.api_get("AuthorizationKey") is None
    known, _ = s.get_configuration(["AuthorizationKey"])
    assert known == [{"key": "AuthorizationKey", "readonly": False}]
    assert s.get("AuthorizationKey") == "0123456789abcdef0123"


def test_values_persist_across_reboot(tmp_path):
    s = make(tmp_path)
    s.set("amp", 10)
    s.set("fna", "garage")
    s2 = make(tmp_path)
    assert s2.get("amp") == 10 and s2.get("fna") == "garage"


def test_corrupt_file_falls_back_to_defaults_and_is_reported(tmp_path):
    make(tmp_path).set("amp", 10)
    (tmp_path / "settings.json").write_text('{"amp": 1')
    errors = []
    s = make(tmp_path, errors)
    assert s.get("amp") == 16
    assert errors and "corrupt" in errors[0]
    # The next boot starts clean: no crash loop, no repeated report.
    errors2 = []
    make(tmp_path, errors2)
    assert errors2 == []


def test_stored_value_that_no_longer_validates_uses_default(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"amp": 99, "fna": "ok"}))
    errors = []
    s = make(tmp_path, errors)
    assert s.get("amp") == 16 and s.get("fna") == "ok"
    assert any("amp" in e for e in errors)


def test_settings_file_not_an_object_uses_defaults(tmp_path):
    (tmp_path / "settings.json").write_text("[1,2]")
    errors = []
    s = make(tmp_path, errors)
    assert s.get("amp") == 16 and errors


def test_watchers_run_after_accepted_change_only(tmp_path):
    s = make(tmp_path)
    seen = []
    s.watch("ocpph", lambda st: seen.append(st.value))
    s.set("ocpph", 5)
    s.set("ocpph", -5)
    assert seen == [5]


def test_live_status_values_are_read_only(tmp_path):
    s = make(tmp_path)
    box = {"v": 1}
    s.status("ocppc", lambda: box["v"])
    assert s.api_get("ocppc") == 1
    box["v"] = 2
    assert s.api_get("ocppc") == 2
    assert s.set("ocppc", 3) == "ocppc: read-only key"


def test_get_configuration_lists_only_ocpp_keys_with_readonly_flags(tmp_path):
    s = make(tmp_path)
    known, unknown = s.get_configuration()
    keys = {k["key"]: k for k in known}
    assert "amp" not in keys and "HeartbeatInterval" in keys
    assert keys["NumberOfConnectors"]["readonly"] is True
    known, unknown = s.get_configuration(["Nope", "HeartbeatInterval"])
    assert unknown == ["Nope"] and [k["key"] for k in known] == ["HeartbeatInterval"]


def test_save_is_atomic_no_temp_file_left(tmp_path):
    s = make(tmp_path)
    s.set("amp", 12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]
    assert json.loads((tmp_path / "settings.json").read_text()) == {"amp": 12}


def test_unknown_keys_in_file_survive_a_save(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"FutureKey": 1}))
    s = make(tmp_path)
    s.set("amp", 12)
    assert json.loads((tmp_path / "settings.json").read_text()) == {"amp": 12, "FutureKey": 1}


def test_log_masks_only_the_authorization_key_value():
    from firmware.log import mask_frame
    assert mask_frame('[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"s3cr\\"et"}]') == \
        '[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"***"}]'
    assert mask_frame('[2,"1","ChangeConfiguration",{"value":"s3cret","key":"AuthorizationKey"}]') == \
        '[2,"1","ChangeConfiguration",{"value":"***","key":"AuthorizationKey"}]'
    got = '[3,"1",{"configurationKey":[{"key":"AuthorizationKey","readonly":false},' \
          '{"key":"HeartbeatInterval","readonly":false,"value":"300"}]}]'
    assert mask_frame(got) == got


def test_non_finite_and_fractional_numbers_are_refused_with_a_message(tmp_path):
    s = make(tmp_path)
    inf, nan = float("inf"), float("nan")
    assert s.set("ocpph", inf) == "ocpph: expected integer, got inf"
    assert s.set("ocpph", -inf) == "ocpph: expected integer, got -inf"
    assert s.set("ocpph", nan) == "ocpph: expected integer, got nan"
    assert s.set("ocpph", 1.5) == "ocpph: expected integer, got fraction 1.5"
    assert s.set("dwo", inf) == "dwo: expected a finite number, got inf"
    assert s.set("dwo", nan) == "dwo: expected a finite number, got nan"
    assert s.get("ocpph") == 300 and s.get("dwo") is None
    assert s.set("dwo", 2.5) is None and s.get("dwo") == 2.5
    assert s.change_configuration("HeartbeatInterval", "1e999") == "Rejected"
    assert s.change_configuration("HeartbeatInterval", "nan") == "Rejected"
    # The API parses the value as JSON: 1e999 arrives as inf.
    assert s.set("ocpph", json.loads("1e999")) == "ocpph: expected integer, got inf"


def test_stored_infinite_number_uses_the_default_for_that_key_only(tmp_path):
    (tmp_path / "settings.json").write_text('{"HeartbeatInterval": 1e999, "dwo": -1e999, "amp": 10}')
    errors = []
    s = make(tmp_path, errors)
    assert s.get("ocpph") == 300 and s.get("dwo") is None and s.get("amp") == 10
    assert any("ocpph" in e and "default used" in e for e in errors)
    assert any("dwo" in e for e in errors)


def test_settings_file_with_invalid_utf8_is_set_aside_not_raised(tmp_path):
    make(tmp_path).set("amp", 10)
    (tmp_path / "settings.json").write_bytes(b'{"fna": "\xff\xfe", "amp": 12}')
    errors = []
    s = make(tmp_path, errors)
    assert s.get("amp") == 16 and errors == ["settings.json corrupt, defaults used"]
    assert (tmp_path / "settings.json.corrupt").exists() and not (tmp_path / "settings.json").exists()
    errors2 = []
    make(tmp_path, errors2)
    assert errors2 == []


@pytest.mark.micropython
def test_corrupt_settings_never_raise_on_micropython(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "settings.json").write_bytes(b'{"fna": "\xff\xfe"}')
    inf = tmp_path / "inf"
    inf.mkdir()
    (inf / "settings.json").write_text('{"HeartbeatInterval": 1e999, "amp": 10}')
    out = run_mp(
        "from firmware.settings import Settings, INT, FLOAT, RW, PERSIST, NULL\n"
        "from firmware.store import Store\n"
        "for d in (%r, %r):\n"
        "    errs = []\n"
        "    s = Settings(Store(d), report=errs.append)\n"
        "    s.define('HeartbeatInterval', INT, 300, RW | PERSIST, 0, 86400, alias='ocpph')\n"
        "    s.define('amp', INT, 16, RW | PERSIST, 6, 32)\n"
        "    s.define('dwo', FLOAT, None, RW | PERSIST | NULL, 0, 1e9)\n"
        "    s.load()\n"
        "    print(s.get('ocpph'), s.get('amp'), errs)\n"
        "print(s.set('ocpph', float('nan')), '|', s.set('dwo', float('inf')), '|', s.set('ocpph', 2.5))\n"
        % (str(bad), str(inf)))
    lines = out.strip().split("\n")
    assert lines[0] == "300 16 ['settings.json corrupt, defaults used']"
    assert lines[1].startswith("300 10 [") and "ocpph" in lines[1] and "default used" in lines[1]
    assert lines[2] == ("ocpph: expected integer, got nan | dwo: expected a finite number, got inf"
                        " | ocpph: expected integer, got fraction 2.5")


def _url_settings():
    from firmware.settings import PERSIST, RW, STR, URL_PASSWORD, Settings
    s = Settings()
    s.define("ocppu", STR, "", RW | PERSIST | URL_PASSWORD, hi=512)
    return s


def test_url_password_reads_masked_everywhere_and_a_masked_write_back_keeps_it():
    s = _url_settings()
    assert s.set("ocppu", "wss://cp1:s3cret@csms.example/ocpp/CP1") is None
    assert s.api_get("ocppu") == "wss://cp1:***@csms.example/ocpp/CP1"
    assert s.set("ocppu", "wss://cp1:***@csms.example/ocpp/CP2") is None  # another path, same server
    assert s.get("ocppu") == "wss://cp1:s3cret@csms.example/ocpp/CP2"


def test_masked_url_for_another_server_is_refused_and_nothing_changes():
    s = _url_settings()
    s.set("ocppu", "wss://cp1:s3cret@csms.example/ocpp/CP1")
    err = s.set("ocppu", "wss://cp1:***@evil.example/ocpp/CP1")
    assert err.startswith("ocppu: the password is masked")
    assert s.get("ocppu") == "wss://cp1:s3cret@csms.example/ocpp/CP1"


def test_repl_config_and_vendor_data_transfer_never_show_the_url_password(tmp_path):
    from firmware import config
    from firmware.ocpp.data_transfer import api_values as _api_values
    config.open(str(tmp_path))
    assert config.set(ocppu="ws://cp1:s3cret@127.0.0.1:9/ocpp/CP1")["ocppu"] is True
    assert config.get("ocppu") == "ws://cp1:***@127.0.0.1:9/ocpp/CP1"
    status, data = _api_values(config._settings(), "GetApiKeys", '["ocppu"]')
    assert status == "Accepted" and "s3cret" not in data["ocppu"]
