"""The HTTP API and OCPP share one registry: a key written over one is read over
the other, on both runtimes against the ocpp-based CSMS."""
import pytest
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.exceptions import NotSupportedError

from tests_host.conftest import RUNTIMES

pytestmark = pytest.mark.e2e


def start(sims, runtime, tmp_path, csms, cp_id="CP1"):
    sim = sims(runtime, tmp_path / "flash", url=csms.url(cp_id)).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    return sim


def call(csms, action, payload):
    try:
        return csms.call("CP1", action, payload)
    except (NotSupportedError, OcppNotImplemented):
        pytest.skip("%s is not handled yet (core module)" % action)


def test_key_set_over_http_reads_the_same_over_get_configuration(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    assert sim.api_set(ocpph=123) == (200, {"ocpph": True})
    res = call(csms, "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert res["configurationKey"][0]["value"] == "123"


def test_change_configuration_shows_in_api_status(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    res = call(csms, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "77"})
    assert res["status"] == "Accepted"
    assert sim.status("ocpph") == {"ocpph": 77}


def test_authorization_key_set_over_http_is_hidden_from_get_configuration(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    assert sim.api_set(AuthorizationKey="0123456789abcdefXYZ") == (200, {"AuthorizationKey": True})
    csms.wait_for(lambda: len(csms.csms.connections) >= 2)
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    res = call(csms, "GetConfiguration", {"key": ["AuthorizationKey"]})
    assert "value" not in res["configurationKey"][0]
    assert sim.status("AuthorizationKey") == {"AuthorizationKey": None}
    assert "0123456789abcdefXYZ" not in "\n".join(sim.output)


def test_ocppe_false_over_http_disconnects_and_true_reconnects(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    assert sim.api_set(ocppe=False) == (200, {"ocppe": True})
    sim.wait_status(lambda s: s["ocppc"] is False and s["ocpps"] is False, keys=("ocppc", "ocpps"))
    assert sim.api_set(ocppe=True) == (200, {"ocppe": True})
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    assert len(csms.csms.connections) == 2


def test_ocppu_changed_over_http_connects_to_the_new_url_without_reboot(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    rbt = sim.status("rbt")["rbt"]
    assert sim.api_set(ocppu=csms.url("CP9")) == (200, {"ocppu": True})
    csms.wait_received("BootNotification", 1, cp_id="CP9")
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    assert sim.status("rbt")["rbt"] > rbt  # same process, no reboot
    assert not any(line.startswith("REBOOT") for line in sim.output)


def test_ocpp_timestamps_are_relative_to_rbt(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    st = sim.status("ocppca", "ocppaa", "rbt")
    assert 0 <= st["ocppca"] <= st["ocppaa"] <= st["rbt"]


def test_invalid_url_over_http_is_refused_and_connection_kept(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    code, body = sim.api_set(ocppu="http://wrong")
    assert code == 500 and "ws://" in body["ocppu"]
    assert sim.status("ocppa", "ocppu") == {"ocppa": True, "ocppu": csms.url("CP1")}


# ---- every key with both names: HTTP <-> OCPP ------------------------------------------------

def _aliased_keys():
    """(API alias, OCPP name, setting) of every OCPP key that has a go-e alias, from the registry itself."""
    import tempfile
    from boards.host.board import HostBoard
    from firmware import log
    from firmware.app import App
    from firmware.settings import OCPP
    verbose, log.verbose = log.verbose, False
    try:
        with tempfile.TemporaryDirectory() as d:
            app = App(HostBoard(), d)
            return [(s.alias, s.name, s) for s in app.settings.keys() if s.alias and s.flags & OCPP]
    finally:
        log.verbose = verbose


ALIASED = _aliased_keys()


def _two_values(s):
    """Two values other than each other, the first not the default: (api value, OCPP text, api value)."""
    from firmware.settings import BOOL, INT
    if s.kind == BOOL:
        return (not s.default), ("true" if s.default else "false"), s.default
    assert s.kind == INT, s.name
    a = s.lo + 7 if s.lo + 7 != s.default else s.lo + 9
    return a, str(a + 1), a + 1


def _ocpp_text(v):
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


@pytest.fixture(scope="module", params=RUNTIMES)
def online_sim(request, tmp_path_factory):
    """One simulator online at one CSMS per runtime, shared by the round-trip tests."""
    from tests_host.harness import online_charger
    for c, sim in online_charger(request.param, tmp_path_factory.mktemp("flash-" + request.param)):
        yield sim, c


def test_the_registry_has_aliased_ocpp_keys():
    assert {a for a, _, _ in ALIASED} >= {"ocpph", "ocppi", "ocppai", "ocpplo", "ocppao", "ocppla"}


@pytest.mark.parametrize("alias,name", [(a, n) for a, n, _ in ALIASED], ids=[a for a, _, _ in ALIASED])
def test_http_and_ocpp_names_reach_the_same_value(online_sim, alias, name):
    sim, c = online_sim
    s = next(x for a, n, x in ALIASED if a == alias)
    first, text, second = _two_values(s)
    try:
        assert sim.api_set(**{alias: first}) == (200, {alias: True})
        res = c.call("CP1", "GetConfiguration", {"key": [name]})
        assert res["configurationKey"] == [{"key": name, "readonly": False, "value": _ocpp_text(first)}]
        assert res.get("unknownKey", []) == []
        assert c.call("CP1", "ChangeConfiguration", {"key": name, "value": text})["status"] == "Accepted"
        assert sim.status(alias, name) == {alias: second, name: second}
    finally:
        sim.api_set(**{alias: s.default})
