"""The ESP32-DevKitC board module on a fake machine module (both runtimes)."""
import re
import sys

import pytest

from tests_host.fakes import FakeMachine
from tests_host.mpy import ROOT, run_mp


@pytest.fixture
def board_mod(monkeypatch):
    monkeypatch.setitem(sys.modules, "machine", FakeMachine)
    sys.modules.pop("boards.esp32_devkitc.board", None)
    import boards.esp32_devkitc.board as mod
    yield mod
    sys.modules.pop("boards.esp32_devkitc.board", None)


def raw_for_mv(mv):
    from boards.esp32_devkitc import pins
    uv = pins.CP_ZERO_UV + mv * pins.CP_UV_PER_V // 1000
    return uv * 65535 // pins.ADC_FULL_UV


def test_board_builds_every_driver_from_the_pin_map(board_mod):
    from boards.esp32_devkitc import pins
    b = board_mod.Esp32Board()
    d = b.drivers
    assert d.contactor.gpio == pins.CONTACTOR and d.contactor.level == 0
    assert d.pilot_pwm.freq() == 1000 and d.pilot_pwm.duty_u16() == 65535
    assert d.phase_relay.gpio == pins.PHASE_RELAY
    assert d.lock.gpio == pins.LOCK and d.led.gpio == pins.LED
    assert b.serial == "240ac4010203"


def test_pilot_sampler_reports_high_and_low_levels_in_mv(board_mod):
    b = board_mod.Esp32Board()
    s = b.drivers.pilot_adc
    s.adc.raws = [raw_for_mv(6000)] * 40 + [raw_for_mv(-12000)] * 24
    b.pwm.duty_u16(17497)  # 26.7 %
    high, low = s.read()
    assert abs(high - 6000) < 60 and abs(low + 12000) < 60


def test_pilot_sampler_gives_no_low_level_when_duty_too_high(board_mod):
    b = board_mod.Esp32Board()
    s = b.drivers.pilot_adc
    s.adc.raws = [raw_for_mv(6000)]
    b.pwm.duty_u16(62914)  # 96 %
    assert s.read()[1] is None


def test_pilot_level_arithmetic_stays_in_small_ints_for_every_raw_value(board_mod):
    # Small ints on the ESP32 are 31-bit: anything past 2**30 would be a heap object.
    from boards.esp32_devkitc import pins
    s = board_mod.Esp32Board().drivers.pilot_adc
    a, b, shift = s._a, s._b, s._shift
    assert 0 < a < 1 << 30 and abs(b) < 1 << 30 and shift < 30
    for raw in range(65536):  # every value read_u16 can return (12-bit readings scaled up)
        prod = raw * a
        assert prod < 1 << 30 and abs(prod - b) < 1 << 30
        exact = (raw * pins.ADC_FULL_UV / 65535 - pins.CP_ZERO_UV) * 1000 / pins.CP_UV_PER_V
        assert abs(s._mv(raw) - exact) <= 1.5, raw


def test_rcm_and_s0_interrupts_are_hard(board_mod):
    from firmware.evse.controller import ChargeController
    from firmware.evse.s0 import S0Meter
    b = board_mod.Esp32Board()
    b.drivers.rcm._pin.level = 1
    ChargeController(b.drivers)
    assert b.drivers.rcm._pin.hard is True
    s0 = b.s0_pin()
    S0Meter(s0)
    assert s0._pin.hard is True and s0._pin.trigger == FakeMachine.Pin.IRQ_FALLING


def test_s0_pulse_through_the_board_pin_counts(board_mod):
    from firmware.evse.s0 import S0Meter
    b = board_mod.Esp32Board()
    pin = b.s0_pin()
    m = S0Meter(pin)
    pin._pin.level = 0  # active: the open collector pulls the line low
    pin._pin.fire()
    m.update(0)
    assert m.pulses == 1


def test_active_low_rcm_input_reads_active_as_one(board_mod):
    b = board_mod.Esp32Board()
    rcm = b.drivers.rcm
    rcm._pin.level = 1
    assert rcm.value() == 0
    rcm._pin.level = 0
    assert rcm.value() == 1


def test_controller_on_board_gets_rcm_interrupt_through_active_low(board_mod):
    from firmware.evse.controller import ChargeController
    b = board_mod.Esp32Board()
    b.drivers.rcm._pin.level = 1  # idle
    c = ChargeController(b.drivers)
    b.drivers.contactor.value(1)
    b.drivers.rcm._pin.level = 0
    b.drivers.rcm._pin.fire()
    assert b.drivers.contactor.level == 0 and c._rcm_trip == 1


def test_ntc_reads_25_c_at_balance(board_mod):
    adc = FakeMachine.ADC(None)
    adc.raws = [32768]
    assert board_mod.NtcSensor(adc).read_c() == pytest.approx(25, abs=0.1)
    adc.raws = [0]
    assert board_mod.NtcSensor(adc).read_c() is None


def test_readme_wiring_table_matches_pins():
    from boards.esp32_devkitc import pins
    text = (ROOT / "boards" / "esp32_devkitc" / "README.md").read_text()
    rows = {m.group(1).strip(): int(m.group(2)) for m in re.finditer(r"^\| ([^|]+) \| (\d+)", text, re.M)}
    expect = {"CP PWM": pins.CP_PWM, "CP ADC": pins.CP_ADC, "Contactor": pins.CONTACTOR,
              "Contactor feedback": pins.CONTACTOR_FB, "Phase relay": pins.PHASE_RELAY, "RCM input": pins.RCM,
              "S0 input": pins.S0, "Modbus TX": pins.MODBUS_TX, "Modbus RX": pins.MODBUS_RX,
              "Modbus DE/RE": pins.MODBUS_DE, "Cable lock": pins.LOCK, "Lock feedback": pins.LOCK_FB,
              "Temperature": pins.TEMP_ADC, "Status LED": pins.LED}
    assert rows == expect


@pytest.mark.micropython
def test_board_rcm_isr_chain_allocates_nothing_on_micropython():
    out = run_mp("""
import sys
from tests_host.fakes import FakeMachine
sys.modules["machine"] = FakeMachine
from boards.esp32_devkitc.board import Esp32Board
from firmware.evse.controller import ChargeController
from firmware.compat import heap_lock, heap_unlock
b = Esp32Board()
pin = b.drivers.rcm._pin
pin.level = 1
c = ChargeController(b.drivers)
b.drivers.contactor.value(1)
pin.level = 0
heap_lock()
try:
    pin.fire()
finally:
    heap_unlock()
print(b.drivers.contactor.level, c._rcm_trip)
""")
    assert out.split() == ["0", "1"]


@pytest.mark.micropython
def test_board_s0_isr_chain_allocates_nothing_on_micropython():
    out = run_mp("""
import sys
from tests_host.fakes import FakeMachine
sys.modules["machine"] = FakeMachine
from boards.esp32_devkitc.board import Esp32Board
from firmware.evse.s0 import S0Meter
from firmware.compat import heap_lock, heap_unlock
b = Esp32Board()
pin = b.s0_pin()
m = S0Meter(pin)
raw = pin._pin
raw.level = 0
x = 0
heap_lock()
try:
    raw.fire()
    x = b.drivers.pilot_adc._mv(65535)
finally:
    heap_unlock()
m.update(0)
print(m.pulses, raw.hard)
""")
    assert out.split() == ["1", "True"]
