"""Text through the running charger on both runtimes: an emoji sent as an escaped
surrogate pair comes back as one valid UTF-8 character over HTTP and OCPP, lone
surrogates and invalid JSON are refused alike (FormationViolation over OCPP, a
clear message over HTTP), nothing the charger sends is invalid UTF-8, and deep
nesting is answered instead of crashing the handler."""
import json
import urllib.parse
import urllib.request

import pytest
from websockets.protocol import State

from tests_host.conftest import RUNTIMES
from tests_host.harness import online_charger

pytestmark = pytest.mark.e2e

CAR = "\U0001F697"


@pytest.fixture(scope="module", params=RUNTIMES)
def charger(request, tmp_path_factory):
    yield from online_charger(request.param, tmp_path_factory.mktemp("flash-" + request.param))


def raw_get(sim, path):
    try:
        with urllib.request.urlopen(sim.base + path, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def strict_json(body):
    """The body as a strict JSON client (aiohttp's .json()) reads it."""
    return json.loads(body.decode("utf-8"))


def call_raw(csms, text, mid):
    """Send a raw frame; return the charger's answer with that id (exactly one)."""
    cp = csms.cp()
    csms.send_raw(text)

    def got():
        return [m for m in (json.loads(t) for d, t in list(cp.frames) if d == "<")
                if m[0] in (3, 4) and m[1] == mid]
    csms.wait_for(got)
    return got()


def test_emoji_set_over_http_is_one_character_served_as_valid_utf8(charger):
    csms, sim = charger
    old = sim.status("fna")["fna"]
    # json.dumps escapes it as "\ud83d\ude97", as most encoders do.
    assert sim.api_set(fna="Garage " + CAR) == (200, {"fna": True})
    status, body = raw_get(sim, "/api/status?filter=fna")
    assert status == 200 and strict_json(body) == {"fna": "Garage " + CAR}
    # 31 cars are 31 characters: within fna's 32, however an encoder counts them.
    assert sim.api_set(fna=CAR * 31)[0] == 200
    assert sim.api_set(fna=old) == (200, {"fna": True})


def test_lone_surrogate_over_http_is_refused_with_a_clear_message(charger):
    csms, sim = charger
    old = sim.status("fna")["fna"]
    status, body = raw_get(sim, "/api/set?fna=" + urllib.parse.quote('"Garage \\ud800x"'))
    assert status != 200 and "lone surrogate" in strict_json(body)["fna"]
    assert sim.status("fna")["fna"] == old


@pytest.mark.parametrize("query", ["ama=%C0%AF", "ama=%22%ED%A0%BD%22", "%C0%AF=1"])
def test_invalid_utf8_in_a_request_is_never_echoed(charger, query):
    csms, sim = charger
    status, body = raw_get(sim, "/api/set?" + query)
    assert status >= 400
    strict_json(body)  # valid UTF-8 and JSON, whatever it says


def test_invalid_json_call_gets_formation_violation(charger):
    csms, sim = charger
    got = call_raw(csms, '[2,"tc-1","GetConfiguration",{},]', "tc-1")
    assert [m[:3] for m in got] == [[4, "tc-1", "FormationViolation"]]


def test_deeply_nested_call_gets_formation_violation_and_no_traceback(charger):
    csms, sim = charger
    deep = "[" * 1000 + "]" * 1000
    got = call_raw(csms, '[2,"deep-1","GetConfiguration",{"key":%s}]' % deep, "deep-1")
    assert [m[:3] for m in got] == [[4, "deep-1", "FormationViolation"]]
    data = json.dumps(deep)
    got = call_raw(csms, '[2,"deep-2","DataTransfer",{"vendorId":"OpenWallbox","messageId":"GetApiKeys",'
                         '"data":%s}]' % data, "deep-2")
    assert len(got) == 1 and got[0][0] == 3, got
    assert "Traceback" not in sim.log(400)


def test_emoji_over_ocpp_is_echoed_as_valid_utf8_and_counted_as_one(charger):
    csms, sim = charger
    key = "Key" + CAR
    # The ocpp package sends the escaped form; the charger echoes the unknown key.
    res = csms.call("CP1", "GetConfiguration", {"key": [key]})
    assert res["unknownKey"] == [key]
    # 30 characters (the schema's maxLength is 50), 60 UTF-16 units.
    got = call_raw(csms, '[2,"dt-1","DataTransfer",{"vendorId":"nobody","messageId":"%s"}]'
                   % ("\\ud83d\\ude97" * 30), "dt-1")
    assert got == [[3, "dt-1", {"status": "UnknownVendorId"}]]
    got = call_raw(csms, '[2,"dt-2","DataTransfer",{"vendorId":"nobody","messageId":"\\ud800x"}]', "dt-2")
    assert [m[:3] for m in got] == [[4, "dt-2", "FormationViolation"]]
    # A peer that checks UTF-8 (websockets does) would have closed with 1007.
    assert csms.cp()._connection.ws.state is State.OPEN and len(csms.csms.connections) == 1
