"""The go-e HTTP API of the running simulator, on both runtimes: status and set
semantics, every key, effects on the simulated hardware, hostile clients,
secrets and the optional password. One simulator per runtime serves the
module; each test leaves the keys it changed as it found them."""
import base64
import json
import socket
import threading
import time
import urllib.parse
import urllib.request

import pytest

from tests_host.conftest import RUNTIMES
from tests_host.harness import Sim

pytestmark = pytest.mark.e2e

OCPP_KEYS = ("ocppe ocppu ocppg ocppcn ocppss ocpps ocppc ocppca ocppa ocppaa ocpph ocppi ocppai ocppd ocppr "
             "ocpple ocpplea ocpprl ocppck ocppcc ocppsc ocppf ocppti ocppao ocpplo ocppla ocppcm ocppcs").split()
CHARGER_KEYS = ("amp ama frc alw acu car err modelStatus eto wh nrg pha pnp psm fsp trx rbt tma fwv sse typ oem var "
                "fna cards ust lck cus acs cbl dwo tcl").split()
# Keys owned by the transaction (T), metering (M) and core (C) modules.
OTHERS = {"ocppi", "ocppai", "ocppd", "ocppr", "ocppti", "ocppao", "ocpplo", "ocppla", "ocppcm", "ocppcs",
          "trx", "cards", "acs"}


@pytest.fixture(scope="module", params=RUNTIMES)
def sim(request, tmp_path_factory):
    s = Sim(request.param, tmp_path_factory.mktemp("flash-" + request.param)).start()
    yield s
    s.kill()


def raw_get(sim, path, headers=None):
    req = urllib.request.Request(sim.base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw_request(sim, data, timeout=10):
    """Send raw bytes, return the status code of the answer (0 when none)."""
    s = socket.create_connection(("127.0.0.1", sim.http_port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the charger may cut us off mid-request: read its answer anyway
        buf = b""
        while True:
            try:
                chunk = s.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        line = buf.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) >= 2 else 0
    finally:
        s.close()


def start_charging(sim):
    """Plug in and wait until the contactor closes; skips until the transaction module authorizes sessions."""
    if "acs" not in sim.status("acs"):
        pytest.skip("charging needs the transaction module (key acs) to authorize a session")
    sim.sim_set(ev="C")
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        if sim.sim_status()["contactor"]:
            return
        time.sleep(0.05)
    sim.sim_set(ev="A")
    raise AssertionError("charging did not start:\n" + sim.log())


@pytest.fixture
def charging(sim):
    start_charging(sim)
    yield sim
    sim.api_set(frc=0, amp=16, psm=0, tcl=None, dwo=None)
    sim.sim_set(ev="A")


def wait_sim(sim, pred, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        st = sim.sim_status()
        if pred(st):
            return st
        assert time.monotonic() < deadline, "simulated hardware condition not met: %r" % st
        time.sleep(0.05)


# ---- /api/status ---------------------------------------------------------

def test_status_is_flat_json_with_json_content_type(sim):
    code, headers, body = raw_get(sim, "/api/status")
    assert code == 200 and headers["Content-Type"] == "application/json"
    st = json.loads(body)
    assert all(not isinstance(v, dict) for v in st.values())


def test_status_filter_returns_only_those_keys_and_drops_unknown(sim):
    assert sim.get("/api/status?filter=amp,car,nosuchkey") == (200, {"amp": 16, "car": 1})


@pytest.mark.parametrize("key", [k for k in OCPP_KEYS + CHARGER_KEYS])
def test_every_documented_key_is_in_status(sim, key):
    st = sim.status()
    if key in OTHERS and key not in st:
        pytest.skip("%s belongs to a module not integrated yet" % key)
    assert key in st


def test_nrg_has_16_numbers(sim):
    nrg = sim.status("nrg")["nrg"]
    assert len(nrg) == 16 and all(isinstance(v, (int, float)) for v in nrg)


def test_identity_keys_have_documented_types(sim):
    st = sim.status("fwv", "sse", "typ", "oem", "var", "rbt", "tma", "pha")
    assert isinstance(st["fwv"], str) and st["sse"] == "SIM-0001" and st["typ"] and st["oem"] == "OpenWallbox"
    assert st["var"] in (11, 22) and isinstance(st["rbt"], int) and isinstance(st["tma"], list)
    assert len(st["pha"]) == 6 and all(isinstance(v, bool) for v in st["pha"])


def test_rbt_counts_up(sim):
    a = sim.status("rbt")["rbt"]
    time.sleep(0.2)  # an interval of real time is the point here
    assert sim.status("rbt")["rbt"] >= a + 150


# ---- /api/set --------------------------------------------------------------

def test_set_answers_true_per_key_and_applies(sim):
    assert sim.get('/api/set?fna=%22garage%20left%22&amp=12') == (200, {"fna": True, "amp": True})
    assert sim.status("fna", "amp") == {"fna": "garage left", "amp": 12}
    sim.api_set(amp=16, fna="OpenWallbox")


def test_set_accepts_raw_quotes_from_clients(sim):
    code, _, body = raw_get(sim, '/api/set?fna="raw"'.replace(" ", "%20"))
    assert code == 200 and json.loads(body) == {"fna": True}
    sim.api_set(fna="OpenWallbox")


def test_set_out_of_range_gives_500_and_message_and_keeps_value(sim):
    assert sim.get("/api/set?amp=5") == (500, {"amp": "amp: value 5 out of range 6..32"})
    assert sim.status("amp")["amp"] == 16


def test_set_one_bad_key_fails_request_but_good_key_applies(sim):
    code, body = sim.get("/api/set?amp=10&frc=7")
    assert code == 500 and body["amp"] is True and "frc" in body["frc"] and "range" in body["frc"]
    assert sim.status("amp", "frc") == {"amp": 10, "frc": 0}
    sim.api_set(amp=16)


def test_set_read_only_key_is_refused_clearly(sim):
    assert sim.get("/api/set?car=2") == (500, {"car": "car: read-only key"})


def test_set_unknown_key_is_refused_clearly(sim):
    assert sim.get("/api/set?nosuch=1") == (500, {"nosuch": "nosuch: unknown key"})


def test_set_malformed_json_is_refused_clearly(sim):
    code, body = sim.get("/api/set?fna=garage")
    assert code == 500 and body["fna"].startswith("fna: invalid JSON value")
    assert sim.status("fna")["fna"] == "OpenWallbox"


def test_set_wrong_type_is_refused(sim):
    assert sim.get('/api/set?amp=%2210%22') == (500, {"amp": "amp: expected integer"})
    assert sim.get("/api/set?ocppe=1") == (500, {"ocppe": "ocppe: expected boolean"})


def test_set_null_where_not_allowed_is_refused(sim):
    assert sim.get("/api/set?amp=null") == (500, {"amp": "amp: null not allowed"})


def test_set_object_value_to_scalar_key_is_refused(sim):
    code, body = sim.get("/api/set?amp=" + urllib.parse.quote('{"a":1}'))
    assert code == 500 and body["amp"] == "amp: expected integer"


def test_set_too_long_string_is_refused_whole(sim):
    code, body = sim.get("/api/set?fna=" + urllib.parse.quote(json.dumps("x" * 40)))
    assert code == 500 and "longer than 32" in body["fna"]
    assert sim.status("fna")["fna"] == "OpenWallbox"


def test_settings_survive_reboot_through_rst(sims, runtime, tmp_path):
    s = sims(runtime, tmp_path / "flash").start()
    assert s.api_set(amp=11, fna="kept") == (200, {"amp": True, "fna": True})
    s.rst()
    assert any(line.startswith("REBOOT") for line in s.output)
    assert s.status("amp", "fna") == {"amp": 11, "fna": "kept"}
    assert s.status("rbt")["rbt"] < 30000


# ---- effects on the simulated hardware -----------------------------------

def test_amp_changes_the_offered_current(charging):
    assert charging.api_set(amp=10) == (200, {"amp": True})
    wait_sim(charging, lambda st: st["offered_amps"] == 10)


def test_ama_caps_the_offered_current(charging):
    assert charging.api_set(ama=8) == (200, {"ama": True})
    try:
        wait_sim(charging, lambda st: st["offered_amps"] == 8)
    finally:
        charging.api_set(ama=32)


def test_tcl_caps_the_offered_current(charging):
    assert charging.api_set(tcl=7) == (200, {"tcl": True})
    wait_sim(charging, lambda st: st["offered_amps"] == 7)
    charging.api_set(tcl=None)
    wait_sim(charging, lambda st: st["offered_amps"] == 16)


def test_frc_off_opens_contactor_and_on_closes_it(charging):
    assert charging.api_set(frc=1) == (200, {"frc": True})
    wait_sim(charging, lambda st: not st["contactor"])
    assert charging.status("alw", "modelStatus") == {"alw": False, "modelStatus": 4}
    assert charging.api_set(frc=2) == (200, {"frc": True})
    wait_sim(charging, lambda st: st["contactor"])


def test_psm_switches_phases(charging):
    assert charging.api_set(psm=1) == (200, {"psm": True})
    wait_sim(charging, lambda st: st["phases"] == 1 and st["contactor"], timeout=20)
    assert charging.status("pnp", "fsp") == {"pnp": 1, "fsp": True}
    charging.api_set(psm=2)
    wait_sim(charging, lambda st: st["phases"] == 3 and st["contactor"], timeout=20)


def test_dwo_stops_charging_at_the_energy_limit(charging):
    wh = charging.status("wh")["wh"]
    assert charging.api_set(dwo=wh + 3) == (200, {"dwo": True})
    wait_sim(charging, lambda st: not st["contactor"], timeout=20)
    assert charging.status("modelStatus")["modelStatus"] == 6


def test_values_follow_charging(charging):
    wait_sim(charging, lambda st: st["power_w"] > 0)
    st = charging.wait_status(lambda s: s["nrg"][11] > 0 and s["wh"] > 0, keys=("nrg", "wh", "car", "alw", "acu"))
    assert st["car"] == 2 and st["alw"] is True and st["acu"] == 16


def test_ust_always_locks_the_cable(sim):
    # A cable unlocked on request (UnlockConnector) stays free until the next plug: plug one in.
    assert sim.api_set(ust=2) == (200, {"ust": True})
    try:
        sim.sim_set(ev="B")
        wait_sim(sim, lambda st: st["lock"])
        assert sim.status("lck", "cus") == {"lck": 2, "cus": 3}
    finally:
        sim.api_set(ust=0)
        sim.sim_set(ev="A")
    wait_sim(sim, lambda st: not st["lock"])


# ---- hostile clients ---------------------------------------------------------

def test_malformed_percent_escape_gives_400(sim):
    assert raw_request(sim, b"GET /api/set?amp=%zz HTTP/1.0\r\n\r\n") == 400
    assert sim.status("amp")["amp"] == 16


def test_garbage_request_line_gives_400(sim):
    assert raw_request(sim, b"\x00\xff garbage\r\n\r\n") == 400


def test_huge_request_line_gives_414(sim):
    assert raw_request(sim, b"GET /api/status?filter=" + b"a" * 5000 + b" HTTP/1.0\r\n\r\n") == 414


def test_huge_headers_give_431(sim):
    assert raw_request(sim, b"GET /api/status HTTP/1.0\r\n" + b"X-Pad: " + b"b" * 900 + b"\r\n" * 1
                       + (b"X-Pad: " + b"b" * 900 + b"\r\n") * 6 + b"\r\n") == 431


def test_huge_body_gives_413(sim):
    assert raw_request(sim, b"POST /api/set HTTP/1.0\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000) == 413


def test_silent_client_is_cut_off_with_408(sim):
    s = socket.create_connection(("127.0.0.1", sim.http_port), timeout=15)
    s.sendall(b"GET /api/status HTTP/1.0\r\n")
    t0 = time.monotonic()
    data = s.recv(100)
    s.close()
    assert data.startswith(b"HTTP/1.0 408") and time.monotonic() - t0 < 10


def slow_clients(sim, n, stop):
    """n sockets each sending a request one byte at a time until stop is set."""
    def run():
        req = b"GET /api/status HTTP/1.0\r\nX-Slow: " + b"z" * 10000
        try:
            s = socket.create_connection(("127.0.0.1", sim.http_port), timeout=5)
            for b in req:
                if stop.is_set():
                    break
                s.send(bytes([b]))
                time.sleep(0.05)
            s.close()
        except OSError:
            pass  # cut off by the charger: what it should do
    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def test_many_slow_clients_do_not_lock_out_others(sim):
    stop = threading.Event()
    threads = slow_clients(sim, 20, stop)
    try:
        time.sleep(0.5)  # let the slow clients connect first
        for _ in range(5):
            assert sim.status("amp") == {"amp": 16}
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert sim.sim_status()["http_clients"] <= 6


def test_charging_continues_and_settings_kept_under_abuse(charging):
    stop = threading.Event()
    threads = slow_clients(charging, 20, stop)
    try:
        for data in (b"GET /api/set?amp=%zz HTTP/1.0\r\n\r\n", b"GET /" + b"a" * 5000 + b" HTTP/1.0\r\n\r\n",
                     b"POST /api/set HTTP/1.0\r\nContent-Length: 99999\r\n\r\n"):
            raw_request(charging, data)
        for _ in range(10):
            assert charging.sim_status()["contactor"] is True
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert charging.status("amp", "frc") == {"amp": 16, "frc": 0}


def test_concurrent_clients_are_all_answered(sim):
    results = []

    def get():
        results.append(sim.get("/api/status?filter=amp")[0])
    threads = [threading.Thread(target=get) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results.count(200) >= 6 and set(results) <= {200, 503}


# ---- secrets and protection ----------------------------------------------------

def test_secrets_are_write_only(sim):
    assert sim.api_set(ocppck="PRIVATE-KEY-PEM", AuthorizationKey="0123456789abcdef0123") == \
        (200, {"ocppck": True, "AuthorizationKey": True})
    st = sim.status()
    assert st["ocppck"] is None and st["AuthorizationKey"] is None
    assert "PRIVATE-KEY-PEM" not in json.dumps(st) and "0123456789abcdef0123" not in "\n".join(sim.output)
    sim.api_set(ocppck="", AuthorizationKey="")


def test_open_api_sends_cors_star_like_go_e(sim):
    _, headers, _ = raw_get(sim, "/api/set?fna=%22OpenWallbox%22")
    assert headers.get("Access-Control-Allow-Origin") == "*"


@pytest.fixture
def protected(sim):
    assert sim.api_set(apw="s3cret") == (200, {"apw": True})
    yield sim
    auth = {"Authorization": "Basic " + base64.b64encode(b"x:s3cret").decode()}
    raw_get(sim, "/api/set?apw=%22%22&apr=false", auth)
    assert sim.status("apr") == {"apr": False}


def test_password_required_for_set_when_set(protected):
    code, headers, _ = raw_get(protected, "/api/set?amp=10")
    assert code == 401 and "Basic" in headers.get("WWW-Authenticate", "")
    assert protected.status("amp")["amp"] == 16


def test_password_via_basic_auth_allows_set_without_cors_star(protected):
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}
    code, headers, body = raw_get(protected, "/api/set?amp=10", auth)
    assert code == 200 and json.loads(body) == {"amp": True}
    assert "Access-Control-Allow-Origin" not in headers
    raw_get(protected, "/api/set?amp=16", auth)


def test_wrong_password_is_refused(protected):
    code, _, _ = raw_get(protected, "/api/set?amp=10", {"Authorization": "Bearer nope"})
    assert code == 401


def test_cross_site_request_refused_even_with_password(protected):
    auth = {"Authorization": "Bearer s3cret", "Origin": "http://evil.example"}
    code, _, _ = raw_get(protected, "/api/set?amp=10", auth)
    assert code == 403 and protected.status("amp")["amp"] == 16


def test_status_stays_open_unless_apr(protected):
    assert raw_get(protected, "/api/status?filter=amp")[0] == 200
    auth = {"Authorization": "Bearer s3cret"}
    assert raw_get(protected, "/api/set?apr=true", auth)[0] == 200
    assert raw_get(protected, "/api/status?filter=amp")[0] == 401
    assert raw_get(protected, "/api/status?filter=amp", auth)[0] == 200


# ---- status page ---------------------------------------------------------------------

def test_status_page_is_small_self_contained_html(sim):
    code, headers, body = raw_get(sim, "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert len(body) < 4096
    assert b"http://" not in body and b"https://" not in body and b"/api/status" in body
