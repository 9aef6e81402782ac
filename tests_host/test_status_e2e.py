"""StatusNotification end to end: the simulator on both runtimes against the
ocpp-based CSMS (every frame the charger sends is validated at teardown)."""
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HAVE_TRANSACTIONS = (Path(__file__).resolve().parent.parent / "firmware" / "ocpp" / "transactions.py").exists()


def start(sims, runtime, tmp_path, csms, *sets):
    # acs=1: plugging in waits for authorization (Preparing) instead of starting a transaction.
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=("acs=1",) + sets).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    return sim


def notes(csms, connector):
    return [p for p in csms.received("StatusNotification") if p["connectorId"] == connector]


def statuses(csms, connector):
    return [p["status"] for p in notes(csms, connector)]


def wait_last(csms, connector, status, timeout=15):
    csms.wait_for(lambda: statuses(csms, connector)[-1:] == [status], timeout)
    return notes(csms, connector)[-1]


def test_both_connectors_report_available_after_boot_with_a_timestamp(sims, runtime, tmp_path, csms):
    start(sims, runtime, tmp_path, csms)
    c0 = wait_last(csms, 0, "Available")
    c1 = wait_last(csms, 1, "Available")
    assert c0["errorCode"] == c1["errorCode"] == "NoError"
    assert c0["timestamp"].endswith("Z") and c1["timestamp"].endswith("Z")
    frames = [a for a, _ in csms.cp().received]
    assert frames[0] == "BootNotification"


def test_plug_in_and_unplug_report_preparing_then_available(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    wait_last(csms, 1, "Available")
    sim.sim_set(ev="B")
    wait_last(csms, 1, "Preparing")
    assert sim.status("ocppcs")["ocppcs"] == 1
    sim.sim_set(ev="A")
    wait_last(csms, 1, "Available")
    assert statuses(csms, 1) == ["Available", "Preparing", "Available"]


@pytest.mark.skipif(not HAVE_TRANSACTIONS, reason="transactions module not in this tree yet")
def test_charging_session_reports_charging_suspended_and_finishing(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    sim.sim_set(ev="B")
    wait_last(csms, 1, "Preparing")
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "CARD1", "connectorId": 1})["status"] == "Accepted"
    wait_last(csms, 1, "SuspendedEV")
    sim.sim_set(ev="C")
    wait_last(csms, 1, "Charging")
    assert sim.api_set(frc=1)[0] == 200
    wait_last(csms, 1, "SuspendedEVSE")
    assert sim.api_set(frc=0)[0] == 200
    wait_last(csms, 1, "Charging")
    assert csms.call("CP1", "RemoteStopTransaction", {"transactionId": 1})["status"] == "Accepted"
    wait_last(csms, 1, "Finishing")
    sim.sim_set(ev="A")
    wait_last(csms, 1, "Available")


def test_residual_current_reports_faulted_with_ground_failure_and_clears_on_unplug(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    sim.sim_set(ev="B")
    wait_last(csms, 1, "Preparing")
    sim.sim_set(rcd=True)
    f = wait_last(csms, 1, "Faulted")
    assert f["errorCode"] == "GroundFailure" and f["vendorErrorCode"] == "RCM" and f["info"] == "err 2"
    assert sim.status("ocppcs")["ocppcs"] == 8
    assert statuses(csms, 0)[-1] == "Available"  # a connector fault, not the charge point's
    sim.sim_set(rcd=False)
    sim.sim_set(ev="A")
    wait_last(csms, 1, "Available")


def test_welded_contactor_reports_faulted_with_power_switch_failure(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    wait_last(csms, 1, "Available")
    sim.sim_set(weld=True)
    f = wait_last(csms, 1, "Faulted")
    assert f["errorCode"] == "PowerSwitchFailure" and f["vendorErrorCode"] == "Welded"


def test_status_shorter_than_minimum_status_duration_is_not_reported(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms, "MinimumStatusDuration=2")
    wait_last(csms, 1, "Available")
    sim.sim_set(ev="B")
    sim.wait_status(lambda s: s["ocppcs"] == 1, keys=("ocppcs",))
    sim.sim_set(ev="A")
    sim.wait_status(lambda s: s["ocppcs"] == 0, keys=("ocppcs",))
    t0 = time.monotonic()
    sim.sim_set(ev="B")
    wait_last(csms, 1, "Preparing")
    assert time.monotonic() - t0 >= 1.8  # held 2 s before it was reported
    assert statuses(csms, 1) == ["Available", "Preparing"]  # the short Preparing never went out


def test_faulted_is_reported_at_once_despite_minimum_status_duration(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms, "MinimumStatusDuration=30")
    wait_last(csms, 1, "Available")
    sim.sim_set(weld=True)
    wait_last(csms, 1, "Faulted", timeout=5)  # not after 30 s


def test_each_connector_status_is_sent_again_after_a_reconnect(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    wait_last(csms, 0, "Available")
    wait_last(csms, 1, "Available")
    csms.stop_server()
    sim.wait_status(lambda s: s["ocppc"] is False, keys=("ocppc",))
    sim.sim_set(ev="B")  # changes while offline: only the latest status goes out
    sim.sim_set(ev="A")
    sim.sim_set(ev="B")
    csms.start_server()
    csms.wait_for(lambda: len(csms.csms.connections) >= 2, timeout=60)
    last = csms.csms.connections[-1]
    csms.wait_for(lambda: len([a for a, _ in last.received if a == "StatusNotification"]) >= 2)
    sent = [(p["connectorId"], p["status"]) for a, p in last.received if a == "StatusNotification"]
    assert sent == [(0, "Available"), (1, "Preparing")]
    assert len(csms.received("BootNotification")) == 1


@pytest.mark.skipif(not HAVE_TRANSACTIONS, reason="transactions module not in this tree yet")
def test_plugged_ev_without_authorization_returns_to_available_after_connection_timeout(sims, runtime, tmp_path,
                                                                                        csms):
    sim = start(sims, runtime, tmp_path, csms, "ConnectionTimeOut=1")
    wait_last(csms, 1, "Available")
    sim.sim_set(ev="B")
    wait_last(csms, 1, "Preparing")
    wait_last(csms, 1, "Available")
    assert sim.status("ocppcs")["ocppcs"] == 0
    sim.sim_set(rfid="CARD1")
    assert csms.wait_received("StartTransaction", 1)[0]["idTag"] == "CARD1"
    wait_last(csms, 1, "SuspendedEV")
    assert statuses(csms, 1)[:3] == ["Available", "Preparing", "Available"]
