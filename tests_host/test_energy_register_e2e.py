"""One energy register end to end, both runtimes: while charging, the session
energy `wh` never exceeds what the total `eto` counted since plug-in, MeterValues
show that same total, and meterStop - meterStart is the session energy `wh`."""
import pytest

pytestmark = pytest.mark.e2e

REGISTER = "Energy.Active.Import.Register"


def start(sims, runtime, tmp_path, csms, *sets):
    sim = sims(runtime, tmp_path / "flash", url=csms.url(),
               sets=("acs=0", "MeterValueSampleInterval=1", "TransactionMessageRetryInterval=1") + sets).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    return sim


def sample_while_charging(sim, eto0, n=12):
    """n moments while charging: (eto, wh) from one status read each."""
    seen = []
    last = eto0
    for _ in range(n):
        st = sim.wait_status(lambda s: s["eto"] > last, keys=("eto", "wh", "car"))
        assert st["car"] == 2
        seen.append((st["eto"], st["wh"]))
        last = st["eto"]
    return seen


def registers(csms):
    return [int(v["value"]) for p in csms.received("MeterValues") for mv in p["meterValue"]
            for v in mv["sampledValue"] if v.get("measurand", REGISTER) == REGISTER]


@pytest.mark.parametrize("stop", ["unplug", "remote"])
def test_session_energy_and_total_come_from_one_register(sims, runtime, tmp_path, csms, stop):
    sim = start(sims, runtime, tmp_path, csms)
    eto0 = sim.status("eto")["eto"]
    sim.sim_set(ev="C")
    start_tx = csms.wait_received("StartTransaction", 1)[0]
    assert start_tx["meterStart"] >= eto0
    for eto, wh in sample_while_charging(sim, eto0):
        assert 0 <= wh <= eto - eto0, (eto, wh, eto0)
        assert wh <= eto - start_tx["meterStart"]
    if stop == "remote":
        sim.wait_status(lambda s: s["ocppti"] is not None, keys=("ocppti",))
        tx_id = sim.status("ocppti")["ocppti"]
        assert csms.call("CP1", "RemoteStopTransaction", {"transactionId": tx_id})["status"] == "Accepted"
        stop_tx = csms.wait_received("StopTransaction", 1)[0]
        sim.wait_status(lambda s: s["car"] != 2, keys=("car",))
        sim.sim_set(ev="A")
    else:
        sim.sim_set(ev="A")
        stop_tx = csms.wait_received("StopTransaction", 1)[0]
    st = sim.wait_status(lambda s: s["car"] == 1, keys=("car", "wh", "eto"))
    assert stop_tx["meterStop"] - start_tx["meterStart"] == st["wh"] > 0
    assert stop_tx["meterStop"] <= st["eto"]
    for v in registers(csms):
        assert start_tx["meterStart"] <= v <= stop_tx["meterStop"]
    assert registers(csms)
