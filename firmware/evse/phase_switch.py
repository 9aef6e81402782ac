"""1-phase / 3-phase switching with a second relay (L2 and L3 behind it).

The relay is only ever switched with the main contactor open. While charging,
the sequence is: the controller withdraws the PWM offer and opens the contactor
once the EV paused (its normal stop); then the relay switches; then a minimum
pause with no offer, so the EV sees a clean new start; then the offer resumes.
"""
from firmware.compat import const, ticks_diff

_IDLE = const(0)
_STOPPING = const(1)  # waiting for the contactor to open
_PAUSE = const(2)  # switched; holding the offer back for pause_ms

_PSM_AUTO = const(0)
_PSM_ONE = const(1)
_PSM_THREE = const(2)


class PhaseSwitch:
    def __init__(self, relay, installed=3, pause_ms=5000):
        self._relay = relay
        self.installed = installed
        self.pause_ms = pause_ms
        self.stage = _IDLE
        self._t0 = 0
        # Relay on = L2/L3 connected. Starts at what the installation has.
        self.active = installed if (relay is None or installed == 1) else 3
        if relay is not None:
            relay.value(1 if self.active == 3 else 0)

    @property
    def can_switch(self):
        return self._relay is not None and self.installed == 3

    def desired(self, psm, requested):
        """Phases wanted: psm forces 1 or 3; auto takes the request (None = no wish; 2 cannot be wired, so 3)."""
        if not self.can_switch:
            return self.active
        if psm == _PSM_ONE:
            return 1
        if psm == _PSM_THREE:
            return 3
        if requested == 1:
            return 1
        return 3

    def update(self, now, desired, contactor_closed, plugged):
        """Advance the sequence; True while the offer must stay withdrawn."""
        if self.stage == _PAUSE:
            if ticks_diff(now, self._t0) < self.pause_ms:
                return True
            self.stage = _IDLE
        if desired == self.active or not self.can_switch:
            self.stage = _IDLE
            return False
        if contactor_closed:
            self.stage = _STOPPING
            return True
        self._relay.value(1 if desired == 3 else 0)
        self.active = desired
        if plugged:
            self.stage = _PAUSE
            self._t0 = now
            return True
        self.stage = _IDLE
        return False
