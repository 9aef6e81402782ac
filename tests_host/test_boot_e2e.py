"""Boot, heartbeat and reconnect, end to end: the simulator on both runtimes
against the ocpp-based CSMS over real WebSockets."""
import datetime
import json
import time

import pytest

pytestmark = pytest.mark.e2e


def start(sims, runtime, tmp_path, csms, *sets, cp_id="CP1"):
    return sims(runtime, tmp_path / "flash", url=csms.url(cp_id), sets=sets).start()


def test_boot_accepted_and_reported_over_api(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    boots = csms.wait_received("BootNotification")
    assert boots[0]["chargePointVendor"] and boots[0]["chargePointModel"] and boots[0]["firmwareVersion"]
    st = sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa", "ocppc", "ocpps", "ocppaa", "ocppca"))
    assert st["ocppc"] is True and st["ocpps"] is True
    assert isinstance(st["ocppaa"], int) and st["ocppaa"] >= st["ocppca"]


# Timers may fire a scheduler tick early; anything more would be a retry before the interval.
TIMER_SLACK_S = 0.02


def frames(csms, cp_id="CP1"):
    """(receipt time, direction, message) of every frame of the charger's connections, as the CSMS logged them."""
    def collect():
        return [(t, direction, json.loads(text)) for c in csms.csms.connections if c.id == cp_id
                for (direction, text), t in zip(c.frames, c.frame_times)]
    return csms.do(collect)


def calls(csms, cp_id="CP1"):
    """(receipt time, action) of every CALL from the charger."""
    return [(t, m[2]) for t, d, m in frames(csms, cp_id) if d == "<" and m[0] == 2]


def assert_spaced(times, interval):
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps and min(gaps) >= interval - TIMER_SLACK_S, gaps


def test_pending_answers_csms_calls_and_sends_nothing_but_boot_notification(sims, runtime, tmp_path, csms):
    csms.do(lambda: setattr(csms.csms, "boot_status", "Pending"))
    csms.do(lambda: setattr(csms.csms, "boot_interval", 1))
    sim = start(sims, runtime, tmp_path, csms)
    csms.wait_received("BootNotification", 2)
    # While Pending the charger answers the CSMS's calls with a real CALLRESULT.
    res = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]})
    assert res["unknownKey"] == ["NoSuchKey"]
    assert [(k["key"], k["value"]) for k in res["configurationKey"]] == [("HeartbeatInterval", "300")]
    csms.wait_received("BootNotification", 3)
    assert sim.status("ocppa")["ocppa"] is False
    csms.do(lambda: setattr(csms.csms, "boot_status", "Accepted"))
    csms.wait_received("Heartbeat", 1, timeout=20)
    log = frames(csms)
    # Each BootNotification with the status the CSMS answered it with.
    status = {m[1]: m[2].get("status") for t, d, m in log if d == ">" and m[0] == 3}
    boots = [(t, status[m[1]]) for t, d, m in log if d == "<" and m[0] == 2 and m[2] == "BootNotification"]
    assert [s for _, s in boots[:-1]] == ["Pending"] * (len(boots) - 1) and boots[-1][1] == "Accepted"
    assert len(boots) >= 4
    t_accepted = boots[-1][0]
    # Before Accepted: nothing but BootNotification from the charger, and its answer to the CSMS's call.
    before = [m for t, d, m in log if d == "<" and t < t_accepted]
    assert {m[2] for m in before if m[0] == 2} == {"BootNotification"}
    assert [m[0] for m in before if m[0] != 2] == [3]
    # The retries, the Accepted one included, come no sooner than the interval given.
    assert_spaced([t for t, _ in boots], 1)


def test_rejected_boot_is_retried_no_sooner_than_the_interval(sims, runtime, tmp_path, csms):
    csms.do(lambda: setattr(csms.csms, "boot_status", "Rejected"))
    csms.do(lambda: setattr(csms.csms, "boot_interval", 2))
    sim = start(sims, runtime, tmp_path, csms)
    csms.wait_received("BootNotification", 3, timeout=20)
    seen = calls(csms)
    assert {a for _, a in seen} == {"BootNotification"}
    assert_spaced([t for t, _ in seen], 2)
    st = sim.status("ocppa", "ocpple")
    assert st["ocppa"] is False and "Rejected" in st["ocpple"]
    csms.do(lambda: setattr(csms.csms, "boot_status", "Accepted"))
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",), timeout=20)


def test_wall_clock_comes_from_the_csms_current_time(sims, runtime, tmp_path, csms):
    # Far from the host's time: a timestamp that follows it can only come from currentTime.
    answer = {"status": "Accepted", "currentTime": "2031-01-01T00:00:00.000Z", "interval": 300}
    csms.do(lambda: csms.csms.policies.update(BootNotification=lambda cp, payload: answer))
    start(sims, runtime, tmp_path, csms)
    sent = csms.wait_received("StatusNotification", 1)
    stamp = datetime.datetime.fromisoformat(sent[0]["timestamp"].replace("Z", "+00:00"))
    booted = datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc)
    assert datetime.timedelta(0) <= stamp - booted < datetime.timedelta(seconds=30), sent[0]


def test_heartbeats_follow_the_configured_interval(sims, runtime, tmp_path, csms):
    csms.do(lambda: setattr(csms.csms, "boot_interval", 1))
    sim = start(sims, runtime, tmp_path, csms)
    csms.wait_received("Heartbeat", 1, timeout=20)
    t0 = time.monotonic()
    csms.wait_received("Heartbeat", 4, timeout=20)
    assert time.monotonic() - t0 >= 2.0  # three more at 1 s intervals, not a burst
    assert sim.status("ocpph")["ocpph"] == 1
    # A changed interval applies without reconnecting.
    assert sim.api_set(ocpph=30) == (200, {"ocpph": True})
    n = len(csms.received("Heartbeat"))
    time.sleep(2.5)  # nothing to await: asserting an absence over a span
    assert len(csms.received("Heartbeat")) == n


def test_reconnects_after_csms_outage_without_new_boot(sims, runtime, tmp_path, csms):
    csms.do(lambda: setattr(csms.csms, "boot_interval", 1))
    sim = start(sims, runtime, tmp_path, csms)
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    csms.stop_server()
    sim.wait_status(lambda s: s["ocppc"] is False, keys=("ocppc",))
    csms.start_server()
    csms.wait_for(lambda: len(csms.csms.connections) >= 2, timeout=60)
    csms.wait_for(lambda: any(a == "Heartbeat" for a, _ in csms.csms.connections[-1].received), timeout=20)
    assert len(csms.received("BootNotification")) == 1  # boot data unchanged: no new boot
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))


def test_reboot_sends_boot_notification_again(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    csms.wait_received("BootNotification", 1)
    sim.kill()
    start(sims, runtime, tmp_path, csms)
    csms.wait_received("BootNotification", 2)


def test_changing_ocppu_reconnects_without_reboot(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    csms.wait_received("BootNotification", 1)
    assert sim.api_set(ocppu=csms.url("CP2")) == (200, {"ocppu": True})
    csms.wait_received("BootNotification", 1, cp_id="CP2")
    assert sim.alive()


def test_basic_auth_uses_charge_point_id_and_authorization_key(sims, runtime, tmp_path, csms):
    import base64
    sim = start(sims, runtime, tmp_path, csms, 'AuthorizationKey="my-secret-key-123456"', cp_id="CP 7")
    csms.wait_received("BootNotification", 1, cp_id="CP 7")
    hdr = [h for h in csms.csms.auth_headers if h][-1]
    assert base64.b64decode(hdr.split()[1]) == b"CP 7:my-secret-key-123456"
    assert sim.status("AuthorizationKey").get("AuthorizationKey") is None
    assert "my-secret-key" not in "\n".join(sim.output)
