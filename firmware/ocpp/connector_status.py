"""Statuses that services hold on a connector over what the charge controller
reports: Unavailable (availability), Reserved (a reservation), Available again
once ConnectionTimeOut passed without authorization. Faulted is never held
over: the controller's faults always show."""
from firmware.evse import codes

RESERVED = "Reserved"  # held by reservations, never by the controller
# Highest first: an Unavailable connector is not Reserved.
_PRIORITY = (codes.UNAVAILABLE, RESERVED, codes.AVAILABLE)


class StatusHolds:
    def __init__(self):
        self._holds = {}  # (owner, connector) -> (status, statuses it replaces or None for any)
        self._listeners = []

    def hold(self, owner, connector, status, over=None):
        """owner holds connector at status; over: the controller statuses it replaces
        (None: every status but Faulted)."""
        v = (status, over)
        if self._holds.get((owner, connector)) != v:
            self._holds[(owner, connector)] = v
            self._changed()

    def release(self, owner, connector):
        if self._holds.pop((owner, connector), None) is not None:
            self._changed()

    def on_change(self, fn):
        """fn() after each change of a hold (the status reporter wakes up)."""
        self._listeners.append(fn)

    def apply(self, connector, status):
        """The status to report for connector when the controller reports status."""
        if status == codes.FAULTED or not self._holds:
            return status
        best = None
        for (_owner, n), (st, over) in self._holds.items():
            if n != connector or (over is not None and status not in over):
                continue
            if best is None or _PRIORITY.index(st) < _PRIORITY.index(best):
                best = st
        return status if best is None else best

    def _changed(self):
        for fn in self._listeners:
            fn()
