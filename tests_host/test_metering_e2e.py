"""MeterValues end to end: the simulator on both runtimes against the ocpp-based
CSMS (which checks every frame against the official schemas)."""
from pathlib import Path

import pytest

from firmware.clock import parse_iso

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
HAVE_TRANSACTIONS = (ROOT / "firmware" / "ocpp" / "transactions.py").exists()
needs_transactions = pytest.mark.skipif(not HAVE_TRANSACTIONS, reason="firmware/ocpp/transactions.py not there yet")

SAMPLED = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,Current.Offered"


def contexts(payload):
    return {v["context"] for mv in payload["meterValue"] for v in mv["sampledValue"]}


def with_context(csms, context):
    return [p for p in csms.received("MeterValues") if context in contexts(p)]


def stamps(payloads):
    return [parse_iso(p["meterValue"][0]["timestamp"]) for p in payloads]


def test_clock_aligned_values_every_2_s_outside_a_transaction(sims, runtime, tmp_path, csms):
    sims(runtime, tmp_path / "flash", url=csms.url(), sets=[
        "ocppai=2", 'MeterValuesAlignedData="Energy.Active.Import.Register,Voltage,Frequency,Temperature"']).start()
    csms.wait_for(lambda: len(with_context(csms, "Sample.Clock")) >= 3, timeout=30)
    got = with_context(csms, "Sample.Clock")[:3]
    assert all(p["connectorId"] == 1 and "transactionId" not in p for p in got)
    ts = stamps(got)
    assert all(t % 2 == 0 for t in ts) and [b - a for a, b in zip(ts, ts[1:])] == [2, 2]
    units = {v["measurand"]: v.get("unit") for v in got[0]["meterValue"][0]["sampledValue"]}
    assert units == {"Energy.Active.Import.Register": "Wh", "Voltage": "V", "Frequency": None,
                     "Temperature": "Celsius"}


def power(payload):
    return sum(float(v["value"]) for v in payload["meterValue"][0]["sampledValue"]
               if v["measurand"] == "Power.Active.Import")


def start_charging(sims, runtime, tmp_path, csms, *sets):
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=list(sets)).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    csms.call("CP1", "RemoteStartTransaction", {"idTag": "CARD1", "connectorId": 1})
    sim.sim_set(ev="C")
    csms.wait_received("StartTransaction")
    return sim


@needs_transactions
def test_sampled_values_every_second_while_charging(sims, runtime, tmp_path, csms):
    start_charging(sims, runtime, tmp_path, csms, "ocppi=1", "ocppai=2", 'MeterValuesSampledData="%s"' % SAMPLED)
    csms.wait_for(lambda: len([p for p in with_context(csms, "Sample.Periodic") if power(p) > 0]) >= 3, timeout=30)
    periodic = with_context(csms, "Sample.Periodic")
    assert all(p["connectorId"] == 1 and isinstance(p.get("transactionId"), int) for p in periodic)
    ts = stamps(periodic)
    # Whole-second timestamps of samples 1 s apart: steps of 0..2 s, about 1 s on average.
    assert all(0 <= b - a <= 2 for a, b in zip(ts, ts[1:]))
    assert abs((ts[-1] - ts[0]) - (len(ts) - 1)) <= 1
    last = periodic[-1]["meterValue"][0]["sampledValue"]
    seen = {(v["measurand"], v.get("phase"), v["unit"]) for v in last}
    assert seen >= {("Energy.Active.Import.Register", None, "Wh"), ("Power.Active.Import", None, "W"),
                    ("Current.Import", "L1", "A"), ("Voltage", "L1-N", "V"), ("Current.Offered", None, "A")}
    # Clock-aligned values during the transaction carry its id too.
    csms.wait_for(lambda: len([p for p in with_context(csms, "Sample.Clock") if "transactionId" in p]) >= 1,
                  timeout=10)


@needs_transactions
def test_stop_transaction_carries_transaction_data(sims, runtime, tmp_path, csms):
    sim = start_charging(sims, runtime, tmp_path, csms, "ocppi=1",
                         'StopTxnSampledData="Energy.Active.Import.Register"')
    csms.wait_for(lambda: len(with_context(csms, "Sample.Periodic")) >= 2, timeout=30)
    sim.sim_set(ev="A")
    [stop] = csms.wait_received("StopTransaction")
    data = stop.get("transactionData") or []
    ctx = [mv["sampledValue"][0]["context"] for mv in data]
    assert ctx[0] == "Transaction.Begin" and ctx[-1] == "Transaction.End" and "Sample.Periodic" in ctx
