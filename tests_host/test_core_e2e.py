"""Core profile messages end to end: the simulator on both runtimes against the
ocpp-based CSMS (every frame the charger sends is validated at teardown)."""
import json
import time
from pathlib import Path

import pytest
from ocpp.exceptions import OCPPError

pytestmark = pytest.mark.e2e

HAVE_TRANSACTIONS = (Path(__file__).resolve().parent.parent / "firmware" / "ocpp" / "transactions.py").exists()
needs_transactions = pytest.mark.skipif(not HAVE_TRANSACTIONS, reason="transactions module not in this tree yet")


def start(sims, runtime, tmp_path, csms, *sets):
    # acs=1: a transaction starts only when asked (RemoteStartTransaction), not on plug-in.
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=("acs=1",) + sets).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    return sim


def statuses(csms, connector):
    return [p["status"] for p in csms.received("StatusNotification") if p["connectorId"] == connector]


def raw_call(csms, mid, action, payload):
    """Send a CALL frame as given (the ocpp package would refuse to build a bad one); return the answer."""
    cp = csms.cp()
    text = json.dumps([2, mid, action, payload])
    csms.run(cp._connection.send(text))

    def answer():
        for d, t in cp.frames:
            if d == "<":
                msg = json.loads(t)
                if msg[0] in (3, 4) and msg[1] == mid:
                    return msg
        return None
    return csms.wait_for(answer, timeout=10)


def test_change_availability_inoperative_is_reported_and_survives_a_restart(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    res = csms.call("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert res == {"status": "Accepted"}
    csms.wait_for(lambda: statuses(csms, 1)[-1:] == ["Unavailable"])
    assert sim.status("ocppcs")["ocppcs"] == 7
    # Only the latest status per connector goes out: when ChangeAvailability overtakes the
    # first report, the first connection saw Unavailable alone. Count from here.
    before = len(statuses(csms, 1))
    sim.kill()
    sim = start(sims, runtime, tmp_path, csms)
    csms.wait_received("BootNotification", 2)
    csms.wait_for(lambda: len(statuses(csms, 1)) > before)
    assert statuses(csms, 1)[before:] == ["Unavailable"] * (len(statuses(csms, 1)) - before)
    assert sim.status("ocppcs")["ocppcs"] == 7


def test_change_availability_of_the_charge_point_makes_connector_0_and_1_unavailable(sims, runtime, tmp_path,
                                                                                      csms):
    start(sims, runtime, tmp_path, csms)
    csms.wait_for(lambda: statuses(csms, 0) and statuses(csms, 1))
    assert csms.call("CP1", "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}) == \
        {"status": "Accepted"}
    csms.wait_for(lambda: statuses(csms, 0)[-1] == "Unavailable" and statuses(csms, 1)[-1] == "Unavailable")
    assert csms.call("CP1", "ChangeAvailability", {"connectorId": 0, "type": "Operative"}) == \
        {"status": "Accepted"}
    csms.wait_for(lambda: statuses(csms, 0)[-1] == "Available" and statuses(csms, 1)[-1] == "Available")


def test_change_availability_of_connector_2_is_rejected(sims, runtime, tmp_path, csms):
    start(sims, runtime, tmp_path, csms)
    assert csms.call("CP1", "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}) == \
        {"status": "Rejected"}


def test_malformed_change_availability_gets_a_callerror_and_the_session_continues(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    msg = raw_call(csms, "bad-1", "ChangeAvailability", {"connectorId": 1, "type": "Sideways"})
    assert msg[0] == 4 and msg[2] == "PropertyConstraintViolation"
    msg = raw_call(csms, "bad-2", "ChangeAvailability", {"connectorId": "1", "type": "Inoperative"})
    assert msg[0] == 4 and msg[2] == "TypeConstraintViolation"
    assert sim.status("ocppcs")["ocppcs"] == 0  # nothing applied
    assert csms.call("CP1", "GetConfiguration", {"key": ["NumberOfConnectors"]})["configurationKey"][0]["value"] == "1"


def test_change_configuration_answers_accepted_rejected_notsupported_rebootrequired(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)

    def change(key, value):
        return csms.call("CP1", "ChangeConfiguration", {"key": key, "value": value})["status"]

    assert change("MinimumStatusDuration", "3") == "Accepted"
    assert change("NumberOfConnectors", "2") == "Rejected"  # read-only
    assert change("HeartbeatInterval", "soon") == "Rejected"  # bad value
    assert change("NoSuchKey", "1") == "NotSupported"
    assert change("SecurityProfile", "0") == "Rejected"  # not above the current profile (whitepaper A05.FR.01)
    assert sim.status("MinimumStatusDuration")["MinimumStatusDuration"] == 3


def test_get_configuration_returns_all_keys_or_the_requested_ones_with_unknown(sims, runtime, tmp_path, csms):
    start(sims, runtime, tmp_path, csms)
    every = csms.call("CP1", "GetConfiguration", {})["configurationKey"]
    byname = {e["key"]: e for e in every}
    assert byname["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True, "value": "1"}
    assert byname["BlinkRepeat"]["readonly"] is False
    assert "value" not in byname["AuthorizationKey"]
    some = csms.call("CP1", "GetConfiguration", {"key": ["SupportedFeatureProfiles", "NoSuchKey"]})
    assert [e["key"] for e in some["configurationKey"]] == ["SupportedFeatureProfiles"]
    # Exactly the profiles whose every action the charger handles: Core in this build.
    assert some["configurationKey"][0]["value"] == "Core"
    assert some["unknownKey"] == ["NoSuchKey"]


def test_get_configuration_with_a_malformed_key_list_is_a_callerror(sims, runtime, tmp_path, csms):
    start(sims, runtime, tmp_path, csms)
    msg = raw_call(csms, "bad-3", "GetConfiguration", {"key": "HeartbeatInterval"})
    assert msg[0] == 4 and msg[2] == "TypeConstraintViolation"


def test_data_transfer_to_unknown_vendor_and_to_the_firmwares_own_vendor(sims, runtime, tmp_path, csms):
    start(sims, runtime, tmp_path, csms)
    assert csms.call("CP1", "DataTransfer", {"vendorId": "com.example"}) == {"status": "UnknownVendorId"}
    assert csms.call("CP1", "DataTransfer", {"vendorId": "OpenWallbox", "messageId": "Nope"}) == \
        {"status": "UnknownMessageId"}
    res = csms.call("CP1", "DataTransfer", {"vendorId": "OpenWallbox", "messageId": "GetApiKeys",
                                            "data": '["car","ocppcs"]'})
    assert res["status"] == "Accepted" and json.loads(res["data"]) == {"car": 1, "ocppcs": 0}


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
def test_reset_is_accepted_then_the_charger_reboots(sims, runtime, tmp_path, csms, kind):
    sim = start(sims, runtime, tmp_path, csms)
    assert csms.call("CP1", "Reset", {"type": kind}) == {"status": "Accepted"}
    csms.wait_received("BootNotification", 2)
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    assert any(line.startswith("REBOOT " + kind.lower()) for line in sim.output)
    assert sim.alive()


@needs_transactions
@pytest.mark.parametrize("kind", ["Soft", "Hard"])
def test_reset_stops_the_running_transaction_with_the_reset_reason(sims, runtime, tmp_path, csms, kind):
    sim = start(sims, runtime, tmp_path, csms)
    sim.sim_set(ev="C")
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "CARD1", "connectorId": 1})["status"] == "Accepted"
    csms.wait_received("StartTransaction")
    assert csms.call("CP1", "Reset", {"type": kind}) == {"status": "Accepted"}
    stops = csms.wait_received("StopTransaction")
    assert stops[0]["reason"] == kind + "Reset"
    csms.wait_received("BootNotification", 2)


@needs_transactions
def test_inoperative_during_a_transaction_is_scheduled_and_applies_when_it_stops(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    sim.sim_set(ev="C")
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "CARD1", "connectorId": 1})["status"] == "Accepted"
    csms.wait_received("StartTransaction")
    assert csms.call("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == \
        {"status": "Scheduled"}
    assert sim.status("ocppcs")["ocppcs"] != 7
    # The development CSMS numbers transactions from 1.
    assert csms.call("CP1", "RemoteStopTransaction", {"transactionId": 1})["status"] == "Accepted"
    csms.wait_received("StopTransaction")
    csms.wait_for(lambda: statuses(csms, 1)[-1] == "Unavailable")


def test_no_transaction_starts_on_an_inoperative_connector(sims, runtime, tmp_path, csms):
    sim = start(sims, runtime, tmp_path, csms)
    assert csms.call("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == \
        {"status": "Accepted"}
    csms.wait_for(lambda: statuses(csms, 1)[-1:] == ["Unavailable"])
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "CARD1", "connectorId": 1}) == \
        {"status": "Rejected"}
    assert sim.sim_set(ev="C") == (200, {"ev": True})
    assert sim.sim_set(rfid="CARD1") == (200, {"rfid": True})
    csms.wait_received("Authorize", 1)
    time.sleep(1.5)  # asserting an absence over a span: nothing to await
    assert csms.received("StartTransaction") == []
    assert sim.sim_status()["contactor"] is False


@needs_transactions
def test_welded_contactor_stops_with_reason_other_and_faults_with_power_switch_failure(sims, runtime, tmp_path,
                                                                                       csms):
    sim = start(sims, runtime, tmp_path, csms)
    sim.sim_set(ev="C")
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "CARD1", "connectorId": 1})["status"] == "Accepted"
    csms.wait_received("StartTransaction")
    csms.wait_for(lambda: statuses(csms, 1)[-1:] == ["Charging"])
    sim.sim_set(weld=True)
    # The EV pauses: the contactor is told to open, but its contacts stay closed.
    sim.sim_set(ev="B")
    stop = csms.wait_received("StopTransaction")[0]
    # OCPP 1.6 Reason: no value names a failed contactor, so Other (EmergencyStop is for a residual current trip).
    assert stop["reason"] == "Other"
    csms.wait_for(lambda: statuses(csms, 1)[-1:] == ["Faulted"])
    faulted = [p for p in csms.received("StatusNotification") if p["connectorId"] == 1][-1]
    # ChargePointErrorCode PowerSwitchFailure: "failure to control power switch".
    assert faulted["errorCode"] == "PowerSwitchFailure"
    assert faulted.get("vendorErrorCode") == "Welded"
    assert sim.status("err")["err"] == 9  # go-e: contactor stuck
