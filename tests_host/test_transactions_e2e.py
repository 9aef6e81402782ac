"""Transactions end to end: the simulator on both runtimes against the ocpp-based
CSMS (every frame validated): how they start, every stop reason the simulator
can provoke, the CSMS's commands, offline delivery, and power cuts at each
point of a transaction."""
import json
import time

import pytest

pytestmark = pytest.mark.e2e

FAST = ("TransactionMessageRetryInterval=1", "acs=1")


def start(sims, runtime, tmp_path, csms, *sets):
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=FAST + sets).start()
    return sim


def online(sim):
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    return sim


def calls(csms, action, cp_id="CP1"):
    """(message id, payload) of every CALL of one action the charger sent, in order."""
    out = []
    for c in csms.csms.connections:
        if c.id != cp_id:
            continue
        for d, text in list(c.frames):
            if d == "<":
                m = json.loads(text)
                if m[0] == 2 and m[2] == action:
                    out.append((m[1], m[3]))
    return out


def raw_call(csms, text, cp_id="CP1", timeout=10):
    """Send a raw frame to the charger; returns its answer [3|4, id, ...]."""
    cp = csms.cp(cp_id)
    n = len(cp.frames)
    mid = text.split('"')[1]
    csms.run(cp._connection.send(text))

    def answered():
        for d, t in list(cp.frames)[n:]:
            if d == "<":
                m = json.loads(t)
                if m[0] in (3, 4) and m[1] == mid:
                    return m
        return None
    return csms.wait_for(answered, timeout)


def card_transaction(sim, csms, tag="CARD1"):
    sim.sim_set(ev="C")
    sim.sim_set(rfid=tag)
    st = csms.wait_received("StartTransaction", 1)[-1]
    sim.wait_status(lambda s: s["ocppti"] is not None, keys=("ocppti",))  # answered
    return st


def charging(sim, wh=3):
    """Wait until the charger's energy total moved by wh while charging."""
    e0 = sim.status("eto")["eto"]
    sim.wait_status(lambda s: s["eto"] >= e0 + wh, keys=("eto",))


# ---- start and the stop reasons ------------------------------------------------------------

def test_card_starts_transaction_and_same_card_stops_it_with_reason_local(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    st = card_transaction(sim, csms)
    assert csms.received("Authorize") == [{"idTag": "CARD1"}]
    assert st["idTag"] == "CARD1" and st["connectorId"] == 1
    sim.wait_status(lambda s: s["ocppti"] == 1 and s["trx"] == 0, keys=("ocppti", "trx"))
    charging(sim)
    sim.sim_set(rfid="CARD1")
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert stop["reason"] == "Local" and stop["idTag"] == "CARD1" and stop["transactionId"] == 1
    assert stop["meterStop"] >= st["meterStart"] + 3
    sim.wait_status(lambda s: s["trx"] is None and s["ocppti"] is None, keys=("trx", "ocppti"))


def test_other_card_does_not_stop_the_transaction(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    card_transaction(sim, csms)
    sim.sim_set(rfid="OTHER")
    sim.sim_set(rfid="CARD1")
    assert csms.wait_received("StopTransaction", 1)[0]["idTag"] == "CARD1"


def test_rejected_card_starts_nothing(sims, runtime, tmp_path, csms):
    csms.do(lambda: csms.csms.policies.__setitem__("Authorize", lambda cp, p: {"idTagInfo": {"status": "Blocked"}}))
    sim = online(start(sims, runtime, tmp_path, csms))
    sim.sim_set(ev="C")
    sim.sim_set(rfid="BAD")
    csms.wait_received("Authorize", 1)
    time.sleep(0.5)  # asserting an absence
    assert csms.received("StartTransaction") == []
    assert sim.sim_status()["offered_amps"] == 0


def test_open_access_starts_with_dummy_idtag_ocppd(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "acs=0", 'ocppd="GARAGE"'))
    sim.sim_set(ev="C")
    assert csms.wait_received("StartTransaction", 1)[0]["idTag"] == "GARAGE"
    assert csms.received("Authorize") == []


def test_force_on_starts_without_card(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    sim.sim_set(ev="C")
    assert sim.api_set(frc=2)[0] == 200
    assert csms.wait_received("StartTransaction", 1)[0]["idTag"] == "FREE"


def test_unplug_stops_with_reason_ev_disconnected(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    card_transaction(sim, csms)
    sim.sim_set(ev="A")
    assert csms.wait_received("StopTransaction", 1)[0]["reason"] == "EVDisconnected"


def test_unplug_keeps_transaction_when_stop_on_ev_side_disconnect_is_false(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "StopTransactionOnEVSideDisconnect=false"))
    card_transaction(sim, csms)
    sim.sim_set(ev="A")
    sim.wait_status(lambda s: s["car"] == 1, keys=("car",))
    time.sleep(0.5)  # asserting an absence
    assert csms.received("StopTransaction") == []
    sim.sim_set(ev="C")  # plugged again: the same transaction charges on
    sim.wait_status(lambda s: s["car"] == 2, keys=("car",))
    assert len(csms.received("StartTransaction")) == 1


def test_invalid_start_answer_stops_with_reason_deauthorized(sims, runtime, tmp_path, csms):
    csms.do(lambda: csms.csms.policies.__setitem__(
        "StartTransaction", lambda cp, p: {"transactionId": 7, "idTagInfo": {"status": "Invalid"}}))
    sim = online(start(sims, runtime, tmp_path, csms))
    sim.sim_set(ev="C")
    sim.sim_set(rfid="CARD1")
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert stop["reason"] == "DeAuthorized" and stop["transactionId"] == 7


def test_invalid_start_answer_only_stops_energy_when_stop_on_invalid_id_is_false(sims, runtime, tmp_path, csms):
    csms.do(lambda: csms.csms.policies.__setitem__(
        "StartTransaction", lambda cp, p: {"transactionId": 7, "idTagInfo": {"status": "Invalid"}}))
    sim = online(start(sims, runtime, tmp_path, csms, "StopTransactionOnInvalidId=false",
                       "MaxEnergyOnInvalidId=4"))
    st = card_transaction(sim, csms)
    # Up to MaxEnergyOnInvalidId Wh are delivered, then the offer goes; the transaction stays.
    sim.wait_status(lambda s: s["car"] == 2, keys=("car",))
    sim.wait_status(lambda s: s["car"] != 2, keys=("car",), timeout=20)
    assert sim.status("eto")["eto"] >= st["meterStart"] + 4
    assert sim.sim_status()["offered_amps"] == 0
    assert csms.received("StopTransaction") == [] and sim.status("ocppti")["ocppti"] == 7


def test_rcd_fault_stops_with_reason_emergency_stop(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    card_transaction(sim, csms)
    sim.sim_set(rcd=True)
    assert csms.wait_received("StopTransaction", 1)[0]["reason"] == "EmergencyStop"


def test_reboot_over_api_stops_with_reason_reboot(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    card_transaction(sim, csms)
    sim.api_set(rst=1)
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert stop["reason"] == "Reboot" and stop["transactionId"] == 1
    csms.wait_received("BootNotification", 2)
    time.sleep(0.5)  # asserting an absence: no second stop after the reboot
    assert len(csms.received("StopTransaction")) == 1


# ---- the CSMS's commands ---------------------------------------------------------------------

def test_remote_start_authorizes_then_starts_and_remote_stop_stops(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    sim.sim_set(ev="C")
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Accepted"}
    st = csms.wait_received("StartTransaction", 1)[0]
    assert st["idTag"] == "REMOTE1" and csms.received("Authorize") == [{"idTag": "REMOTE1"}]
    sim.wait_status(lambda s: s["ocppti"] == 1, keys=("ocppti",))
    assert csms.call("CP1", "RemoteStopTransaction", {"transactionId": 1}) == {"status": "Accepted"}
    assert csms.wait_received("StopTransaction", 1)[0]["reason"] == "Remote"


def test_remote_start_skips_authorize_when_authorize_remote_tx_requests_is_false(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "AuthorizeRemoteTxRequests=false"))
    sim.sim_set(ev="C")
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Accepted"}
    csms.wait_received("StartTransaction", 1)
    assert csms.received("Authorize") == []


def test_remote_start_charging_profile_limits_the_offer(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "AuthorizeRemoteTxRequests=false"))
    sim.sim_set(ev="C")
    prof = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "W", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 6900, "numberPhases": 3}]}}
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "R", "chargingProfile": prof}) == {"status": "Accepted"}
    csms.wait_received("StartTransaction", 1)
    sim.wait_status(lambda s: s["car"] == 2, keys=("car",))
    assert sim.sim_status()["offered_amps"] == 10  # 6900 W / (230 V x 3)


def test_remote_start_rejected_while_a_transaction_runs_or_for_another_connector(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "R", "connectorId": 2}) == {"status": "Rejected"}
    card_transaction(sim, csms)
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "R"}) == {"status": "Rejected"}


def test_remote_stop_of_unknown_transaction_is_rejected(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    assert csms.call("CP1", "RemoteStopTransaction", {"transactionId": 5}) == {"status": "Rejected"}
    card_transaction(sim, csms)
    sim.wait_status(lambda s: s["ocppti"] == 1, keys=("ocppti",))
    assert csms.call("CP1", "RemoteStopTransaction", {"transactionId": 2}) == {"status": "Rejected"}
    assert csms.received("StopTransaction") == []


def test_malformed_remote_commands_get_the_right_callerror(sims, runtime, tmp_path, csms):
    online(start(sims, runtime, tmp_path, csms))
    m = raw_call(csms, '[2,"m1","RemoteStartTransaction",{}]')
    assert m[0] == 4 and m[2] == "OccurenceConstraintViolation"
    m = raw_call(csms, '[2,"m2","RemoteStopTransaction",{"transactionId":"1"}]')
    assert m[0] == 4 and m[2] == "TypeConstraintViolation"
    m = raw_call(csms, '[2,"m3","UnlockConnector",{"connectorId":1,"extra":[}]')
    assert m[0] == 4 and m[2] == "FormationViolation"
    m = raw_call(csms, '[2,"m4","RemoteStartTransaction",{"idTag":"ABCDEFGHIJKLMNOPQRSTUVWXYZ"}]')
    assert m[0] == 4 and m[2] == "PropertyConstraintViolation"


def test_unlock_connector_stops_with_reason_unlock_command_and_unlocks(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    card_transaction(sim, csms)
    sim.wait_status(lambda s: s["car"] == 2, keys=("car",))
    assert csms.call("CP1", "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    assert csms.wait_received("StopTransaction", 1)[0]["reason"] == "UnlockCommand"
    assert sim.sim_status()["lock"] is False
    assert csms.call("CP1", "UnlockConnector", {"connectorId": 2}) == {"status": "NotSupported"}


def test_clear_cache_is_accepted_and_forgets_cached_ids(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "LocalPreAuthorize=true"))
    sim.sim_set(rfid="CARD1")  # authorized and cached, then cancelled by the same card
    csms.wait_received("Authorize", 1)
    sim.wait_status(lambda s: s["trx"] == 0, keys=("trx",))
    sim.sim_set(rfid="CARD1")
    sim.wait_status(lambda s: s["trx"] is None, keys=("trx",))
    sim.sim_set(rfid="CARD1")  # pre-authorized from the cache: no request
    sim.wait_status(lambda s: s["trx"] == 0, keys=("trx",))
    assert len(csms.received("Authorize")) == 1
    sim.sim_set(rfid="CARD1")
    sim.wait_status(lambda s: s["trx"] is None, keys=("trx",))
    assert csms.call("CP1", "ClearCache", {}) == {"status": "Accepted"}
    sim.sim_set(rfid="CARD1")
    csms.wait_received("Authorize", 2)


def test_connection_timeout_cancels_an_authorization_without_plug(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "ConnectionTimeOut=1"))
    sim.sim_set(rfid="CARD1")
    sim.wait_status(lambda s: s["trx"] == 0, keys=("trx",))
    sim.wait_status(lambda s: s["trx"] is None, keys=("trx",), timeout=5)
    sim.sim_set(ev="C")
    time.sleep(0.5)  # asserting an absence
    assert csms.received("StartTransaction") == []


def test_authorize_before_plug_starts_on_plug(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    sim.sim_set(rfid="CARD1")
    sim.wait_status(lambda s: s["trx"] == 0, keys=("trx",))
    assert csms.received("StartTransaction") == []
    sim.sim_set(ev="C")
    assert csms.wait_received("StartTransaction", 1)[0]["idTag"] == "CARD1"


# ---- offline and power loss --------------------------------------------------------------------

def test_transaction_while_offline_is_delivered_in_order_with_its_id(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "AllowOfflineTxForUnknownId=true",
                       "MeterValueSampleInterval=1"))
    csms.stop_server()
    sim.wait_status(lambda s: s["ocppc"] is False, keys=("ocppc",))
    card_id = "OFFLINE1"
    sim.sim_set(ev="C")
    sim.sim_set(rfid=card_id)
    sim.wait_status(lambda s: s["car"] == 2, keys=("car",))
    charging(sim, 3)
    sim.sim_set(rfid=card_id)
    sim.wait_status(lambda s: s["trx"] is None, keys=("trx",))
    csms.start_server()
    stop = csms.wait_received("StopTransaction", 1, timeout=60)[0]
    start_ = csms.received("StartTransaction")
    assert len(start_) == 1 and start_[0]["idTag"] == card_id
    assert stop["reason"] == "Local" and stop["transactionId"] == 1
    assert stop["meterStop"] >= start_[0]["meterStart"] + 3
    order = [a for c in csms.csms.connections for a, _ in c.received
             if a in ("StartTransaction", "MeterValues", "StopTransaction")]
    assert order[0] == "StartTransaction" and order[-1] == "StopTransaction"
    mvs = [p for p in csms.received("MeterValues") if "transactionId" in p]
    assert mvs and all(p["transactionId"] == 1 for p in mvs)


def _epoch(iso):
    from datetime import datetime
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_power_loss_while_charging_closes_transaction_with_reason_power_loss(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    st = card_transaction(sim, csms)
    charging(sim, 12)  # past a meter write
    sim.kill()
    killed_at = time.time()
    time.sleep(3)  # the outage: the charger comes back 3 s later
    sim = online(start(sims, runtime, tmp_path, csms))
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 1
    assert stop["meterStop"] >= st["meterStart"]
    # Dated by the last meter reading on flash, before the cut, not at the reboot.
    assert _epoch(st["timestamp"]) <= _epoch(stop["timestamp"]) <= killed_at
    assert len(csms.received("StartTransaction")) == 1
    assert sim.status("trx")["trx"] is None


def test_power_loss_before_start_was_sent_delivers_start_and_stop_once(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "acs=0"))
    csms.stop_server()
    sim.wait_status(lambda s: s["ocppc"] is False, keys=("ocppc",))
    sim.sim_set(ev="C")
    sim.wait_status(lambda s: s["trx"] == 0, keys=("trx",))
    sim.kill()
    csms.start_server()
    start(sims, runtime, tmp_path, csms)
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert [p["idTag"] for p in csms.received("StartTransaction")] == ["FREE"]
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 1


def test_power_loss_before_start_answer_resends_start_under_the_same_id(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    killed = []

    def kill_then_answer(cp, p):
        if not killed:
            killed.append(1)
            sim.kill()  # the answer goes to a dead charger
        return {"transactionId": 40 + len(csms.received("StartTransaction")), "idTagInfo": {"status": "Accepted"}}
    csms.do(lambda: csms.csms.policies.__setitem__("StartTransaction", kill_then_answer))
    sim.sim_set(ev="C")
    sim.sim_set(rfid="CARD1")
    csms.wait_for(lambda: killed)
    start(sims, runtime, tmp_path, csms)
    stop = csms.wait_received("StopTransaction", 1)[0]
    starts = calls(csms, "StartTransaction")
    assert len(starts) == 2 and starts[0] == starts[1]  # the resend: same message id, same payload
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 42


def test_power_loss_after_stop_was_queued_sends_no_second_stop(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    card_transaction(sim, csms)
    sim.wait_status(lambda s: s["ocppti"] == 1, keys=("ocppti",))
    csms.stop_server()
    sim.wait_status(lambda s: s["ocppc"] is False, keys=("ocppc",))
    sim.sim_set(ev="A")
    sim.wait_status(lambda s: s["trx"] is None, keys=("trx",))
    sim.kill()
    csms.start_server()
    start(sims, runtime, tmp_path, csms)
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert stop["reason"] == "EVDisconnected" and stop["transactionId"] == 1
    time.sleep(0.5)  # asserting an absence
    assert len({m for m, _ in calls(csms, "StopTransaction")}) == 1
    assert len({m for m, _ in calls(csms, "StartTransaction")}) == 1


def energies_shown(csms):
    """Every Energy.Active.Import.Register value (Wh) the charger reported."""
    out = []
    for p in csms.received("MeterValues"):
        for mv in p.get("meterValue", ()):
            for sv in mv.get("sampledValue", ()):
                if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                    v = float(sv["value"])
                    out.append(v * 1000 if sv.get("unit") == "kWh" else v)
    return out


def test_power_loss_during_a_meter_write_loses_nothing_and_never_moves_energy_backwards(sims, runtime, tmp_path,
                                                                                        csms):
    sets = FAST + ("acs=0", "MeterValueSampleInterval=1")
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=sets, extra=["--cut-write", "energy.json:2"]).start()
    online(sim)
    sim.sim_set(ev="C")
    st = csms.wait_received("StartTransaction", 1)[0]
    sim.wait_output("CUT-WRITE energy.json")  # frozen half way through the first write while charging
    shown = energies_shown(csms)
    sim.kill()
    assert (tmp_path / "flash" / "energy.json.tmp").exists()  # the cut write's torn temp file
    sim = online(start(sims, runtime, tmp_path, csms, "acs=0"))
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 1
    assert stop["meterStop"] >= max([st["meterStart"]] + shown)
    assert sim.status("eto")["eto"] >= stop["meterStop"]
    # The next transaction starts where the last one ended, or later.
    sim.sim_set(ev="A")
    sim.wait_status(lambda s: s["car"] == 1, keys=("car",))
    sim.sim_set(ev="C")
    st2 = csms.wait_received("StartTransaction", 2)[1]
    assert st2["meterStart"] >= stop["meterStop"] and st2["idTag"] == "FREE"
    assert len({m for m, _ in calls(csms, "StartTransaction")}) == 2


def test_power_loss_while_the_start_transaction_is_written_sends_start_and_stop_once(sims, runtime, tmp_path,
                                                                                     csms):
    sets = FAST + ("acs=0",)
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=sets, extra=["--cut-write", "txq/:1"]).start()
    online(sim)
    sim.sim_set(ev="C")
    sim.wait_output("CUT-WRITE txq/")  # tx.json is on flash, the StartTransaction half written
    sim.kill()
    start(sims, runtime, tmp_path, csms)
    stop = csms.wait_received("StopTransaction", 1)[0]
    starts = calls(csms, "StartTransaction")
    assert len(starts) == 1 and starts[0][1]["idTag"] == "FREE"
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 1
    assert stop["meterStop"] >= starts[0][1]["meterStart"]


def test_unlock_on_ev_side_disconnect_false_keeps_cable_locked_until_the_card_returns(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "UnlockConnectorOnEVSideDisconnect=false"))
    card_transaction(sim, csms)
    csms.wait_for(lambda: sim.sim_status()["lock"] is True)
    sim.sim_set(ev="A")
    assert csms.wait_received("StopTransaction", 1)[0]["reason"] == "EVDisconnected"
    time.sleep(0.5)  # asserting an absence: the lock would have opened within a few ticks
    assert sim.sim_status()["lock"] is True
    sim.sim_set(rfid="CARD1")
    csms.wait_for(lambda: sim.sim_status()["lock"] is False)
    assert len(csms.received("Authorize")) == 1  # releasing the cable is no new authorization
