"""Charger keys written over the HTTP API of the running simulator, each with its
effect checked on the simulated hardware or at the CSMS (the `ocpp` package,
every frame validated): access control, transactions, cards, cable lock and
phase modes, the OCPP fallback current, dummy tag, metering keys and the last
error's timestamp. amp, ama, tcl, frc, dwo, ust 2 and rst are in
test_api_http_e2e.py, psm 1/2/0 (in fake time) in test_api_http.py."""
import re

import pytest

from firmware.clock import parse_iso
from tests_host.harness import free_port

pytestmark = pytest.mark.e2e

MP = "micropython"


def ok(sim, **kv):
    """Write keys over /api/set; every one must be accepted."""
    assert sim.api_set(**kv) == (200, {k: True for k in kv})


def wait_sim(sim, pred, timeout=20):
    """Poll the simulated hardware until pred(sim_status) holds."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        st = sim.sim_status()
        if pred(st):
            return st
        assert time.monotonic() < deadline, "simulated hardware condition not met: %r\n%s" % (st, sim.log())
        time.sleep(0.05)


def wait_log(sim, pattern, timeout=20):
    """Poll the charger's console output until a line matches; returns the match."""
    import time
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for line in list(sim.output):
            m = rx.search(line)
            if m:
                return m
        assert time.monotonic() < deadline, "no log line %r:\n%s" % (pattern, sim.log())
        time.sleep(0.05)


def online(sim):
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    return sim


def charging(sim):
    return wait_sim(sim, lambda st: st["contactor"] and st["power_w"] > 0)


# ---- amp follows a lowered ama, also after a restart ---------------------------------------

def test_amp_lowered_with_ama_over_http_is_kept_after_a_restart(sims, runtime, tmp_path):
    sim = sims(runtime, tmp_path / "flash").start()
    ok(sim, amp=12)
    ok(sim, ama=8)
    assert sim.status("amp", "ama") == {"amp": 8, "ama": 8}
    sim.kill()
    sim = sims(runtime, tmp_path / "flash").start()
    assert sim.status("amp", "ama", "ocpple") == {"amp": 8, "ama": 8, "ocpple": None}
    sim.sim_set(ev="C")
    wait_sim(sim, lambda st: st["contactor"] and st["offered_amps"] == 8)


# ---- access control, dummy tag, trx, cards --------------------------------------------------

def test_acs_1_waits_for_a_card_and_acs_0_starts_at_plug_in_with_ocppd(sims, runtime, tmp_path, csms):
    sim = online(sims(runtime, tmp_path / "flash", url=csms.url(), sets=["ConnectionTimeOut=2"]).start())
    ok(sim, acs=1)
    sim.sim_set(ev="C")
    # The whole ConnectionTimeOut passes without a transaction: it waits for authorization.
    wait_log(sim, r"ConnectionTimeOut: no authorization for the plugged EV")
    assert csms.received("StartTransaction") == [] and not sim.sim_status()["contactor"]
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "CARD7", "connectorId": 1})["status"] == "Accepted"
    assert csms.wait_received("StartTransaction", 1)[0]["idTag"] == "CARD7"
    charging(sim)
    ok(sim, acs=0, ocppd="GARAGE")
    sim.sim_set(ev="A")
    csms.wait_received("StopTransaction", 1)
    wait_sim(sim, lambda st: not st["contactor"])
    sim.sim_set(ev="C")
    assert csms.wait_received("StartTransaction", 2)[1]["idTag"] == "GARAGE"
    charging(sim)
    assert [p["idTag"] for p in csms.received("Authorize")] == ["CARD7"]


def test_trx_written_starts_and_ends_a_transaction(sims, runtime, tmp_path, csms):
    sim = online(sims(runtime, tmp_path / "flash", url=csms.url(), sets=["acs=1"]).start())
    sim.sim_set(ev="C")
    assert sim.api_set(trx=1) == (500, {"trx": "trx: card 1 is not taught"})
    ok(sim, trx=0)
    assert csms.wait_received("StartTransaction", 1)[0]["idTag"] == "FREE"  # ocppd empty: the default tag
    charging(sim)
    sim.wait_status(lambda s: s["trx"] == 0 and s["ocppti"] is not None, keys=("trx", "ocppti"))
    ok(sim, trx=None)
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert stop["reason"] == "Local"
    wait_sim(sim, lambda st: not st["contactor"] and st["offered_amps"] == 0)
    assert sim.status("trx", "ocppti") == {"trx": None, "ocppti": None}
    assert len(csms.received("StartTransaction")) == 1  # still plugged, acs=1: nothing restarts


def test_card_added_over_http_is_accepted_at_the_reader(sims, runtime, tmp_path):
    sim = sims(runtime, tmp_path / "flash", sets=["acs=1"]).start()  # OCPP off: the local cards decide
    sim.sim_set(ev="C")
    sim.sim_set(rfid="CARD9")
    wait_log(sim, r"idTag CARD9 not authorized")
    assert not sim.sim_status()["contactor"] and sim.status("trx") == {"trx": None}
    ok(sim, cards=[{"name": "Anna", "energy": 0, "cardId": "CARD9"}])
    assert sim.status("cards") == {"cards": [{"name": "Anna", "energy": 0, "cardId": True}]}
    sim.sim_set(rfid="CARD9")
    charging(sim)
    assert sim.status("trx") == {"trx": 1}  # card index + 1


# ---- cable lock and phase mode ---------------------------------------------------------------

def test_ust_1_unlocks_when_charging_is_complete(sims, runtime, tmp_path):
    sim = sims(runtime, tmp_path / "flash").start()
    sim.sim_set(ev="C")
    charging(sim)
    assert sim.sim_status()["lock"] is True
    sim.sim_set(ev="B")  # the EV is full and stays plugged
    sim.wait_status(lambda s: s["car"] == 4, keys=("car",))
    assert sim.sim_status()["lock"] is True  # ust 0: locked while a car is connected
    ok(sim, ust=1)
    wait_sim(sim, lambda st: not st["lock"] and st["ev"] == "B")
    assert sim.status("lck") == {"lck": 1}


# ---- OCPP keys with effects --------------------------------------------------------------------

def test_ocppf_applies_while_the_csms_is_unreachable(sims, tmp_path, csms):
    sim = online(sims(MP, tmp_path / "flash", url=csms.url()).start())
    ok(sim, ocppf=8)
    sim.sim_set(ev="C")
    charging(sim)
    assert sim.sim_status()["offered_amps"] == 16  # online: no fallback
    csms.stop_server()
    wait_sim(sim, lambda st: st["offered_amps"] == 8 and st["contactor"])
    ok(sim, ocppf=0)  # a fallback below 6 A stops charging
    wait_sim(sim, lambda st: not st["contactor"] and st["offered_amps"] == 0)
    assert sim.status("modelStatus") == {"modelStatus": 35}
    csms.start_server()
    online(sim)
    wait_sim(sim, lambda st: st["offered_amps"] == 16 and st["contactor"], timeout=30)


def _with_context(csms, context):
    return [p for p in csms.received("MeterValues")
            if any(v["context"] == context for mv in p["meterValue"] for v in mv["sampledValue"])]


def _stamps(payloads):
    return [parse_iso(p["meterValue"][0]["timestamp"]) for p in payloads]


def test_ocppcm_1_sends_sampled_values_only_while_charging(sims, tmp_path, csms):
    sim = online(sims(MP, tmp_path / "flash", url=csms.url()).start())
    ok(sim, ocppi=1, ocppai=1, ocppcm=1)
    sim.sim_set(ev="C")
    charging(sim)
    csms.wait_for(lambda: len(_with_context(csms, "Sample.Periodic")) >= 2)
    ok(sim, frc=1)  # suspended by the charger: the transaction goes on, not Charging
    csms.wait_for(lambda: any(p["status"] == "SuspendedEVSE" for p in csms.received("StatusNotification")))
    n = len(_with_context(csms, "Sample.Periodic"))
    # Clock-aligned values (every 1 s) keep coming; sampled ones have stopped (one may be on its way).
    c = len(_with_context(csms, "Sample.Clock"))
    csms.wait_for(lambda: len(_with_context(csms, "Sample.Clock")) >= c + 3)
    assert len(_with_context(csms, "Sample.Periodic")) <= n + 1
    n = len(_with_context(csms, "Sample.Periodic"))
    ok(sim, ocppcm=0)  # while a transaction id exists
    csms.wait_for(lambda: len(_with_context(csms, "Sample.Periodic")) >= n + 2)
    assert not sim.sim_status()["contactor"]


def test_ocppi_and_ocppai_set_over_http_pace_the_meter_values(sims, tmp_path, csms):
    sim = online(sims(MP, tmp_path / "flash", url=csms.url()).start())
    sim.sim_set(ev="C")
    csms.wait_received("StartTransaction")
    ok(sim, ocppi=2)
    csms.wait_for(lambda: len(_with_context(csms, "Sample.Periodic")) >= 4, timeout=30)
    ts = _stamps(_with_context(csms, "Sample.Periodic"))
    # Whole-second timestamps of samples 2 s apart.
    assert all(1 <= b - a <= 3 for a, b in zip(ts, ts[1:])) and abs((ts[-1] - ts[0]) - 2 * (len(ts) - 1)) <= 1
    assert _with_context(csms, "Sample.Clock") == []  # ocppai 0: none
    ok(sim, ocppai=3)
    csms.wait_for(lambda: len(_with_context(csms, "Sample.Clock")) >= 3, timeout=30)
    ts = _stamps(_with_context(csms, "Sample.Clock"))
    assert all(t % 3 == 0 for t in ts) and [b - a for a, b in zip(ts, ts[1:])] == [3] * (len(ts) - 1)
    assert sim.status("MeterValueSampleInterval", "ClockAlignedDataInterval") == \
        {"MeterValueSampleInterval": 2, "ClockAlignedDataInterval": 3}


def test_ocpplea_is_the_uptime_of_the_last_error_and_not_after_rbt(sims, runtime, tmp_path, csms):
    sim = online(sims(runtime, tmp_path / "flash", url=csms.url()).start())
    before = sim.status("rbt")["rbt"]
    ok(sim, ocppu="ws://127.0.0.1:%d/CP1" % free_port())  # nothing listens there
    st = sim.wait_status(lambda s: s["ocpple"] is not None and "failed" in s["ocpple"],
                         keys=("ocpple", "ocpplea", "rbt"))
    assert before <= st["ocpplea"] <= st["rbt"]
    # The console line of that error carries the same uptime.
    rx = re.compile(r"^\s*(\d+) E " + re.escape(st["ocpple"]) + "$")
    wait_log(sim, rx.pattern)
    times = [int(m.group(1)) for m in map(rx.match, list(sim.output)) if m]
    assert min(abs(t - st["ocpplea"]) for t in times) <= 50, (times, st)
