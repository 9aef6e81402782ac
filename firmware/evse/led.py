"""Status LED: one output, a blink pattern per connector status.

Patterns are (on_ms, period_ms): steady on when available, 1 Hz while charging,
a short flash every 2 s while waiting (preparing, suspended, finishing),
4 Hz on a fault, off when unavailable.
"""
from firmware.evse import codes

_STEADY = (1, 1)
_OFF = (0, 1)
_CHARGING = (500, 1000)
_WAITING = (100, 2000)
_FAULT = (125, 250)


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

    def show(self, status):
        self._pattern = pattern_for(status)

    def update(self, now):
        on_ms, period = self._pattern
        on = 1 if now % period < on_ms else 0
        if on != self._on:
            self._on = on
            self._pin.value(on)
