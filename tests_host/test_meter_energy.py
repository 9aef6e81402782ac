import json

from hypothesis import given, settings, strategies as st

from firmware.evse.energy import EnergyCounter
from firmware.store import Store
from tests_host.fakes_meter import FailingStore, FakeMeter, MemStore


def counter(store, meter, **kw):
    return EnergyCounter(store, meter, **kw)


def charge(ec, meter, clock, seconds, watts, step_s=1):
    """Advance a charging session: the meter counts watts, the loop updates every step_s."""
    t = clock[0]
    meter.power_w = watts
    for _ in range(int(seconds / step_s)):
        t += step_s * 1000
        meter.energy_wh += watts * step_s / 3600.0
        ec.update(t)
    clock[0] = t


def test_first_boot_starts_from_the_meter_register(tmp_path):
    ec = counter(Store(str(tmp_path)), FakeMeter(12345678.9))
    ec.update(0)
    assert ec.total_wh == 12345678
    assert ec.error is None


def test_first_reading_is_persisted_at_once(tmp_path):
    store = Store(str(tmp_path))
    ec = counter(store, FakeMeter(500.0))
    ec.update(0)
    assert store.read_json("energy.json")[0]["wh"] == 500
    assert ec.writes == 1


def test_total_counts_whole_wh_and_keeps_the_fraction(tmp_path):
    meter = FakeMeter(0.0)
    ec = counter(Store(str(tmp_path)), meter)
    ec.update(0)
    for i in range(1, 31):
        meter.energy_wh = i * 0.1
        ec.update(i * 1000)
    assert ec.total_wh == 3
    assert isinstance(ec.total_wh, int)


def test_reading_while_meter_not_ok_is_ignored(tmp_path):
    meter = FakeMeter(100.0)
    ec = counter(Store(str(tmp_path)), meter)
    ec.update(0)
    meter.ok = False
    meter.energy_wh = 0.0
    ec.update(1000)
    meter.ok = True
    meter.energy_wh = 105.0
    ec.update(2000)
    assert ec.total_wh == 105


def test_nan_and_inf_readings_are_ignored(tmp_path):
    meter = FakeMeter(100.0)
    ec = counter(Store(str(tmp_path)), meter)
    ec.update(0)
    for bad in (float("nan"), float("inf")):
        meter.energy_wh = bad
        ec.update(1000)
    meter.energy_wh = 101.0
    ec.update(2000)
    assert ec.total_wh == 101


def test_s0_count_restarting_at_zero_after_reboot_continues_the_total(tmp_path):
    store = Store(str(tmp_path))
    meter = FakeMeter(0.0)
    ec = counter(store, meter)
    clock = [0]
    charge(ec, meter, clock, 600, 11000)
    ec.flush(final=True)  # a clean shutdown
    before = ec.total_wh
    meter2 = FakeMeter(0.0)  # S0 pulse count after reboot
    ec2 = counter(store, meter2)
    ec2.update(0)
    assert ec2.total_wh == before
    meter2.energy_wh = 50.0
    ec2.update(20000)
    assert ec2.total_wh == before + 50


def test_meter_reading_lower_than_persisted_never_goes_backwards(tmp_path):
    store = Store(str(tmp_path))
    store.write_json("energy.json", {"wh": 90000, "m": 90000.0})
    meter = FakeMeter(1000.0)  # replaced meter
    ec = counter(store, meter)
    ec.update(0)
    assert ec.total_wh == 90000
    assert ec.resets == 1
    meter.energy_wh = 1010.0
    ec.update(10000)
    assert ec.total_wh == 90010


def test_meter_that_kept_counting_across_a_power_cut_adds_the_unsaved_tail(tmp_path):
    store = Store(str(tmp_path))
    store.write_json("energy.json", {"wh": 5000, "m": 5000.0})
    ec = counter(store, FakeMeter(5061.0))  # 10 s at 22 kW after the last write
    ec.update(0)
    assert ec.total_wh == 5061
    assert ec.resets == 0


def test_meter_far_above_persisted_is_a_different_meter(tmp_path):
    store = Store(str(tmp_path))
    store.write_json("energy.json", {"wh": 5000, "m": 5000.0})
    ec = counter(store, FakeMeter(750000.0))
    ec.update(0)
    assert ec.total_wh == 5000
    assert ec.resets == 1


def test_meter_going_backwards_at_runtime_does_not_reduce_the_total(tmp_path):
    meter = FakeMeter(2000.0)
    ec = counter(Store(str(tmp_path)), meter)
    ec.update(0)
    meter.energy_wh = 10.0
    ec.update(1000)
    assert ec.total_wh == 2000
    meter.energy_wh = 15.0
    ec.update(2000)
    assert ec.total_wh == 2005


def test_implausible_jump_is_not_counted(tmp_path):
    meter = FakeMeter(100.0)
    ec = counter(Store(str(tmp_path)), meter, max_w=50000)
    ec.update(0)
    meter.energy_wh = 100.0 + 1e6  # a MWh in one second
    ec.update(1000)
    assert ec.total_wh == 100
    meter.energy_wh += 3.0
    ec.update(2000)
    assert ec.total_wh == 103


def test_energy_counted_while_the_meter_was_unreachable_is_kept(tmp_path):
    meter = FakeMeter(100.0)
    ec = counter(Store(str(tmp_path)), meter)
    ec.update(0)
    meter.ok = False
    ec.update(1000)
    meter.ok = True
    meter.energy_wh = 100.0 + 11000.0  # one hour at 11 kW without a reading
    ec.update(3600000)
    assert ec.total_wh == 11100


def test_corrupt_file_reports_error_and_starts_from_the_meter(tmp_path):
    (tmp_path / "energy.json").write_text('{"wh": 12')
    store = Store(str(tmp_path))
    ec = counter(store, FakeMeter(777.0))
    assert ec.error
    ec.update(0)
    assert ec.total_wh == 777
    assert store.read_json("energy.json")[0]["wh"] == 777


def test_wrong_shaped_file_reports_error(tmp_path):
    (tmp_path / "energy.json").write_text(json.dumps({"wh": "lots"}))
    ec = counter(Store(str(tmp_path)), FakeMeter(5.0))
    assert "energy.json" in ec.error
    ec.update(0)
    assert ec.total_wh == 5


def test_missing_file_is_no_error(tmp_path):
    ec = counter(Store(str(tmp_path)), FakeMeter(0.0))
    assert ec.error is None


def test_failing_flash_reports_error_without_raising(tmp_path):
    store = FailingStore()
    meter = FakeMeter(10.0)
    ec = counter(store, meter)
    ec.update(0)
    meter.energy_wh = 110.0
    ec.update(1000)
    assert ec.total_wh == 110
    assert ec.error == "energy.json write failed"


def test_failing_flash_is_retried_at_the_normal_rate_not_every_update(tmp_path):
    store = FailingStore()
    meter = FakeMeter(10.0)
    ec = counter(store, meter)
    clock = [0]
    charge(ec, meter, clock, 120, 11000)
    assert store.attempts <= 1 + 120 // 10 + 1


def test_flush_writes_the_current_total(tmp_path):
    store = Store(str(tmp_path))
    meter = FakeMeter(0.0)
    ec = counter(store, meter)
    ec.update(0)
    meter.energy_wh = 3.0
    ec.update(1000)
    ec.flush()
    assert store.read_json("energy.json")[0]["wh"] == 3


def test_flush_without_change_does_not_write(tmp_path):
    store = Store(str(tmp_path))
    ec = counter(store, FakeMeter(0.0))
    ec.update(0)
    n = ec.writes
    ec.flush()
    ec.flush()
    assert ec.writes == n


def test_small_change_is_written_after_max_interval(tmp_path):
    store = Store(str(tmp_path))
    meter = FakeMeter(0.0)
    ec = counter(store, meter, max_ms=60000)
    ec.update(0)
    meter.energy_wh = 2.0
    ec.update(59000)
    assert store.read_json("energy.json")[0]["wh"] == 0
    ec.update(60000)
    assert store.read_json("energy.json")[0]["wh"] == 2


def test_ten_wh_are_written_after_min_interval(tmp_path):
    store = Store(str(tmp_path))
    meter = FakeMeter(0.0)
    ec = counter(store, meter, step_wh=10, min_ms=10000)
    meter.power_w = 22000.0  # the reserve covers the next 15 s: no write forced before min_ms
    ec.update(0)
    meter.energy_wh = 12.0
    ec.update(5000)
    assert store.read_json("energy.json")[0]["wh"] == 0
    ec.update(10000)
    assert store.read_json("energy.json")[0]["wh"] == 12


def test_idle_charger_does_not_write():
    store = MemStore()
    meter = FakeMeter(100.0)
    ec = counter(store, meter)
    clock = [0]
    charge(ec, meter, clock, 24 * 3600, 0, step_s=10)
    assert ec.writes == 1


def test_write_count_is_bounded_for_a_ten_hour_22kw_session():
    store = MemStore()
    meter = FakeMeter(0.0)
    ec = counter(store, meter, step_wh=10, min_ms=10000, max_ms=60000)
    clock = [0]
    charge(ec, meter, clock, 10 * 3600, 22000)
    assert ec.total_wh >= 219999
    assert ec.writes <= 10 * 3600 // 10 + 2  # one per 10 s, not one per 10 Wh (22000)
    assert store.writes == ec.writes


def test_write_count_is_bounded_for_a_slow_session():
    store = MemStore()
    meter = FakeMeter(0.0)
    ec = counter(store, meter, step_wh=10, min_ms=10000, max_ms=60000)
    clock = [0]
    charge(ec, meter, clock, 10 * 3600, 300)  # 300 W: 10 Wh every 2 minutes
    assert ec.writes <= 10 * 3600 // 60 + 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("add"), st.floats(0, 500)),
    st.tuples(st.just("set"), st.floats(-1e6, 1e8)),
    st.tuples(st.just("reboot"), st.floats(0, 1e6)),
    st.tuples(st.just("cut"), st.floats(0, 1e6)),
    st.tuples(st.just("power"), st.floats(0, 60000)),
    st.tuples(st.just("flush"), st.just(0.0)),
    st.tuples(st.just("offline"), st.just(0.0)),
), max_size=40))
def test_total_never_decreases_whatever_the_meter_and_reboots_do(tmp_path_factory, ops):
    store = Store(str(tmp_path_factory.mktemp("e")))
    meter = FakeMeter(0.0)
    ec = EnergyCounter(store, meter)
    t = 0
    ec.update(t)
    last = ec.total_wh
    for op, v in ops:
        t += 1000
        meter.ok = True
        if op == "add":
            meter.energy_wh += v
        elif op == "set":
            meter.energy_wh = v
        elif op == "reboot":
            ec.flush(final=True)
            meter = FakeMeter(v)
            ec = EnergyCounter(store, meter)
        elif op == "cut":  # power loss: no flush, the meter may restart anywhere
            meter = FakeMeter(v)
            ec = EnergyCounter(store, meter)
            assert ec.total_wh >= last  # even before the first reading
        elif op == "power":
            meter.power_w = v
        elif op == "flush":
            ec.flush()
        else:
            meter.ok = False
        ec.update(t)
        assert ec.total_wh >= last
        last = ec.total_wh


def test_power_cut_never_shows_less_than_what_was_shown_before(tmp_path):
    store = Store(str(tmp_path))
    meter = FakeMeter(0.0)
    ec = counter(store, meter)
    clock = [0]
    shown = 0
    for _ in range(40):  # 22 kW, cut at a different point after each second
        charge(ec, meter, clock, 1, 22000)
        shown = max(shown, ec.total_wh)
    ec2 = counter(store, FakeMeter(0.0))  # S0 count restarts at 0, nothing flushed
    assert ec2.total_wh >= shown
    ec2.update(clock[0] + 1000)
    assert ec2.total_wh >= shown
    # ... and at most the reserve (15 s at 22 kW) above the energy that flowed.
    assert ec2.total_wh <= int(meter.energy_wh) + 22000 * 15 // 3600 + 10


def test_meter_that_kept_counting_past_the_reserve_is_followed(tmp_path):
    store = Store(str(tmp_path))
    store.write_json("energy.json", {"wh": 5000, "m": 5000.0, "c": 5030})
    ec = counter(store, FakeMeter(5061.0))  # a Modbus register counted on past the reserve
    assert ec.total_wh == 5030
    ec.update(0)
    assert ec.total_wh == 5061


def test_clean_shutdown_resumes_at_the_exact_total(tmp_path):
    store = Store(str(tmp_path))
    meter = FakeMeter(0.0)
    ec = counter(store, meter)
    clock = [0]
    charge(ec, meter, clock, 30, 11000)
    exact = ec.total_wh
    ec.flush(final=True)
    ec2 = counter(store, FakeMeter(0.0))
    ec2.update(clock[0] + 1000)
    assert ec2.total_wh == exact


def test_crossing_the_reserved_ceiling_writes_before_the_total_is_shown(tmp_path):
    store = Store(str(tmp_path))
    meter = FakeMeter(0.0)
    ec = counter(store, meter)
    ec.update(0)  # first reading: written with a ceiling of 10 Wh at no power
    meter.energy_wh = 25.0  # power jumped: more than the reserve within one second
    ec.update(1000)
    assert ec.total_wh == 25
    obj = store.read_json("energy.json")[0]
    assert obj["c"] >= 25


def test_each_write_is_dated_when_the_clock_is_known_and_read_back_at_boot(tmp_path):
    store = Store(str(tmp_path))
    meter = FakeMeter(0.0)
    wall = [None]
    ec = counter(store, meter, wall=lambda: wall[0])
    ec.update(0)
    assert "t" not in store.read_json("energy.json")[0]  # no clock yet: undated
    wall[0] = 1_800_000_000
    meter.energy_wh = 50.0
    ec.update(1000)
    assert store.read_json("energy.json")[0]["t"] == 1_800_000_000
    assert counter(store, FakeMeter(0.0)).saved_time == 1_800_000_000


def test_flush_takes_the_meters_latest_reading_so_meter_stop_is_current(tmp_path):
    store = Store(str(tmp_path))
    meter = FakeMeter(1000.0)
    ec = counter(store, meter)
    ec.update(0)
    meter.energy_wh = 1003.4  # counted since the last periodic update
    ec.flush()
    assert ec.total_wh == 1003
    assert store.read_json("energy.json")[0]["wh"] == 1003
    meter.energy_wh = 1004.0
    ec.update(1000)
    assert ec.total_wh == 1004  # the fraction carried on


def test_flush_ignores_a_failed_meter(tmp_path):
    meter = FakeMeter(1000.0)
    ec = counter(Store(str(tmp_path)), meter)
    ec.update(0)
    meter.ok = False
    meter.energy_wh = 5.0
    ec.flush()
    assert ec.total_wh == 1000 and ec.resets == 0
