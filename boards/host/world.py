"""Physics of the simulated charger: the virtual EV on the pilot line, the
hardware outputs the firmware drives, and a virtual meter integrating the power.

The EV follows the pilot like a real one: in state C (or D) it draws
min(offered, ev_max_amps) on ev_phases phases (limited to the phases the phase
relay connects), and nothing when the PWM offer is withdrawn or the contactor
is open. A welded contactor conducts whatever it is told. Time comes in as
ticks_ms values, so tests step the world with a fake clock.
"""
from firmware.compat import ticks_diff
from firmware.evse.meter import Meter
from firmware.evse.pilot import LEVEL_MV, MIN_DA, duty_to_amps

EV_STATES = "ABCDEF"
NOISE_MV = 200  # peak noise on each pilot sample


class World:
    def __init__(self, seed=1):
        # The virtual EV and the grid, set through /sim/set.
        self.ev = "A"
        self.ev_max_amps = 16
        self.ev_phases = 3
        self.rcd = False
        self.weld = False
        self.voltage = 230.0
        self.diode = True
        self.temperature = 25.0
        self.rfid = None
        # Hardware outputs, written by the board's drivers.
        self.duty_u16 = 65535
        self.freq = 0
        self.contactor = 0
        self.phase_relay = 1
        self.lock = 0
        self.led = 0
        self.meter = VirtualMeter(self)
        self.amps = 0.0  # what the EV draws per phase now
        self.phases_drawing = 0
        self._last = None
        self._seed = seed & 0x7FFFFFFF or 1

    # ---- what the hardware does ----

    def contactor_conducts(self):
        return bool(self.contactor) or self.weld

    def phases_connected(self):
        return 3 if self.phase_relay else 1

    def duty_permille(self):
        # Exact inverse of duty_to_u16 (which rounds down).
        return (self.duty_u16 * 1000 + 65534) // 65535

    def pwm_oscillating(self):
        return 0 < self.duty_u16 < 65535

    def offered_amps(self):
        if not self.pwm_oscillating():
            return 0
        da = duty_to_amps(self.duty_permille())
        return da // 10 if da % 10 == 0 else da / 10

    def _noise(self):
        self._seed = (self._seed * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._seed >> 8) % (2 * NOISE_MV + 1) - NOISE_MV

    def pilot_mv(self):
        """(high_mv, low_mv) one ADC sample batch would show."""
        i = EV_STATES.index(self.ev)
        if self.duty_u16 == 0:
            return -12000 + self._noise(), -12000 + self._noise()  # EVSE holds -12 V
        high = LEVEL_MV[i]
        if self.pwm_oscillating():
            if i == 4:
                low = 0  # CP shorted to PE: nothing oscillates
            elif i == 0 or i == 5 or self.diode:
                low = -12000
            else:
                low = -LEVEL_MV[i]  # no diode: the EV's resistor pulls the low level up too
        else:
            low = high
        return high + self._noise(), low + self._noise()

    # ---- physics ----

    def draw(self):
        """Per-phase amps and phases the EV draws right now."""
        if self.ev not in ("C", "D") or not self.contactor_conducts():
            return 0.0, 0
        offered = self.offered_amps()
        if offered * 10 < MIN_DA:
            return 0.0, 0
        amps = offered if offered < self.ev_max_amps else self.ev_max_amps
        if amps <= 0:
            return 0.0, 0
        ph = self.ev_phases if self.ev_phases < self.phases_connected() else self.phases_connected()
        return float(amps), ph

    def step(self, now):
        """Integrate energy up to now at the power that flowed, then apply the current outputs."""
        m = self.meter
        if self._last is not None:
            dt = ticks_diff(now, self._last)
            if dt > 0:
                m.energy_wh += m.power_w * dt / 3600000.0
        self._last = now
        amps, ph = self.draw()
        self.amps = amps
        self.phases_drawing = ph
        v = float(self.voltage)
        total = 0.0
        for i in range(3):
            a = amps if i < ph else 0.0
            m.voltage[i] = v
            m.current[i] = a
            m.power[i] = v * a
            m.pf[i] = 1.0 if a else 0.0
            total += v * a
        m.power_w = total
        m.frequency = 50.0
        m.ok = True
        m.error = None


class VirtualMeter(Meter):
    """The meter interface over the world: reading it steps the physics."""

    def __init__(self, world):
        Meter.__init__(self)
        self._world = world
        self.ok = True

    def update(self, now_ms):
        self._world.step(now_ms)
