"""IEC 61851-1 control pilot: the duty cycle <-> current table, and the pilot
state machine that turns noisy ADC levels into states A..F and spots a missing
EV diode.

Currents are integer deci-amps and duty cycles integer per mille, so nothing
here touches floats (the control loop runs these every tick).
"""
from firmware.compat import const
from firmware.evse.codes import PILOT_A, PILOT_B, PILOT_C, PILOT_D, PILOT_F

PWM_FREQ = const(1000)
DUTY_OFF = const(1000)  # steady +12 V: no charging offered (state x1)
MIN_DA = const(60)  # 6 A: the lowest current the pilot can offer
MAX_DA = const(800)  # 80 A: the highest


def amps_to_duty(deci_amps):
    """Duty (per mille) offering deci_amps; DUTY_OFF below 6 A.

    IEC 61851-1 table A.8: 6..51 A -> duty % = A / 0.6; 51..80 A -> duty % = A / 2.5 + 64.
    Rounds to the nearest per mille: the error (under 0.05 A) is far inside the
    duty tolerance the standard allows.
    """
    if deci_amps < MIN_DA:
        return DUTY_OFF
    if deci_amps > MAX_DA:
        deci_amps = MAX_DA
    if deci_amps <= 510:
        return (deci_amps * 10 + 3) // 6
    return (deci_amps * 4 + 5) // 10 + 640


def duty_to_amps(duty):
    """Deci-amps an EV reads from a duty (per mille); 0 when no charging is allowed.

    IEC 61851-1 table A.7: 8..10 % -> 6 A, 10..85 % -> % * 0.6, 85..96 % -> (% - 64) * 2.5,
    96..97 % -> 80 A; below 8 % (3..7 % is digital communication) or above 97 %: none.
    """
    if duty < 80 or duty > 970:
        return 0
    if duty < 100:
        return MIN_DA
    if duty <= 850:
        return (duty * 6 + 5) // 10
    if duty <= 960:
        return ((duty - 640) * 25 + 5) // 10
    return MAX_DA


def duty_to_u16(duty):
    return duty * 65535 // 1000


# Lower edge (mV, high level) of states A..E: midpoints between the nominal
# 12, 9, 6, 3, 0 and -12 V levels. Below the last one is F.
_EDGES = (10500, 7500, 4500, 1500, -6000)
# During PWM the low level must reach -12 V through the EV's diode; without it
# the EV's resistor pulls it to about -9 V (B) or -6 V (C).
_DIODE_LOW_MAX_MV = const(-10000)


class PilotStateMachine:
    """Debounced pilot state from (high_mv, low_mv) sample batches.

    Hysteresis widens the band of the current state so a level sitting on an
    edge does not flip; a new state must be seen `debounce` batches in a row.
    """

    def __init__(self, debounce=2, hysteresis_mv=400):
        self.debounce = debounce
        self.hysteresis_mv = hysteresis_mv
        self.state = PILOT_A
        self.diode_fault = False
        # The last sample was taken under PWM, in a steady B..D, and showed the diode.
        self.pwm_ok = False
        self._cand = PILOT_A
        self._count = 0
        self._diode_count = 0

    def classify(self, high_mv):
        """State the level alone implies, with hysteresis around the current state."""
        cur = self.state
        h = self.hysteresis_mv
        i = 0
        while i < 5:
            edge = _EDGES[i]
            # Edge i separates state i (above) from state i + 1 (below).
            if cur == i:
                edge -= h
            elif cur == i + 1:
                edge += h
            if high_mv >= edge:
                return i
            i += 1
        return PILOT_F

    def update(self, high_mv, low_mv, pwm_on):
        """Feed one sample batch; returns the debounced state.

        pwm_on: the EVSE is oscillating, so the low level must show the diode.
        low_mv may be None when the sampler could not see the low phase.
        """
        raw = self.classify(high_mv)
        if raw == self.state:
            self._count = 0
        elif self.state == PILOT_C or self.state == PILOT_D:
            # Fail-safe: leaving C/D (the contactor may be closed) counts at the first
            # sample, so the contactor opens in that same tick; only entering C is debounced.
            self.state = raw
            self._cand = raw
            self._count = 0
        elif raw == self._cand:
            self._count += 1
            if self._count >= self.debounce:
                self.state = raw
                self._count = 0
        else:
            self._cand = raw
            self._count = 1
            if self.debounce <= 1:
                self.state = raw
                self._count = 0
        st = self.state
        ok = False
        if pwm_on and PILOT_B <= st <= PILOT_D and raw == st:
            # low_mv None: the sampler could not catch the low phase (very high duty).
            if low_mv is not None and low_mv > _DIODE_LOW_MAX_MV:
                self._diode_count += 1
                if self._diode_count >= self.debounce:
                    self.diode_fault = True
            else:
                self._diode_count = 0
                ok = True
        else:
            self._diode_count = 0
        self.pwm_ok = ok
        if st == PILOT_A:
            # Unplugging ends a diode fault: the next EV gets a fresh check.
            self.diode_fault = False
        return st


# Nominal levels (mV) a pilot in each state shows while the EVSE is at +12 V:
# used by simulations and tests.
LEVEL_MV = (12000, 9000, 6000, 3000, 0, -12000)
