"""The OCPP session's registration and reconnect timing, in process: the CSMS's
answers and the connection come from fakes, and waits are recorded, not slept."""
import asyncio

import pytest

from firmware.clock import Clock
from firmware.ocpp import session as session_mod
from firmware.ocpp.session import DEFAULT_BOOT_RETRY_S, OcppSession, define_keys
from firmware.settings import Settings

BOOT = {"chargePointVendor": "ACME", "chargePointModel": "Wallbox-1"}
NOW = "2031-01-01T00:00:00Z"


class Stop(Exception):
    """Ends a loop that would otherwise run forever."""


def make(**values):
    settings = Settings()
    define_keys(settings)
    for k, v in values.items():
        assert settings.set(k, v) is None
    ticks = [0]
    return OcppSession(settings, Clock(lambda: ticks[0]), BOOT)


def fake_pause(session, limit=None):
    """Replace the session's waits: record each (ms) and return at once (not woken)."""
    waits = []

    async def pause(event, ms):
        waits.append(ms)
        if limit is not None and len(waits) >= limit:
            raise Stop()
        return False
    session._pause = pause
    return waits


def fake_csms(session, answers):
    """BootNotification answers in order: (status, interval)."""
    sent = []
    answers = list(answers)

    async def call(action, payload, timeout_ms=None, msg_id=None):
        sent.append(action)
        status, interval = answers.pop(0)
        return {"status": status, "currentTime": NOW, "interval": interval}
    session.rpc.call = call
    return sent


def boot(session):
    asyncio.run(asyncio.wait_for(session._boot(0), 5))


def test_accepted_interval_sets_the_heartbeat_interval():
    s = make()
    fake_pause(s)
    fake_csms(s, [("Accepted", 60)])
    boot(s)
    assert s.settings.get("HeartbeatInterval") == 60 and s.registration == "Accepted"
    assert s.clock.iso() == NOW


def test_accepted_interval_zero_keeps_the_configured_heartbeat_interval():
    s = make(HeartbeatInterval=120)
    fake_pause(s)
    fake_csms(s, [("Accepted", 0)])
    boot(s)
    assert s.settings.get("HeartbeatInterval") == 120


def test_accepted_interval_zero_with_heartbeats_off_uses_the_default():
    s = make(HeartbeatInterval=0)
    fake_pause(s)
    fake_csms(s, [("Accepted", 0)])
    boot(s)
    assert s.settings.get("HeartbeatInterval") == 300


def test_pending_interval_zero_retries_after_the_default_wait():
    s = make()
    waits = fake_pause(s)
    sent = fake_csms(s, [("Pending", 0), ("Rejected", -5), ("Accepted", 30)])
    boot(s)
    assert waits == [DEFAULT_BOOT_RETRY_S * 1000] * 2 and sent == ["BootNotification"] * 3


def test_interval_above_the_maximum_is_clamped_not_ignored():
    s = make()
    hi = s.settings.find("HeartbeatInterval").hi
    waits = fake_pause(s)
    fake_csms(s, [("Pending", 10 ** 9), ("Accepted", hi + 1)])
    boot(s)
    assert waits == [hi * 1000]
    assert s.settings.get("HeartbeatInterval") == hi


def test_failed_connections_wait_longer_each_time_with_jitter(monkeypatch):
    s = make(ocppe=True, ocppu="ws://127.0.0.1:9/ocpp/CP1")
    attempts = []

    async def connect(url):
        attempts.append(url)
        raise OSError("connection refused")
    s._connect = connect
    monkeypatch.setattr(session_mod.log, "verbose", False)
    runs = []
    for _ in range(2):
        waits = fake_pause(s, limit=8)
        with pytest.raises(Stop):
            asyncio.run(asyncio.wait_for(s.run(), 5))
        runs.append(waits)
        s._backoff.reset()
    assert len(attempts) == 16
    for waits in runs:
        # Doubling with +-25 % jitter: each wait is longer than the one before, up to the cap.
        assert all(b > a for a, b in zip(waits, waits[1:6])), waits
        for n, ms in enumerate(waits[:6]):
            assert 0.75 * 1000 * 2 ** n <= ms <= 1.25 * 1000 * 2 ** n
        assert 45000 <= waits[6] <= 60000 and 45000 <= waits[7] <= 60000
    assert runs[0] != runs[1]  # jittered: two chargers do not retry in step


def test_rejected_registration_answers_nothing_until_a_retry_is_accepted():
    s = make()
    fake_pause(s)
    fake_csms(s, [("Rejected", 60), ("Rejected", 60), ("Pending", 60), ("Accepted", 60)])
    silent = []
    real_call = s.rpc.call

    async def call(action, payload, timeout_ms=None, msg_id=None):
        silent.append(s.rpc.silent)  # as the BootNotification goes out
        return await real_call(action, payload, timeout_ms, msg_id)
    s.rpc.call = call
    boot(s)
    # Silent from the first Rejected answer until the Pending one; answering again once Accepted.
    assert silent == [False, True, True, False] and s.rpc.silent is False


def test_a_reconnect_while_rejected_waits_for_the_rest_of_the_interval(monkeypatch):
    s = make()
    fake_pause(s, limit=1)
    fake_csms(s, [("Rejected", 60)])
    with pytest.raises(Stop):
        boot(s)
    slept = []

    async def sleep_ms(ms):
        slept.append(ms)
    monkeypatch.setattr(session_mod, "sleep_ms", sleep_ms)
    sent = fake_csms(s, [("Accepted", 60)])
    boot(s)  # the connection dropped and came back
    assert len(slept) == 1 and 55000 < slept[0] <= 60000 and sent == ["BootNotification"]
    assert s.rpc.silent is False


def test_remote_start_and_stop_are_rejected_until_accepted_other_calls_answered():
    s = make()
    for status in (None, "Pending", "Rejected"):
        s.registration = status
        assert s._screen("RemoteStartTransaction") == {"status": "Rejected"}
        assert s._screen("RemoteStopTransaction") == {"status": "Rejected"}
        assert s._screen("GetConfiguration") is None and s._screen("TriggerMessage") is None
    s.registration = "Accepted"
    assert s._screen("RemoteStartTransaction") is None and s._screen("RemoteStopTransaction") is None


def test_a_new_server_is_not_bound_by_the_old_servers_rejection():
    s = make()
    fake_pause(s, limit=1)
    fake_csms(s, [("Rejected", 60)])
    with pytest.raises(Stop):
        boot(s)
    assert s.rpc.silent is True
    s.settings.set("ocppu", "ws://127.0.0.1:9/ocpp/CP2")
    assert s.rpc.silent is False and s._retry_at is None


def test_a_call_right_behind_the_rejected_answer_is_not_answered():
    import json
    s = make()
    fake_pause(s, limit=1)
    sent = []

    async def send(text):
        sent.append(json.loads(text))
    s.rpc.connected(send)

    async def go():
        task = asyncio.create_task(s._boot(0))
        while not sent:
            await asyncio.sleep(0)
        answer = {"status": "Rejected", "currentTime": NOW, "interval": 60}
        await s.rpc.feed(json.dumps([3, sent[0][1], answer]))
        await s.rpc.feed('[2,"c1","GetConfiguration",{}]')  # before the registration task runs again
        with pytest.raises(Stop):
            await task
    asyncio.run(go())
    assert [m[2] for m in sent] == ["BootNotification"]


# ---- messages on demand (TriggerMessage) ----

def test_trigger_sends_a_heartbeat_only_while_online():
    s = make()
    calls = []

    async def heartbeat():
        calls.append("Heartbeat")
    s.heartbeat = heartbeat

    async def go():
        assert s.trigger("Heartbeat") is False
        s.online.set()
        assert s.trigger("Heartbeat") is True
        await asyncio.sleep(0)
    asyncio.run(go())
    assert calls == ["Heartbeat"]


def test_trigger_of_boot_notification_wakes_a_pending_registration():
    s = make()
    assert s.trigger("BootNotification") is True and s._boot_wake.is_set()


def test_trigger_reaches_a_registered_message_builder_and_refuses_unknown_messages():
    s = make()
    seen = []
    s.register_trigger("StatusNotification", lambda cid: seen.append(cid) or cid in (None, 0, 1))
    assert s.trigger("StatusNotification", 1) is True and seen == [1]
    assert s.trigger("StatusNotification", 5) is False
    assert s.trigger("DiagnosticsStatusNotification") is False


def test_the_application_registers_every_message_it_can_send_on_demand(tmp_path):
    from boards.host.board import HostBoard
    from firmware.app import App
    app = App(HostBoard(str(tmp_path)), str(tmp_path))
    assert sorted(app.session.triggers) == ["BootNotification", "Heartbeat", "MeterValues", "StatusNotification"]
