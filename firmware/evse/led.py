"""Status LED: one output, a blink pattern per connector status.

Patterns are (on_ms, period_ms): steady on when available, 1 Hz while charging,
a short flash every 2 s while waiting (preparing, suspended, finishing),
4 Hz on a fault, off when unavailable.

OCPP BlinkRepeat and LightIntensity (set_blink_repeat, set_intensity): on a
fault the LED gives `blink_repeat` 4 Hz flashes, then stays dark for a second,
so the count is visible (0 keeps flashing without a pause). Intensity is the
PWM duty when the LED output is a PWM (has duty_u16); a plain pin can only be
on or off, so there intensity 0 keeps the LED dark and anything else lights it.
"""
from firmware.evse import codes

_STEADY = (1, 1)
_OFF = (0, 1)
_CHARGING = (500, 1000)
_WAITING = (100, 2000)
_FAULT = (125, 250)
_FAULT_PAUSE_MS = 1000


def pattern_for(status):
    if status == codes.AVAILABLE:
        return _STEADY
    if status == codes.CHARGING:
        return _CHARGING
    if status == codes.FAULTED:
        return _FAULT
    if status == codes.UNAVAILABLE:
        return _OFF
    return _WAITING


class StatusLed:
    def __init__(self, pin):
        self._pin = pin
        self._on = -1
        self._pattern = _OFF
        self._pwm = hasattr(pin, "duty_u16")
        self._level = 65535  # duty of "on" for a PWM output
        self._repeat = 0  # flashes per group on a fault; 0: no pause

    def show(self, status):
        self._pattern = pattern_for(status)

    def set_intensity(self, percent):
        """LightIntensity 0..100 %."""
        self._level = 65535 * percent // 100
        self._on = -1  # write the new level at the next update

    def set_blink_repeat(self, n):
        self._repeat = n

    def update(self, now):
        on_ms, period = self._pattern
        if self._pattern is _FAULT and self._repeat > 0:
            burst = self._repeat * period
            pos = now % (burst + _FAULT_PAUSE_MS)
            on = 1 if pos < burst and pos % period < on_ms else 0
        else:
            on = 1 if now % period < on_ms else 0
        if self._level == 0:
            on = 0
        if on != self._on:
            self._on = on
            if self._pwm:
                self._pin.duty_u16(self._level if on else 0)
            else:
                self._pin.value(on)
