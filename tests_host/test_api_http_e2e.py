"""The go-e HTTP API of the running simulator, on both runtimes, over real
sockets: settings across a reboot, effects on the simulated hardware, hostile,
slow and concurrent clients, secrets kept out of the log. One simulator per
runtime serves the module; each test leaves the keys it changed as it found
them. The routes' semantics without sockets are in test_api_http.py."""
import json
import socket
import threading
import time

import pytest

from tests_host.certs import pem_pair
from tests_host.conftest import RUNTIMES
from tests_host.harness import Sim

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=RUNTIMES)
def sim(request, tmp_path_factory):
    s = Sim(request.param, tmp_path_factory.mktemp("flash-" + request.param)).start()
    yield s
    s.kill()


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


# ---- settings across a reboot -------------------------------------------------

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
        # The lock output moves first; the charger reports it locked once its feedback confirms.
        sim.wait_status(lambda st: st["cus"] == 3, keys=("lck", "cus"))
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


# ---- secrets ---------------------------------------------------------------------

def test_secrets_are_write_only(sim):
    key = pem_pair()[1]
    secret_line = key.splitlines()[1]
    assert sim.api_set(ocppck=key, AuthorizationKey="0123456789abcdef0123") == \
        (200, {"ocppck": True, "AuthorizationKey": True})
    st = sim.status()
    assert st["ocppck"] is None and st["AuthorizationKey"] is None
    assert secret_line not in json.dumps(st) and "0123456789abcdef0123" not in "\n".join(sim.output)
    sim.api_set(ocppck="", AuthorizationKey="")
