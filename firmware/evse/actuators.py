"""Outputs with an optional feedback contact, each told apart from a stuck one.

`Contactor`: the main contactor, a relay output and an optional feedback (mirror)
contact. The feedback tells a welded contactor (closed although commanded open) from a
missing one (open although commanded closed). Both only count after the contactor had
time to move.

`CableLock`: the cable lock actuator with optional feedback: lock, unlock, failure
detection. The actuator output is a level (1 = locked); a board with a pulsed motor
lock turns the level into pulses in its driver. Without feedback the command is taken
as done. `status` uses the go-e `cus` values.

One module for both: each is a small class, and a module of its own costs RAM.
"""
from firmware.compat import ticks_diff
from firmware.evse.codes import Cus, Err


class Contactor:
    def __init__(self, relay, feedback=None, settle_ms=300):
        self._relay = relay
        self._feedback = feedback
        self.settle_ms = settle_ms
        self.closed = False  # commanded state
        # A disagreement is timed from its start; a new command restarts it.
        self._mismatch = False
        self._mismatch_since = 0
        relay.value(0)

    def close(self):
        if not self.closed:
            self.closed = True
            self._mismatch = False
            self._relay.value(1)

    def open(self):
        # Written every time: a glitch or a direct write from the RCM ISR must
        # never leave the output in a state the controller did not ask for.
        self._relay.value(0)
        if self.closed:
            self.closed = False
            self._mismatch = False

    def feedback_closed(self):
        fb = self._feedback
        if fb is None:
            return self.closed
        return bool(fb.value())

    def check(self, now):
        """Err.CONTACTOR_STUCK / CONTACTOR_MISS once the feedback disagrees past the settle time, else 0."""
        fb = self._feedback
        if fb is None:
            return 0
        actual = fb.value()
        if (actual != 0) == self.closed:
            self._mismatch = False
            return 0
        if not self._mismatch:
            self._mismatch = True
            self._mismatch_since = now
        if ticks_diff(now, self._mismatch_since) < self.settle_ms:
            return 0
        return Err.CONTACTOR_MISS if self.closed else Err.CONTACTOR_STUCK


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
