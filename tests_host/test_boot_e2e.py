"""Boot, heartbeat and reconnect, end to end: the simulator on both runtimes
against the ocpp-based CSMS over real WebSockets."""
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


def test_pending_then_accepted_sends_nothing_else_before_accepted(sims, runtime, tmp_path, csms):
    csms.do(lambda: setattr(csms.csms, "boot_status", "Pending"))
    csms.do(lambda: setattr(csms.csms, "boot_interval", 1))
    start(sims, runtime, tmp_path, csms)
    csms.wait_received("BootNotification", 2)
    # While Pending the charger answers the CSMS's calls.
    csms.wait_for(lambda: csms.cp() is not None)
    try:
        csms.call("CP1", "GetConfiguration", {})
    except Exception as e:  # a CALLERROR is an answer too
        assert "NotSupported" in type(e).__name__ or "NotImplemented" in type(e).__name__ or e
    csms.do(lambda: setattr(csms.csms, "boot_status", "Accepted"))
    csms.wait_received("Heartbeat", 1, timeout=20)
    frames = [a for c in csms.csms.connections for a, _ in c.received]
    first_other = next(i for i, a in enumerate(frames) if a != "BootNotification")
    assert frames[first_other - 1] == "BootNotification"
    assert len([a for a in frames[:first_other] if a == "BootNotification"]) >= 3


def test_rejected_boot_is_retried_at_the_interval(sims, runtime, tmp_path, csms):
    csms.do(lambda: setattr(csms.csms, "boot_status", "Rejected"))
    csms.do(lambda: setattr(csms.csms, "boot_interval", 1))
    sim = start(sims, runtime, tmp_path, csms)
    csms.wait_received("BootNotification", 3, timeout=20)
    frames = [a for c in csms.csms.connections for a, _ in c.received]
    assert set(frames) == {"BootNotification"}
    st = sim.status("ocppa", "ocpple")
    assert st["ocppa"] is False and "Rejected" in st["ocpple"]
    csms.do(lambda: setattr(csms.csms, "boot_status", "Accepted"))
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",), timeout=20)


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
