"""The main contactor: a relay output and an optional feedback (mirror) contact.

The feedback tells a welded contactor (closed although commanded open) from a
missing one (open although commanded closed). Both only count after the
contactor had time to move.
"""
from firmware.compat import ticks_diff
from firmware.evse.codes import Err


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
