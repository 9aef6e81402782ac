"""The HTTP API's security and capacity on both runtimes, over real sockets:
settings too long for a URL through POST /api/set, concurrent clients, secrets
and passwords kept out of the log and the API, and the boot time after a
reboot. The password and cross-site guard without sockets: test_api_http.py."""
import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from firmware import log
from tests_host.certs import pem_pair
from tests_host.conftest import RUNTIMES
from tests_host.harness import Sim, free_port
from tests_host.test_api_http_e2e import slow_clients

pytestmark = pytest.mark.e2e

PEM_BODY = base64.b64encode(bytes(range(256)) * 40).decode()  # every base64 character, + and / too


@pytest.fixture(scope="module", params=RUNTIMES)
def sim(request, tmp_path_factory):
    s = Sim(request.param, tmp_path_factory.mktemp("flash-" + request.param)).start()
    yield s
    s.kill()


def request(sim, path, data=None, headers=None, method=None, timeout=10):
    req = urllib.request.Request(sim.base + path, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def post_set(sim, headers=None, **kv):
    body = urllib.parse.urlencode({k: json.dumps(v) for k, v in kv.items()}).encode()
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    return request(sim, "/api/set", body, h, "POST")


def fake_pem(size):
    """A real certificate after filler lines (text outside a PEM block is allowed) up to size,
    without "=" (base64 padding), as a form body must be for the test of a field without "="."""
    cert = pem_pair()[0]
    while "=" in cert:
        cert = pem_pair()[0]
    lines = [PEM_BODY[i:i + 64] + "\n" for i in range(0, (size - len(cert)) // 65 * 65, 65)]
    return "".join(lines) + cert


# ---- POST /api/set -----------------------------------------------------------

def test_post_set_takes_an_8kb_certificate(sim):
    pem = fake_pem(8192)
    assert 8000 < len(pem) <= 8192
    assert post_set(sim, ocppsc=pem) == (200, {"ocppsc": True})
    assert sim.status("ocppsc") == {"ocppsc": pem}
    assert post_set(sim, ocppsc="") == (200, {"ocppsc": True})


def test_get_set_takes_a_3kb_request_line(sim):
    pem = fake_pem(2200)
    path = "/api/set?" + urllib.parse.urlencode({"ocppsc": json.dumps(pem)})
    assert 2000 < len(path) < 4000
    assert sim.get(path) == (200, {"ocppsc": True})
    assert sim.get("/api/set?ocppsc=%22%22") == (200, {"ocppsc": True})


def test_post_body_over_16kb_gives_413(sim):
    code, _ = post_set(sim, ocppsc="x" * 17000)
    assert code == 413


def test_post_set_of_a_large_body_without_key_names_the_bad_field_in_json(sim):
    # A certificate posted as the whole form body: one 10 KB field without "=".
    pem = fake_pem(10240)
    code, body = request(sim, "/api/set", pem.encode(), {"Content-Type": "application/x-www-form-urlencoded"}, "POST")
    key = urllib.parse.unquote_plus(pem)  # the form decoding turns "+" into " "
    assert code == 500 and list(body) == [key]
    assert body[key].startswith(key + ': invalid JSON value ""')
    code, body = request(sim, "/api/set", b"fna&amp=10", {"Content-Type": "application/x-www-form-urlencoded"},
                         "POST")
    assert code == 500 and body["amp"] is True and body["fna"].startswith('fna: invalid JSON value ""')
    assert sim.status("fna", "amp") == {"fna": "OpenWallbox", "amp": 10}
    assert post_set(sim, amp=16) == (200, {"amp": True})


# ---- concurrent clients ---------------------------------------------------------------

@pytest.mark.parametrize("n", [6, 10])
def test_prompt_concurrent_clients_all_get_200(sim, n):
    results = []
    go = threading.Barrier(n)

    def get():
        go.wait()
        results.append(sim.get("/api/status?filter=amp", timeout=20)[0])
    threads = [threading.Thread(target=get) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * n


def test_prompt_clients_get_200_beside_slow_ones(sim):
    stop = threading.Event()
    slow_threads = slow_clients(sim, 4, stop)
    try:
        time.sleep(0.3)  # the slow clients hold four places
        test_prompt_concurrent_clients_all_get_200(sim, 6)
    finally:
        stop.set()
        for t in slow_threads:
            t.join(10)


# ---- secrets in the log and the API -------------------------------------------------------

def test_frame_log_masks_write_only_keys_in_any_letter_case(capsys):
    for key in ("AuthorizationKey", "authorizationkey", "AUTHORIZATIONKEY"):
        log.frame("in", '[2,"1","ChangeConfiguration",{"key":"%s","value":"TOPSECRET-0123456789"}]' % key)
        log.frame("in", '[2,"1","ChangeConfiguration",{"value": "TOPSECRET-0123456789", "key": "%s"}]' % key)
    log.frame("out", '{"ocppCK":"TOPSECRET-0123456789","amp":16}', ("ocppck",))
    out = capsys.readouterr().out
    assert "TOPSECRET" not in out and out.count("***") == 7


def test_url_password_is_masked_in_reads_and_kept_when_written_back(sim):
    port = free_port()  # nothing listens: the charger logs its connection attempts
    url = "ws://cp7:pa55-w0rd@127.0.0.1:%d/ocpp/CP7" % port
    masked = "ws://cp7:***@127.0.0.1:%d/ocpp/CP7" % port
    assert sim.api_set(ocppu=url, ocppe=True) == (200, {"ocppu": True, "ocppe": True})
    try:
        assert sim.status("ocppu") == {"ocppu": masked}
        assert "pa55-w0rd" not in json.dumps(sim.status())
        # A client that writes back what it read keeps the password, also with another path.
        assert sim.api_set(ocppu=masked.replace("CP7", "CP8")) == (200, {"ocppu": True})
        stored = json.loads((open(sim.state_dir + "/settings.json").read()))["ocppu"]
        assert stored == url.replace("CP7", "CP8")
        # The masked password does not go along to another server.
        code, body = sim.api_set(ocppu=masked.replace("127.0.0.1", "192.0.2.1"))
        assert code == 500 and "masked" in body["ocppu"]
        sim.wait_status(lambda st: st["ocpple"] and "CP8" in st["ocpple"], keys=("ocpple",))
        assert "pa55-w0rd" not in json.dumps(sim.status("ocpple"))
        deadline = time.monotonic() + 10
        while not any("cp7:***@" in line for line in list(sim.output)):  # the console reader may lag
            assert time.monotonic() < deadline, sim.log()
            time.sleep(0.05)
        assert not any("pa55-w0rd" in line for line in sim.output)
    finally:
        sim.api_set(ocppe=False, ocppu="")


def test_changeconfiguration_in_lower_case_never_logs_the_key(sims, runtime, tmp_path, csms):
    sim = sims(runtime, tmp_path / "flash", url=csms.url("LOG1")).start()
    csms.wait_received("BootNotification", 1, cp_id="LOG1")
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    secret = "lowercase-secret-4711"
    res = csms.call("LOG1", "ChangeConfiguration", {"key": "authorizationkey", "value": secret})
    assert res["status"] == "Accepted"
    deadline = time.monotonic() + 10
    while not any("ChangeConfiguration" in line for line in sim.output):  # the console reader may lag
        assert time.monotonic() < deadline, sim.log()
        time.sleep(0.05)
    assert not any(secret in line for line in sim.output)


# ---- boot time --------------------------------------------------------------------------

def test_rst_restarts_rbt(sims, runtime, tmp_path):
    s = sims(runtime, tmp_path / "flash").start()
    before = s.wait_status(lambda st: st["rbt"] >= 3000, keys=("rbt",))["rbt"]
    s.rst()
    after = s.status("rbt")["rbt"]
    assert after < before and after < 3000
