"""The host simulation board: the evse drivers over a simulated world.

Runs unchanged on CPython and MicroPython. The firmware drives the outputs
(PWM, contactor, phase relay, lock, LED) into the world; the pilot ADC reads the
level the virtual EV's state implies, with noise, so the real pilot state
machine runs. /sim/status and /sim/set reach the world through sim_status()
and sim_set(); in /sim/status "pilot" is the state the firmware detected and
"ev" the state the virtual EV asks for (they differ while the pilot debounces).
"""
from firmware.compat import sleep_ms, ticks_ms
from firmware.evse.drivers import Drivers

from boards.host.world import EV_STATES, World

PHYSICS_MS = 100


class SimPWM:
    def __init__(self, world):
        self._w = world

    def freq(self, hz=None):
        if hz is None:
            return self._w.freq
        self._w.freq = hz

    def duty_u16(self, v=None):
        if v is None:
            return self._w.duty_u16
        self._w.duty_u16 = v


class SimPilotSampler:
    def __init__(self, world):
        self._w = world

    def read(self):
        return self._w.pilot_mv()


class SimOutput:
    """An output pin that writes one attribute of the world."""

    def __init__(self, world, name):
        self._w = world
        self._name = name

    def value(self, v=None):
        if v is None:
            return getattr(self._w, self._name)
        setattr(self._w, self._name, 1 if v else 0)


class SimContactorFeedback:
    def __init__(self, world):
        self._w = world

    def value(self):
        return 1 if self._w.contactor_conducts() else 0


class SimLockFeedback:
    def __init__(self, world):
        self._w = world

    def value(self):
        return self._w.lock


class SimRcm:
    """The residual current monitor's fault output; setting rcd fires its interrupt."""

    def __init__(self, world):
        self._w = world
        self.handler = None

    def value(self):
        return 1 if self._w.rcd else 0

    def irq(self, handler=None, trigger=None):
        self.handler = handler

    def fire(self):
        if self.handler is not None:
            self.handler(self)


class SimTemperature:
    def __init__(self, world):
        self._w = world

    def read_c(self):
        return self._w.temperature


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class HostBoard:
    model = "OpenWallbox-Sim"
    serial = "SIM-0001"

    def __init__(self, state_dir=None, seed=1):
        self.state_dir = state_dir
        self.world = w = World(seed)
        self.rcm = SimRcm(w)
        self.drivers = Drivers(
            pilot_pwm=SimPWM(w),
            pilot_adc=SimPilotSampler(w),
            contactor=SimOutput(w, "contactor"),
            contactor_feedback=SimContactorFeedback(w),
            phase_relay=SimOutput(w, "phase_relay"),
            rcm=self.rcm,
            lock=SimOutput(w, "lock"),
            lock_feedback=SimLockFeedback(w),
            led=SimOutput(w, "led"),
            temperature=SimTemperature(w),
            meter=w.meter,
        )

    def step(self, now):
        """Advance the physics to now (ticks_ms); tests call this with a fake clock."""
        self.world.step(now)

    async def run(self):
        while True:
            self.world.step(ticks_ms())
            await sleep_ms(PHYSICS_MS)

    def take_rfid(self):
        """The card presented at the reader, once."""
        uid = self.world.rfid
        self.world.rfid = None
        return uid

    def sim_status(self):
        w = self.world
        m = w.meter
        c = self.drivers.controller
        return {
            # What the firmware detected on the pilot (None before a controller
            # runs); "ev" is the state the virtual EV asks for.
            "pilot": c.pilot_state if c is not None else None,
            "duty": round(w.duty_permille() / 10, 1),
            "offered_amps": w.offered_amps(),
            "contactor": w.contactor_conducts(),
            "phases": w.phases_connected(),
            "phases_drawing": w.phases_drawing,
            "energy_wh": round(m.energy_wh, 3),
            "power_w": round(m.power_w, 1),
            "ev": w.ev,
            "ev_max_amps": w.ev_max_amps,
            "ev_phases": w.ev_phases,
            "rcd": w.rcd,
            "weld": w.weld,
            "voltage": w.voltage,
            "lock": bool(w.lock),
            "diode": w.diode,
            "temperature": w.temperature,
            # Longest gap between two control ticks since boot or since
            # /sim/set?tick_gap_reset=true (the tick is 20 ms).
            "tick_gap_max_ms": c.gap_max_ms if c is not None else None,
        }

    def sim_set(self, key, value):
        """Set one property of the virtual world; None, or an error message."""
        w = self.world
        if key == "ev":
            if not isinstance(value, str) or len(value) != 1 or value not in EV_STATES:
                return "ev: value must be one of A, B, C, D, E, F"
            w.ev = value
        elif key == "ev_max_amps":
            if not _number(value) or not 0 <= value <= 80:
                return "ev_max_amps: value must be a number 0..80"
            w.ev_max_amps = value
        elif key == "ev_phases":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3:
                return "ev_phases: value must be 1, 2 or 3"
            w.ev_phases = value
        elif key == "rfid":
            if not isinstance(value, str) or not value or len(value) > 20:
                return "rfid: value must be a card uid string (1..20 characters)"
            w.rfid = value
        elif key in ("rcd", "weld", "diode"):
            if not isinstance(value, bool):
                return "%s: value must be true or false" % key
            setattr(w, key, value)
            if key == "rcd" and value:
                self.rcm.fire()
        elif key == "voltage":
            if not _number(value) or not 0 <= value <= 300:
                return "voltage: value must be a number 0..300"
            w.voltage = value
        elif key == "temperature":
            if not _number(value) or not -40 <= value <= 150:
                return "temperature: value must be a number -40..150"
            w.temperature = value
        elif key == "tick_gap_reset":
            c = self.drivers.controller
            if value is not True or c is None:
                return "tick_gap_reset: only true, once the charger runs"
            c.gap_max_ms = 0
        else:
            return "%s: unknown sim key" % key
        return None
