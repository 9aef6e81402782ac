"""MeterValues unit tests: measurands, contexts, units, phases, sampling and
clock-aligned timing, and StopTransaction transactionData, over fakes with a
fake clock (no real waiting). Every payload produced is checked against the
firmware's validation tables and the official schemas of the ocpp package."""
import asyncio
import json
from pathlib import Path

import jsonschema
import ocpp
import pytest

from firmware.clock import Clock, format_iso, parse_iso
from firmware.evse.meter import Meter
from firmware.ocpp import metering, validate
from firmware.ocpp.metering import Metering, next_aligned
from firmware.settings import Settings
from firmware.store import Store

SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"
ALL = ",".join(metering.MEASURANDS)
T0 = parse_iso("2025-03-01T10:00:00Z")


def check_schema(action, payload):
    assert validate.validate(action, payload) is None, validate.validate(action, payload)
    schema = json.loads((SCHEMAS / (action + ".json")).read_text())
    jsonschema.validate(payload, schema)


class Ticks:
    def __init__(self):
        self.ms = 1000

    def __call__(self):
        return self.ms


class FakeMeter(Meter):
    def __init__(self):
        Meter.__init__(self)
        self.ok = True
        self.voltage[:] = [230.0, 231.0, 232.0]
        self.current[:] = [16.0, 15.9, 15.8]
        self.power[:] = [3680.0, 3673.0, 3666.0]
        self.power_w = 11019.0
        self.frequency = 49.98


class FakeController:
    def __init__(self):
        self.meter = FakeMeter()
        self.offered_amps = 16
        self.phases_active = 3
        self.temperature_c = 31.5
        self.ocpp_status = "Charging"


class FakeEnergy:
    total_wh = 12345


class FakeQueue:
    def __init__(self):
        self.pushes = []

    def push(self, action, payload, tx_ref=None):
        self.pushes.append((action, payload, tx_ref))


class FakeSession:
    def __init__(self, online=True):
        self.online = asyncio.Event()
        if online:
            self.online.set()
        self.calls = []

    async def call(self, action, payload, timeout_ms=None, msg_id=None):
        self.calls.append((action, payload))
        return {}


class Tx:
    def __init__(self, ref, id=None):
        self.ref = ref
        self.id = id
        self.id_tag = "CARD1"
        self.meter_start = 12000
        self.start_s = T0


class FakeTransactions:
    def __init__(self):
        self.active = False
        self.current = None
        self._start = []
        self._stop = []

    def on_start(self, fn):
        self._start.append(fn)

    def on_stop(self, fn):
        self._stop.append(fn)

    def on_stop_data(self, fn):
        self.stop_data = fn

    def start(self, tx):
        self.active = True
        self.current = tx
        for fn in self._start:
            fn(tx)

    def stop(self):
        tx = self.current
        self.active = False
        self.current = None
        for fn in self._stop:
            fn(tx)


class FakeApp:
    def __init__(self, state_dir, queue=True, transactions=True, online=True):
        self.ticks = Ticks()
        self.store = Store(str(state_dir))
        self.settings = Settings(self.store)
        self.settings.load()
        self.clock = Clock(ticks=self.ticks)
        self.controller = FakeController()
        self.energy = FakeEnergy()
        self.session = FakeSession(online)
        self.tasks = []
        self.tx_queue = FakeQueue() if queue else None
        self.transactions = FakeTransactions() if transactions else None

    def advance(self, ms):
        self.ticks.ms += ms


def make(tmp_path, clock_set=True, **kw):
    app = FakeApp(tmp_path / "flash", **kw)
    metering.define_keys(app.settings)
    m = Metering(app.settings, app.clock, app.controller, app.energy, app.session, app.tx_queue, app.store,
                 app.transactions, ticks=app.ticks)
    if clock_set:
        app.clock.set(T0)
    return app, m


def by_measurand(mv, measurand):
    return [v for v in mv["sampledValue"] if v["measurand"] == measurand]


def run_for(app, m, ms, step_ms=100):
    """Advance the fake clock in steps, calling step() like the task would."""
    end = app.ticks.ms + ms
    while app.ticks.ms < end:
        m.step()
        app.advance(step_ms)
    m.step()


def pushed(app, context=None):
    out = [p for a, p, _ in app.tx_queue.pushes if a == "MeterValues"]
    if context:
        out = [p for p in out if p["meterValue"][0]["sampledValue"][0]["context"] == context]
    return out


# -- keys ---------------------------------------------------------------------------

def test_sample_interval_is_ocppi_and_aligned_interval_is_ocppai(tmp_path):
    app, m = make(tmp_path)
    s = app.settings
    assert s.set("ocppi", 15) is None and s.get("MeterValueSampleInterval") == 15
    assert s.change_configuration("ClockAlignedDataInterval", "900") == "Accepted"
    assert s.get("ocppai") == 900


def test_max_length_keys_are_read_only_and_count_the_supported_measurands(tmp_path):
    app, m = make(tmp_path)
    known, _ = app.settings.get_configuration(["MeterValuesSampledDataMaxLength", "StopTxnAlignedDataMaxLength"])
    assert [(k["value"], k["readonly"]) for k in known] == [("8", True), ("8", True)]
    assert app.settings.change_configuration("MeterValuesAlignedDataMaxLength", "3") == "Rejected"


def test_measurand_list_rejects_unsupported_measurand(tmp_path):
    app, m = make(tmp_path)
    assert app.settings.change_configuration("MeterValuesSampledData", "Energy.Active.Import.Register,SoC") == "Rejected"
    assert app.settings.get("MeterValuesSampledData") == "Energy.Active.Import.Register"


def test_measurand_list_accepts_every_supported_measurand_up_to_max_length(tmp_path):
    app, m = make(tmp_path)
    assert app.settings.change_configuration("StopTxnSampledData", ALL) == "Accepted"
    assert app.settings.set("StopTxnSampledData", ALL + ",Voltage") is not None  # 9 > MaxLength 8


def test_ocppcm_accepts_only_0_and_1(tmp_path):
    app, m = make(tmp_path)
    assert app.settings.set("ocppcm", 1) is None
    assert app.settings.set("ocppcm", 2) is not None


# -- measurands ---------------------------------------------------------------------

def test_energy_register_is_the_persistent_total_in_wh_at_the_outlet(tmp_path):
    app, m = make(tmp_path)
    mv = m.sample("Sample.Periodic", "Energy.Active.Import.Register")
    assert mv == {"timestamp": "2025-03-01T10:00:00Z", "sampledValue": [
        {"value": "12345", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
         "location": "Outlet", "unit": "Wh"}]}


def test_power_active_import_is_the_total_in_w_without_phase(tmp_path):
    app, m = make(tmp_path)
    [v] = by_measurand(m.sample("Sample.Periodic", "Power.Active.Import"), "Power.Active.Import")
    assert (v["value"], v["unit"], "phase" in v) == ("11019", "W", False)


def test_current_import_is_reported_per_active_phase(tmp_path):
    app, m = make(tmp_path)
    vs = by_measurand(m.sample("Sample.Periodic", "Current.Import"), "Current.Import")
    assert [(v["phase"], v["value"], v["unit"]) for v in vs] == [("L1", "16.0", "A"), ("L2", "15.9", "A"),
                                                                  ("L3", "15.8", "A")]


def test_single_phase_charging_reports_only_l1(tmp_path):
    app, m = make(tmp_path)
    app.controller.phases_active = 1
    vs = by_measurand(m.sample("Sample.Periodic", "Current.Import,Voltage"), "Current.Import")
    assert [v["phase"] for v in vs] == ["L1"]


def test_voltage_is_line_to_neutral_per_phase(tmp_path):
    app, m = make(tmp_path)
    vs = by_measurand(m.sample("Sample.Periodic", "Voltage"), "Voltage")
    assert [(v["phase"], v["value"], v["unit"]) for v in vs] == [("L1-N", "230.0", "V"), ("L2-N", "231.0", "V"),
                                                                  ("L3-N", "232.0", "V")]


def test_current_offered_is_the_pwm_offer_in_a(tmp_path):
    app, m = make(tmp_path)
    app.controller.offered_amps = 10.5
    [v] = by_measurand(m.sample("Sample.Periodic", "Current.Offered"), "Current.Offered")
    assert (v["value"], v["unit"]) == ("10.5", "A")


def test_power_offered_is_the_offer_times_the_phase_voltages(tmp_path):
    app, m = make(tmp_path)
    [v] = by_measurand(m.sample("Sample.Periodic", "Power.Offered"), "Power.Offered")
    assert (v["value"], v["unit"]) == ("%.0f" % (16 * (230 + 231 + 232)), "W")


def test_power_offered_uses_nominal_voltage_while_the_meter_fails(tmp_path):
    app, m = make(tmp_path)
    app.controller.meter.ok = False
    app.controller.phases_active = 1
    [v] = by_measurand(m.sample("Sample.Periodic", "Power.Offered"), "Power.Offered")
    assert v["value"] == "3680"


def test_frequency_has_no_unit(tmp_path):
    app, m = make(tmp_path)
    [v] = by_measurand(m.sample("Sample.Periodic", "Frequency"), "Frequency")
    assert v["value"] == "49.98" and "unit" not in v


def test_temperature_is_in_celsius_at_the_body(tmp_path):
    app, m = make(tmp_path)
    [v] = by_measurand(m.sample("Sample.Periodic", "Temperature"), "Temperature")
    assert (v["value"], v["unit"], v["location"]) == ("31.5", "Celsius", "Body")


def test_meter_measurands_are_left_out_while_the_meter_fails(tmp_path):
    app, m = make(tmp_path)
    app.controller.meter.ok = False
    mv = m.sample("Sample.Periodic", ALL)
    assert {v["measurand"] for v in mv["sampledValue"]} == {
        "Energy.Active.Import.Register", "Current.Offered", "Power.Offered", "Temperature"}


def test_frequency_and_temperature_are_left_out_without_a_reading(tmp_path):
    app, m = make(tmp_path)
    app.controller.meter.frequency = None
    app.controller.temperature_c = None
    assert m.sample("Sample.Periodic", "Frequency,Temperature") is None


def test_sample_carries_the_given_context_on_every_value(tmp_path):
    app, m = make(tmp_path)
    for ctx in ("Sample.Periodic", "Sample.Clock", "Transaction.Begin", "Transaction.End"):
        mv = m.sample(ctx, ALL)
        assert {v["context"] for v in mv["sampledValue"]} == {ctx}


def test_no_sample_before_the_clock_is_set(tmp_path):
    app, m = make(tmp_path, clock_set=False)
    assert m.sample("Sample.Periodic", ALL) is None


# -- sampled MeterValues --------------------------------------------------------------

def test_periodic_values_go_to_the_queue_at_the_interval_with_the_transaction_ref(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 10)
    app.transactions.start(Tx(7, 42))
    run_for(app, m, 9900)
    assert pushed(app) == []
    run_for(app, m, 200)
    [(action, payload, ref)] = app.tx_queue.pushes
    assert (action, ref, payload["connectorId"], payload["transactionId"]) == ("MeterValues", 7, 1, 42)
    assert payload["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Periodic"
    run_for(app, m, 10000)
    assert len(pushed(app)) == 2


def test_periodic_values_before_the_transaction_id_is_known_carry_a_placeholder(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.transactions.start(Tx(3, None))
    run_for(app, m, 1100)
    [(_, payload, ref)] = app.tx_queue.pushes
    assert ref == 3 and isinstance(payload["transactionId"], int)
    check_schema("MeterValues", payload)


def test_periodic_values_use_meter_values_sampled_data(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.settings.set("MeterValuesSampledData", "Power.Active.Import,Current.Offered")
    app.transactions.start(Tx(1, 1))
    run_for(app, m, 1100)
    mv = pushed(app)[0]["meterValue"][0]
    assert [v["measurand"] for v in mv["sampledValue"]] == ["Power.Active.Import", "Current.Offered"]


def test_no_periodic_values_without_a_transaction(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    run_for(app, m, 5000)
    assert app.tx_queue.pushes == [] and app.session.calls == []


def test_periodic_values_stop_with_the_transaction(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.transactions.start(Tx(1, 1))
    run_for(app, m, 2100)
    n = len(pushed(app))
    app.transactions.stop()
    run_for(app, m, 3000)
    assert n == 2 and len(pushed(app)) == n


def test_sample_interval_0_turns_periodic_values_off(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 0)
    app.transactions.start(Tx(1, 1))
    run_for(app, m, 5000)
    assert pushed(app) == []


def test_shorter_sample_interval_applies_at_once(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 3600)
    app.transactions.start(Tx(1, 1))
    run_for(app, m, 5000)
    app.settings.set("ocppi", 2)
    run_for(app, m, 2100)
    assert len(pushed(app)) == 1


def test_step_asks_to_be_woken_no_later_than_the_next_sample(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.transactions.start(Tx(1, 1))
    app.advance(700)
    assert m.step() <= 300


def test_ocppcm_1_sends_periodic_values_only_while_charging(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.settings.set("ocppcm", 1)
    app.controller.ocpp_status = "SuspendedEV"
    app.transactions.start(Tx(1, 1))
    run_for(app, m, 2100)
    assert pushed(app) == []
    app.controller.ocpp_status = "Charging"
    run_for(app, m, 1000)
    assert len(pushed(app)) == 1


def test_ocppcm_0_sends_periodic_values_while_suspended(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.controller.ocpp_status = "SuspendedEV"
    app.transactions.start(Tx(1, 1))
    run_for(app, m, 2100)
    assert len(pushed(app)) == 2


def test_no_periodic_values_before_the_clock_is_set(tmp_path):
    app, m = make(tmp_path, clock_set=False)
    app.settings.set("ocppi", 1)
    app.transactions.start(Tx(1, 1))
    run_for(app, m, 3000)
    assert pushed(app) == []


def test_transaction_recovered_after_reboot_is_sampled_without_a_start_event(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.transactions.active = True
    app.transactions.current = Tx(5, 9)
    run_for(app, m, 1100)
    assert [ref for _, _, ref in app.tx_queue.pushes] == [5]


# -- clock-aligned MeterValues ----------------------------------------------------------

def test_next_aligned_counts_from_midnight_utc():
    assert format_iso(next_aligned(parse_iso("2025-03-01T10:07:01Z"), 900)) == "2025-03-01T10:15:00Z"
    # 7 h does not divide a day: 00, 07, 14, 21 h, then midnight again.
    assert format_iso(next_aligned(parse_iso("2025-03-01T21:00:00Z"), 7 * 3600)) == "2025-03-02T00:00:00Z"
    assert format_iso(next_aligned(parse_iso("2025-03-01T06:59:59Z"), 7 * 3600)) == "2025-03-01T07:00:00Z"


def test_aligned_values_outside_a_transaction_go_directly_on_connector_1(tmp_path):
    async def go():
        app, m = make(tmp_path)
        app.settings.set("ocppai", 900)
        app.clock.set(parse_iso("2025-03-01T10:14:58Z"))
        run_for(app, m, 1900)
        assert app.session.calls == []
        run_for(app, m, 300)
        await asyncio.sleep(0)
        [(action, payload)] = app.session.calls
        assert action == "MeterValues" and "transactionId" not in payload and payload["connectorId"] == 1
        mv = payload["meterValue"][0]
        assert mv["timestamp"] == "2025-03-01T10:15:00Z"
        assert {v["context"] for v in mv["sampledValue"]} == {"Sample.Clock"}
        check_schema("MeterValues", payload)
    asyncio.run(go())


def test_aligned_values_are_timestamped_at_each_boundary(tmp_path):
    async def go():
        app, m = make(tmp_path)
        app.settings.set("ocppai", 2)
        for _ in range(4):
            run_for(app, m, 2000)
            await asyncio.sleep(0)
        stamps = [parse_iso(p["meterValue"][0]["timestamp"]) for _, p in app.session.calls]
        assert len(stamps) == 4 and all(t % 2 == 0 for t in stamps)
        assert [b - a for a, b in zip(stamps, stamps[1:])] == [2, 2, 2]
    asyncio.run(go())


def test_aligned_values_use_meter_values_aligned_data(tmp_path):
    async def go():
        app, m = make(tmp_path)
        app.settings.set("MeterValuesAlignedData", "Voltage,Frequency")
        app.settings.set("ocppai", 1)
        run_for(app, m, 1000)
        await asyncio.sleep(0)
        mv = app.session.calls[0][1]["meterValue"][0]
        assert {v["measurand"] for v in mv["sampledValue"]} == {"Voltage", "Frequency"}
    asyncio.run(go())


def test_aligned_values_are_dropped_while_offline(tmp_path):
    async def go():
        app, m = make(tmp_path, online=False)
        app.settings.set("ocppai", 1)
        run_for(app, m, 3000)
        await asyncio.sleep(0)
        assert app.session.calls == [] and m.dropped >= 2
    asyncio.run(go())


def test_aligned_values_during_a_transaction_go_to_the_queue(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 0)
    app.settings.set("ocppai", 60)
    app.transactions.start(Tx(4, 11))
    run_for(app, m, 61000, step_ms=500)
    [(_, payload, ref)] = app.tx_queue.pushes
    assert ref == 4 and payload["transactionId"] == 11 and app.session.calls == []
    assert payload["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"


def test_aligned_interval_0_sends_nothing(tmp_path):
    async def go():
        app, m = make(tmp_path)
        app.settings.set("ocppai", 0)
        run_for(app, m, 5000)
        await asyncio.sleep(0)
        assert app.session.calls == []
    asyncio.run(go())


def test_no_aligned_values_before_the_clock_is_set(tmp_path):
    async def go():
        app, m = make(tmp_path, clock_set=False)
        app.settings.set("ocppai", 1)
        run_for(app, m, 3000)
        await asyncio.sleep(0)
        assert app.session.calls == []
    asyncio.run(go())


def test_clock_jump_past_whole_intervals_sends_no_stale_instant(tmp_path):
    async def go():
        app, m = make(tmp_path)
        app.settings.set("ocppai", 60)
        m.step()
        app.clock.set(T0 + 3600)  # the CSMS corrected the clock by an hour
        m.step()
        await asyncio.sleep(0)
        assert app.session.calls == []
    asyncio.run(go())


# -- transactionData --------------------------------------------------------------------

def test_stop_data_holds_begin_periodic_clock_and_end_samples(tmp_path):
    app, m = make(tmp_path)
    s = app.settings
    s.set("ocppi", 30)
    s.set("ocppai", 60)
    s.set("StopTxnSampledData", "Energy.Active.Import.Register,Current.Import")
    s.set("StopTxnAlignedData", "Energy.Active.Import.Register")
    tx = Tx(2, 8)
    app.transactions.start(tx)
    run_for(app, m, 60500, step_ms=500)
    data = m.stop_data(tx)
    contexts = [mv["sampledValue"][0]["context"] for mv in data]
    assert contexts == ["Transaction.Begin", "Sample.Periodic", "Sample.Periodic", "Sample.Clock",
                        "Transaction.End"]
    assert len(data[-1]["sampledValue"]) == 4  # energy + three phase currents


def test_stop_data_keeps_begin_the_last_samples_and_end(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.settings.set("StopTxnSampledData", "Energy.Active.Import.Register")
    tx = Tx(2, 8)
    app.transactions.start(tx)
    for i in range(20):
        app.energy.total_wh = 20000 + i
        run_for(app, m, 1000)
    data = m.stop_data(tx)
    values = [mv["sampledValue"][0]["value"] for mv in data]
    assert len(data) == metering.KEEP + 2
    assert values[0] == "12345" and values[-2] == "20019" and values[1] == str(20019 - metering.KEEP + 1)


def test_stop_data_is_empty_when_no_stop_measurands_are_configured(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    tx = Tx(2, 8)
    app.transactions.start(tx)
    run_for(app, m, 3000)
    assert m.stop_data(tx) == []
    assert not app.store.exists("stop_data.json")


def test_stop_data_survives_a_reboot(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.settings.set("StopTxnSampledData", "Energy.Active.Import.Register")
    app.transactions.start(Tx(6, 1))
    run_for(app, m, 2100)
    app2, m2 = make(tmp_path)  # same flash
    data = m2.stop_data(Tx(6, 1))
    assert [mv["sampledValue"][0]["context"] for mv in data] == [
        "Transaction.Begin", "Sample.Periodic", "Sample.Periodic", "Transaction.End"]


def test_stop_data_of_another_transaction_has_only_the_end_sample(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("ocppi", 1)
    app.settings.set("StopTxnSampledData", "Energy.Active.Import.Register")
    app.transactions.start(Tx(6, 1))
    run_for(app, m, 2100)
    data = m.stop_data(Tx(7, 2))
    assert [mv["sampledValue"][0]["context"] for mv in data] == ["Transaction.End"]


def test_stop_data_is_handed_over_once(tmp_path):
    app, m = make(tmp_path)
    app.settings.set("StopTxnSampledData", "Energy.Active.Import.Register")
    tx = Tx(6, 1)
    app.transactions.start(tx)
    m.stop_data(tx)
    assert [mv["sampledValue"][0]["context"] for mv in m.stop_data(tx)] == ["Transaction.End"]
    assert not app.store.exists("stop_data.json")


# -- schemas ----------------------------------------------------------------------------

@pytest.mark.parametrize("context", ["Sample.Periodic", "Sample.Clock", "Transaction.Begin", "Transaction.End"])
def test_meter_values_with_every_measurand_validate(tmp_path, context):
    app, m = make(tmp_path)
    payload = {"connectorId": 1, "transactionId": 5, "meterValue": [m.sample(context, ALL)]}
    check_schema("MeterValues", payload)


def test_stop_transaction_with_transaction_data_of_every_measurand_validates(tmp_path):
    app, m = make(tmp_path)
    s = app.settings
    s.set("ocppi", 1)
    s.set("ocppai", 1)
    s.set("StopTxnSampledData", ALL)
    s.set("StopTxnAlignedData", ALL)
    tx = Tx(1, 3)
    app.transactions.start(tx)
    run_for(app, m, 3000)
    data = m.stop_data(tx)
    assert {mv["sampledValue"][0]["context"] for mv in data} == {
        "Transaction.Begin", "Sample.Periodic", "Sample.Clock", "Transaction.End"}
    payload = {"transactionId": 3, "idTag": "CARD1", "meterStop": 12345, "timestamp": app.clock.iso(),
               "reason": "Local", "transactionData": data}
    check_schema("StopTransaction", payload)
    for _, p, _ in app.tx_queue.pushes:
        check_schema("MeterValues", p)


def test_the_application_runs_metering_and_gives_it_the_transaction_events(tmp_path):
    from boards.host.board import HostBoard
    from firmware.app import App
    app = App(HostBoard(str(tmp_path)), str(tmp_path))
    [m] = [fn.__self__ for fn in app.tasks if isinstance(fn.__self__, Metering)]
    t = app.transactions
    assert m.transactions is t and m.stop_data in t._stop_data and m._on_start in t._start_ls


def test_triggered_meter_values_are_sent_directly_with_the_transaction_id(tmp_path):
    app, m = make(tmp_path)
    app.transactions.start(Tx(2, 77))

    async def go():
        assert m.trigger(None) is True
        await asyncio.sleep(0)
    asyncio.run(go())
    [(action, payload)] = app.session.calls
    assert action == "MeterValues" and payload["transactionId"] == 77
    assert payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    assert [a for a, _, _ in app.tx_queue.pushes if a == "MeterValues"] == []  # the queue is not disturbed
    check_schema("MeterValues", payload)
    assert m.trigger(2) is False
