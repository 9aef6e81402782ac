"""Connector status transitions and fault error codes on the wire (OCPP 1.6 4.9):
the simulator on both runtimes against the ocpp-based CSMS."""
import pytest

from tests_host.test_status_transitions import EV_WARNING, pair_allowed, spec_allows

pytestmark = pytest.mark.e2e


def start(sims, runtime, tmp_path, csms, *sets):
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=sets).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    return sim


def notes(csms, connector=1):
    return [p for p in csms.received("StatusNotification") if p["connectorId"] == connector]


def statuses(csms, connector=1):
    return [p["status"] for p in notes(csms, connector)]


def wait_last(csms, status, timeout=30):
    csms.wait_for(lambda: statuses(csms)[-1:] == [status], timeout)
    return notes(csms)[-1]


def assert_wire_follows_the_table(csms):
    for n in (0, 1):
        seq = notes(csms, n)
        for a, b in zip(seq, seq[1:]):
            assert spec_allows(a["status"], b["status"]), "connector %d: %s" % (n, [p["status"] for p in seq])
        for p in seq:
            assert pair_allowed(p["status"], p["errorCode"], p.get("vendorErrorCode")), p
            assert p["errorCode"] != "EVCommunicationError" or p["status"] in EV_WARNING


def charge(sim, csms):
    sim.sim_set(ev="C")
    csms.wait_received("StartTransaction", 1)
    wait_last(csms, "Charging")


def test_unplugging_during_a_charge_reports_available_without_preparing(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms, "acs=0")
    charge(sim, csms)
    sim.sim_set(ev="A")
    assert csms.wait_received("StopTransaction", 1)[0]["reason"] == "EVDisconnected"
    wait_last(csms, "Available")
    assert statuses(csms)[-2:] == ["Charging", "Available"]
    assert_wire_follows_the_table(csms)


def test_unplugging_with_stop_on_ev_side_disconnect_false_reports_suspended_ev(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms, "acs=0", "StopTransactionOnEVSideDisconnect=false")
    charge(sim, csms)
    sim.sim_set(ev="A")
    p = wait_last(csms, "SuspendedEV")
    assert p["errorCode"] == "NoError" and p["info"] == "EV side disconnected"
    assert sim.status("ocppcs")["ocppcs"] == 4
    sim.sim_set(ev="C")  # back: the same transaction charges on
    wait_last(csms, "Charging")
    assert csms.received("StopTransaction") == []
    assert_wire_follows_the_table(csms)


@pytest.mark.parametrize("pilot", ["E", "F"])
def test_pilot_fault_is_faulted_with_other_error_and_the_pilot_as_vendor_code(sims, runtime, tmp_path, csms, pilot):
    sim = start(sims, runtime, tmp_path, csms, "acs=0")
    charge(sim, csms)
    sim.sim_set(ev=pilot)
    f = wait_last(csms, "Faulted")
    assert f["errorCode"] == "OtherError" and f["vendorErrorCode"] == "Pilot" + pilot
    sim.sim_set(ev="A")
    wait_last(csms, "Available")
    assert_wire_follows_the_table(csms)


def test_a_second_card_session_after_finishing_reports_preparing_first(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms, "acs=1")
    sim.sim_set(ev="C")
    sim.sim_set(rfid="CARD1")
    wait_last(csms, "Charging")
    sim.sim_set(rfid="CARD1")
    wait_last(csms, "Finishing")
    sim.sim_set(rfid="CARD1")
    csms.wait_received("StartTransaction", 2)
    wait_last(csms, "Charging")
    assert statuses(csms)[-3:] == ["Finishing", "Preparing", "Charging"]
    assert_wire_follows_the_table(csms)
