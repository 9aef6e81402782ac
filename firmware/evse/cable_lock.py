"""Cable lock actuator with optional feedback: lock, unlock, failure detection.

The actuator output is a level (1 = locked); a board with a pulsed motor lock
turns the level into pulses in its driver. Without feedback the command is
taken as done. `status` uses the go-e `cus` values.
"""
from firmware.compat import ticks_diff
from firmware.evse.codes import Cus, Err


class CableLock:
    def __init__(self, actuator, feedback=None, timeout_ms=1500):
        self._actuator = actuator
        self._feedback = feedback
        self.timeout_ms = timeout_ms
        self.locked_cmd = False
        self.status = Cus.UNKNOWN
        self.failure = 0  # Err.LOCK_STUCK_OPEN / LOCK_STUCK_LOCKED while the lock disagrees
        self._mismatch = False
        self._since = 0
        actuator.value(0)

    def command(self, now, lock):
        if lock != self.locked_cmd:
            self.locked_cmd = lock
            self._actuator.value(1 if lock else 0)
            # A new command gets its full travel time before it can fail.
            self._mismatch = True
            self._since = now

    def is_locked(self):
        """Locked and confirmed now (by the feedback when there is one)."""
        return self.status == Cus.LOCKED and not self._mismatch

    def update(self, now):
        fb = self._feedback
        actual = self.locked_cmd if fb is None else (fb.value() != 0)
        if actual == self.locked_cmd:
            self._mismatch = False
            self.failure = 0
            self.status = Cus.LOCKED if actual else Cus.UNLOCKED
            return
        if not self._mismatch:
            self._mismatch = True
            self._since = now
        if ticks_diff(now, self._since) < self.timeout_ms:
            return  # still moving: keep reporting the last confirmed state
        if self.locked_cmd:
            self.status = Cus.LOCK_FAILED
            self.failure = Err.LOCK_STUCK_OPEN
        else:
            self.status = Cus.UNLOCK_FAILED
            self.failure = Err.LOCK_STUCK_LOCKED
