import pytest

from firmware.evse.s0 import S0Meter
from tests_host.fakes_meter import FakeClock, FakePin

# Start a few seconds before ticks_us wraps (2**30 us) so every test crosses it.
NEAR_WRAP_US = (1 << 30) - 3_000_000


def make(**kw):
    clock = FakeClock(NEAR_WRAP_US)
    pin = FakePin()
    meter = S0Meter(pin, clock_us=clock.us, **kw)
    return meter, pin, clock


def pulses(pin, clock, n, every_ms):
    for _ in range(n):
        clock.advance(ms=every_ms)
        pin.pulse()


def test_registers_falling_edge_irq_with_cached_handler():
    meter, pin, _ = make()
    assert pin.trigger == FakePin.IRQ_FALLING
    assert pin.handler is meter._isr


def test_active_high_output_uses_rising_edge():
    pin = FakePin(level=0)
    S0Meter(pin, active_low=False)
    assert pin.trigger == FakePin.IRQ_RISING


def test_energy_is_one_wh_per_pulse_at_1000_impulses_per_kwh():
    meter, pin, clock = make()
    pulses(pin, clock, 5, 100)
    meter.update(clock.ms())
    assert meter.energy_wh == pytest.approx(5.0)
    assert meter.pulses == 5


def test_energy_follows_impulses_per_kwh():
    meter, pin, clock = make(impulses_per_kwh=800)
    pulses(pin, clock, 8, 100)
    meter.update(clock.ms())
    assert meter.energy_wh == pytest.approx(10.0)


def test_power_comes_from_the_interval_between_pulses():
    meter, pin, clock = make()
    pulses(pin, clock, 3, 360)  # 1 Wh every 0.36 s = 10 kW
    meter.update(clock.ms())
    assert meter.power_w == pytest.approx(10000.0)


def test_power_is_zero_after_a_single_pulse():
    meter, pin, clock = make()
    pulses(pin, clock, 1, 100)
    meter.update(clock.ms())
    assert meter.energy_wh == pytest.approx(1.0)
    assert meter.power_w == 0.0


def test_power_decays_when_the_next_pulse_is_overdue():
    meter, pin, clock = make()
    pulses(pin, clock, 2, 360)
    clock.advance(ms=720)  # twice the last interval without a pulse
    meter.update(clock.ms())
    assert meter.power_w == pytest.approx(5000.0)


def test_power_drops_to_zero_after_the_timeout():
    meter, pin, clock = make(timeout_ms=60000)
    pulses(pin, clock, 3, 360)
    clock.advance(ms=60001)
    meter.update(clock.ms())
    assert meter.power_w == 0.0
    assert meter.energy_wh == pytest.approx(3.0)


def test_first_pulse_after_idle_gives_no_power_until_the_second():
    meter, pin, clock = make(timeout_ms=60000)
    pulses(pin, clock, 2, 360)
    meter.update(clock.ms())
    clock.advance(ms=400000)
    meter.update(clock.ms())  # timed out
    pulses(pin, clock, 1, 10)
    meter.update(clock.ms())
    assert meter.power_w == 0.0
    pulses(pin, clock, 1, 720)
    meter.update(clock.ms())
    assert meter.power_w == pytest.approx(5000.0)


def test_two_pulses_between_updates_after_idle_give_power():
    meter, pin, clock = make(timeout_ms=60000)
    pulses(pin, clock, 1, 10)
    meter.update(clock.ms())
    clock.advance(ms=100000)
    meter.update(clock.ms())
    pulses(pin, clock, 2, 180)
    meter.update(clock.ms())
    assert meter.power_w == pytest.approx(20000.0)


def test_edges_within_30ms_of_a_pulse_are_ignored():
    meter, pin, clock = make()
    pin.pulse()
    for _ in range(5):  # ringing right after the edge
        clock.advance(ms=5)
        pin.pulse()
    meter.update(clock.ms())
    assert meter.pulses == 1


def test_a_pulse_30ms_after_the_last_one_counts():
    meter, pin, clock = make()
    pin.pulse()
    clock.advance(ms=30)
    pin.pulse()
    meter.update(clock.ms())
    assert meter.pulses == 2


def test_edge_that_finds_the_line_released_is_ignored():
    meter, pin, clock = make()
    pin.pulse()
    clock.advance(ms=90)  # trailing-edge ringing of a 90 ms pulse
    pin.edge(level_seen=1)
    meter.update(clock.ms())
    assert meter.pulses == 1


def test_power_is_right_across_the_ticks_us_wrap():
    clock = FakeClock((1 << 30) - 200_000)
    pin = FakePin()
    meter = S0Meter(pin, clock_us=clock.us)
    pulses(pin, clock, 2, 180)  # the second stamp is past the wrap
    assert clock.us() < 1_000_000
    meter.update(clock.ms())
    assert meter.power_w == pytest.approx(20000.0)


def test_current_is_estimated_from_power_nominal_voltage_and_phases():
    meter, pin, clock = make(voltage=230.0, phases=3)
    pulses(pin, clock, 2, 1800)  # 1 Wh every 1.8 s = 2 kW
    meter.update(clock.ms())
    assert meter.power_w == pytest.approx(2000.0)
    assert meter.voltage == [230.0, 230.0, 230.0]
    # Whole amps and watts: the tick does integer arithmetic only.
    assert meter.current == [3, 3, 3]
    assert meter.power == pytest.approx([2000 / 3] * 3, abs=1)
    assert meter.pf == [1.0, 1.0, 1.0]
    assert meter.frequency is None


def test_single_phase_puts_everything_on_l1():
    meter, pin, clock = make(voltage=230.0, phases=1)
    pulses(pin, clock, 2, 1565)  # ~2.3 kW
    meter.update(clock.ms())
    assert meter.current[0] == pytest.approx(meter.power_w / 230.0, abs=0.5)
    assert meter.current[1:] == [0.0, 0.0]
    assert meter.voltage == [230.0, 0.0, 0.0]


def test_phase_switch_moves_the_estimate_at_the_next_update():
    meter, pin, clock = make(phases=3)
    pulses(pin, clock, 2, 360)
    meter.update(clock.ms())
    meter.phases = 1
    meter.update(clock.ms())
    assert meter.power == pytest.approx([10000.0, 0.0, 0.0])


def test_meter_is_always_ok():
    meter, _, clock = make()
    meter.update(clock.ms())
    assert meter.ok is True
    assert meter.error is None


def test_lists_are_updated_in_place():
    meter, pin, clock = make()
    current = meter.current
    pulses(pin, clock, 2, 360)
    meter.update(clock.ms())
    assert meter.current is current


@pytest.mark.parametrize("ppk", [1, 100, 800, 1000, 10000])
def test_integer_power_and_energy_match_the_exact_values(ppk):
    meter, pin, clock = make(impulses_per_kwh=ppk, timeout_ms=500000)
    # Some kW, never below the pulse spacing nor past the timeout.
    every_ms = min(3600 * 1000 // ppk // 7 + 31, 400000)
    pulses(pin, clock, 3, every_ms)
    meter.update(clock.ms())
    exact_w = 1000 / ppk * 3600 / (every_ms / 1000)
    assert meter.power_w == pytest.approx(exact_w, rel=0.002, abs=1)
    assert meter.energy_wh == int(3 * 1000 / ppk + 1e-9)
    assert isinstance(meter.power_w, int) and isinstance(meter.energy_wh, int)


def test_energy_stays_exact_past_a_megawatt_hour():
    meter, _, clock = make(impulses_per_kwh=800)
    meter._a[0] = 1_000_003  # pulses since boot
    meter.update(clock.ms())
    assert meter.energy_wh == 1_250_003
