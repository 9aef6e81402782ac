"""Recording test doubles for the evse drivers, and a rig that runs a
ChargeController on them with a fake clock and a virtual EV.

Importable on both runtimes (the MicroPython tests use them under heap_lock):
recording appends only on a change, so a steady control tick allocates nothing.
"""
from firmware.evse.controller import ChargeController
from firmware.evse.drivers import Drivers
from firmware.evse.pilot import LEVEL_MV, duty_to_amps

STATES = "ABCDEF"


class FakePWM:
    """machine.PWM double: keeps every duty written, in order."""

    def __init__(self, record=True):
        self._duty = 0
        self._freq = 0
        self.duties = [] if record else None

    def freq(self, hz=None):
        if hz is None:
            return self._freq
        self._freq = hz

    def duty_u16(self, v=None):
        if v is None:
            return self._duty
        self._duty = v
        if self.duties is not None:
            self.duties.append(v)


class FakeOutput:
    """machine.Pin output double: counts writes, keeps each change of level."""

    def __init__(self, level=0, record=True):
        self.level = level
        self.writes = 0
        self.changes = [] if record else None

    def value(self, v=None):
        if v is None:
            return self.level
        v = 1 if v else 0
        self.writes += 1
        if v != self.level:
            self.level = v
            if self.changes is not None:
                self.changes.append(v)

    @property
    def toggles(self):
        return len(self.changes)


class FakeInput:
    """machine.Pin input double; irq() keeps the handler, fire() calls it like an interrupt."""

    def __init__(self, level=0):
        self.level = level
        self.handler = None

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0

    def irq(self, handler=None, trigger=None):
        self.handler = handler

    def fire(self):
        if self.handler is not None:
            self.handler(self)


class MirrorInput:
    """Feedback contact that follows an output, unless stuck at a level (welded, jammed)."""

    def __init__(self, output):
        self.output = output
        self.stuck = None

    def value(self):
        if self.stuck is not None:
            return self.stuck
        return self.output.level


class FakePilotSampler:
    """The pilot ADC: read() returns the (high_mv, low_mv) set last."""

    def __init__(self):
        self.sample = (12000, 12000)
        self.reads = 0

    def set_mv(self, high, low):
        self.sample = (high, low)

    def read(self):
        self.reads += 1
        return self.sample


class FakeMeter:
    """The meter interface with values the test sets."""

    def __init__(self):
        self.energy_wh = 0.0
        self.power_w = 0.0
        self.voltage = [230.0, 230.0, 230.0]
        self.current = [0.0, 0.0, 0.0]
        self.power = [0.0, 0.0, 0.0]
        self.pf = [1.0, 1.0, 1.0]
        self.frequency = 50.0
        self.ok = True
        self.error = None
        self.updates = 0

    def update(self, now_ms):
        self.updates += 1


class FakeTemperature:
    def __init__(self, celsius=25.0):
        self.celsius = celsius

    def read_c(self):
        return self.celsius


def pilot_levels(state, pwm_on, diode=True):
    """(high_mv, low_mv) a pilot in state shows; the low level only differs while the PWM runs."""
    i = STATES.index(state)
    high = LEVEL_MV[i]
    if not pwm_on:
        return high, high
    if i == 4:
        return 0, 0
    if i == 0 or i == 5 or diode:
        return high, -12000
    return high, -high


def make_drivers(lock=True, contactor_feedback=True, lock_feedback=True, meter=True,
                 temperature=False, phase_relay=True, led=True, rcm=True, record=True):
    contactor = FakeOutput(record=record)
    lock_out = FakeOutput(record=record) if lock else None
    return Drivers(
        pilot_pwm=FakePWM(record=record),
        pilot_adc=FakePilotSampler(),
        contactor=contactor,
        contactor_feedback=MirrorInput(contactor) if contactor_feedback else None,
        phase_relay=FakeOutput(record=record) if phase_relay else None,
        rcm=FakeInput() if rcm else None,
        lock=lock_out,
        lock_feedback=MirrorInput(lock_out) if (lock and lock_feedback) else None,
        led=FakeOutput(record=record) if led else None,
        temperature=FakeTemperature() if temperature else None,
        meter=FakeMeter() if meter else None,
    )


class Rig:
    """A controller on fakes with a fake clock and a simple EV.

    Each step sets the pilot sample from `ev` (and the PWM), lets the EV draw
    min(offered, ev_amps) on ev_phases while the contactor is closed in C/D
    (unless `draw` forces a current), then ticks at now += ms.
    """

    def __init__(self, config=None, **driver_opts):
        self.d = make_drivers(**driver_opts)
        self.ctrl = ChargeController(self.d, config)
        self.now = 100000
        self.ev = "A"
        self.diode = True
        self.noise = 0
        self.ev_amps = 16.0
        self.ev_phases = 3
        self.draw = None
        self.events = []
        self.ctrl.add_listener(self._on_event)

    def _on_event(self, event, data):
        self.events.append((event, data))

    def _pwm_on(self):
        d = self.d.pilot_pwm.duty_u16()
        return 0 < d < 65535

    def offered_amps(self):
        d = self.d.pilot_pwm.duty_u16()
        if not 0 < d < 65535:
            return 0.0
        return duty_to_amps((d * 1000 + 65534) // 65535) / 10

    def _apply_ev(self):
        high, low = pilot_levels(self.ev, self._pwm_on(), self.diode)
        self.d.pilot_adc.set_mv(high + self.noise, low + self.noise)
        m = self.d.meter
        if m is None:
            return
        if self.draw is not None:
            a = self.draw
            ph = 3
        elif self.ev in ("C", "D") and self.d.contactor.level:
            a = min(self.offered_amps(), self.ev_amps)
            ph = self.ev_phases if self.d.phase_relay is None or self.d.phase_relay.level else 1
        else:
            a = 0.0
            ph = 0
        for i in range(3):
            m.current[i] = float(a) if i < ph else 0.0

    def step(self, n=1, ms=20):
        for _ in range(n):
            self.now += ms
            self._apply_ev()
            self.ctrl.tick(self.now)
        return self.ctrl

    def run_ms(self, ms, step_ms=20):
        return self.step(ms // step_ms, step_ms)

    def plug_and_charge(self, amps=16, ticks=10):
        """EV plugged in C, session authorized, limit set: ends charging."""
        self.ctrl.set_limit("amp", amps)
        self.ctrl.authorize(True)
        self.ev = "C"
        self.step(ticks)
        return self.ctrl

    def event_names(self):
        return [e for e, _ in self.events]


class FakeMachine:
    """Stands in for the machine module (sys.modules["machine"] = FakeMachine) so
    board code runs on the host; each object records what it was set to."""

    class Pin:
        IN = 1
        OUT = 3
        PULL_UP = 1
        PULL_DOWN = 2
        IRQ_FALLING = 1
        IRQ_RISING = 2

        def __init__(self, gpio, mode=-1, pull=-1, value=None):
            self.gpio = gpio
            self.mode = mode
            self.pull = pull
            self.level = value if value is not None else 0
            self.handler = None
            self.trigger = None
            self.hard = None

        def value(self, v=None):
            if v is None:
                return self.level
            self.level = 1 if v else 0

        def irq(self, handler=None, trigger=3, hard=False):
            self.handler = handler
            self.trigger = trigger
            self.hard = hard

        def fire(self):
            self.handler(self)

    class PWM:
        def __init__(self, pin, freq=0, duty_u16=0):
            self.pin = pin
            self._freq = freq
            self._duty = duty_u16

        def freq(self, hz=None):
            if hz is None:
                return self._freq
            self._freq = hz

        def duty_u16(self, v=None):
            if v is None:
                return self._duty
            self._duty = v

    class ADC:
        ATTN_11DB = 3

        def __init__(self, pin, atten=None):
            self.pin = pin
            self.atten = atten
            self.raws = [32768]
            self._i = 0

        def read_u16(self):
            v = self.raws[self._i % len(self.raws)]
            self._i += 1
            return v

    class UART:
        def __init__(self, uart_id, baudrate=9600, tx=None, rx=None):
            self.id = uart_id
            self.baudrate = baudrate
            self.tx = tx
            self.rx = rx

    class WDT:
        def __init__(self, timeout=5000):
            self.timeout = timeout
            self.feeds = 0

        def feed(self):
            self.feeds += 1

    @staticmethod
    def unique_id():
        return b"\x24\x0a\xc4\x01\x02\x03"
