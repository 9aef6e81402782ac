"""Out-of-order and malformed frames from the central system, end to end on both
runtimes: the charger answers with the CALLERROR that OCPP-J asks for when an
answer is due (ocpp16-notes.md decisions 1-3), ignores what cannot or must not be
answered, and the session goes on over the same WebSocket."""
import json
import time

import pytest
from websockets.protocol import State

pytestmark = pytest.mark.e2e


def start(sims, runtime, tmp_path, csms):
    # acs=1: a transaction starts only once authorized.
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=("acs=1",)).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    return sim


def answers(csms, since):
    """The charger's CALLRESULT and CALLERROR frames after frame number `since`."""
    out = []
    for d, text in list(csms.cp().frames)[since:]:
        if d == "<":
            m = json.loads(text)
            if m[0] in (3, 4):
                out.append(m)
    return out


def charger_calls(csms, action):
    return [json.loads(t) for d, t in list(csms.cp().frames)
            if d == "<" and json.loads(t)[0] == 2 and json.loads(t)[2] == action]


def wait_log(sim, text, timeout=20.0):
    """Wait until the charger has logged a line containing text."""
    deadline = time.monotonic() + timeout
    while not any(text in line for line in list(sim.output)):
        if time.monotonic() > deadline:
            raise AssertionError("charger never logged %r:\n%s" % (text, sim.log()))
        time.sleep(0.05)


def assert_session_goes_on(csms, sim, connected_ms):
    """A following GetConfiguration gets its normal answer over the same, still open WebSocket."""
    res = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert [e["key"] for e in res["configurationKey"]] == ["HeartbeatInterval"]
    assert len(csms.csms.connections) == 1
    assert csms.cp()._connection.ws.state is State.OPEN
    assert sim.status("ocppca", "ocppa") == {"ocppca": connected_ms, "ocppa": True}


# (test id, frame, what the charger logs when it drops it)
IGNORED = [
    ("callresult_with_unknown_id", '[3,"nobody-asked",{"currentTime":"2025-01-01T00:00:00Z"}]',
     "no outstanding call"),
    ("callerror_with_unknown_id", '[4,"nobody-asked","InternalError","oops",{}]', "no outstanding call"),
    ("unknown_message_type_id", '[5,"t-1","GetConfiguration",{}]', "unknown message type"),
    ("text_that_is_not_json", "hello charger", "not JSON"),
    ("json_object_not_array", '{"messageTypeId":2,"action":"GetConfiguration"}', "not an array"),
    ("empty_array", "[]", "no message type id"),
    ("call_whose_id_is_not_a_string", '[2,null,"GetConfiguration",{}]', "CALL id unreadable"),
]


@pytest.mark.parametrize("frame,dropped", [c[1:] for c in IGNORED], ids=[c[0] for c in IGNORED])
def test_frame_that_cannot_be_answered_is_ignored_and_the_session_goes_on(sims, runtime, tmp_path, csms,
                                                                          frame, dropped):
    sim = start(sims, runtime, tmp_path, csms)
    connected = sim.status("ocppca")["ocppca"]
    n = len(csms.cp().frames)
    csms.send_raw(frame)
    wait_log(sim, dropped)
    assert_session_goes_on(csms, sim, connected)
    # The charger processes frames in order: anything it answered to the bad frame came before this.
    got = answers(csms, n)
    assert len(got) == 1 and got[0][0] == 3 and "configurationKey" in got[0][2], got


# (test id, frame, the CALLERROR code the answer carries)
ANSWERED = [
    ("call_that_is_not_valid_json", '[2,"f-1","GetConfiguration",{"key":[', "FormationViolation"),
    ("call_with_three_elements", '[2,"f-1","GetConfiguration"]', "FormationViolation"),
    ("call_with_five_elements", '[2,"f-1","GetConfiguration",{},{}]', "FormationViolation"),
    ("call_whose_payload_is_not_an_object", '[2,"f-1","GetConfiguration",["HeartbeatInterval"]]',
     "FormationViolation"),
    ("call_of_an_unknown_action", '[2,"f-1","OpenThePodBayDoors",{}]', "NotImplemented"),
    # Known OCPP 1.6 actions that only a charge point sends: nothing a charge point answers.
    ("call_of_heartbeat", '[2,"f-1","Heartbeat",{}]', "NotSupported"),
    ("call_of_boot_notification",
     '[2,"f-1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]', "NotSupported"),
]


@pytest.mark.parametrize("frame,code", [c[1:] for c in ANSWERED], ids=[c[0] for c in ANSWERED])
def test_bad_call_gets_the_right_callerror_and_the_session_goes_on(sims, runtime, tmp_path, csms, frame, code):
    sim = start(sims, runtime, tmp_path, csms)
    connected = sim.status("ocppca")["ocppca"]
    n = len(csms.cp().frames)
    csms.send_raw(frame)
    got = csms.wait_for(lambda: answers(csms, n), timeout=10)
    assert len(got) == 1
    kind, mid, err, description, details = got[0]
    assert (kind, mid, err) == (4, "f-1", code)
    assert isinstance(description, str) and details == {}
    assert_session_goes_on(csms, sim, connected)


# ---- answers to the charger's own CALLs -----------------------------------------------------

class _Holding:
    """The CSMS side of the connection with the charger's CALLs of one action
    swallowed: recorded in the frames, never routed, so never answered."""

    def __init__(self, conn, action):
        self.conn = conn
        self.action = action

    def __getattr__(self, name):
        return getattr(self.conn, name)

    async def send(self, text):
        await self.conn.send(text)

    async def recv(self):
        while True:
            text = await self.conn.recv()
            m = json.loads(text)
            if not (m[0] == 2 and m[2] == self.action):
                return text


def hold(csms, action):
    cp = csms.cp()
    csms.do(lambda: setattr(cp, "_connection", _Holding(cp._connection, action)))
    # The CSMS's reader is still waiting on the connection it had: one round trip moves it over.
    csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})


def release(csms):
    cp = csms.cp()
    csms.do(lambda: setattr(cp, "_connection", cp._connection.conn))
    csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})


def test_answer_with_another_id_does_not_settle_the_outstanding_call(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    connected = sim.status("ocppca")["ocppca"]
    hold(csms, "Authorize")
    sim.sim_set(ev="C")
    sim.sim_set(rfid="CARD1")
    mid = csms.wait_for(lambda: charger_calls(csms, "Authorize"))[0][1]
    csms.send_raw('[3,"%s",{"idTagInfo":{"status":"Blocked"}}]' % (mid + "-other"))
    wait_log(sim, "no outstanding call")
    csms.send_raw('[3,"%s",{"idTagInfo":{"status":"Accepted"}}]' % mid)
    # The Accepted answer was the one taken: the transaction starts.
    release(csms)
    st = csms.wait_received("StartTransaction")
    assert st[0]["idTag"] == "CARD1"
    assert_session_goes_on(csms, sim, connected)


def test_late_answer_to_a_timed_out_call_is_ignored_and_the_next_call_works(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    connected = sim.status("ocppca")["ocppca"]
    hold(csms, "Authorize")
    sim.sim_set(rfid="CARD1")
    mid = csms.wait_for(lambda: charger_calls(csms, "Authorize"))[0][1]
    wait_log(sim, "offline rules apply")  # the charger stopped waiting (its Authorize timeout)
    n = len(csms.cp().frames)
    csms.send_raw('[3,"%s",{"idTagInfo":{"status":"Accepted"}}]' % mid)
    wait_log(sim, "no outstanding call")
    assert_session_goes_on(csms, sim, connected)
    assert [m[0] for m in answers(csms, n)] == [3]  # only GetConfiguration's answer
    # The charger's next CALL goes out under a new id and is answered as usual.
    release(csms)
    sim.sim_set(rfid="CARD1")
    calls = csms.wait_for(lambda: len(charger_calls(csms, "Authorize")) >= 2 and charger_calls(csms, "Authorize"))
    assert calls[1][1] != mid
    sim.sim_set(ev="C")
    assert csms.wait_received("StartTransaction")[0]["idTag"] == "CARD1"
