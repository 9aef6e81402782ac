"""StatusNotification for connector 0 (the charge point) and connector 1, the
MinimumStatusDuration key and go-e `ocppcs`. When a status is reported and
which: README.md.
"""
import asyncio

from firmware import log
from firmware.clock import format_iso
from firmware.compat import ticks_diff, ticks_ms
from firmware.evse import codes
from firmware.evse.codes import Err
from firmware.ocpp.rpc import CallError, CallTimeout, NotConnected
from firmware.settings import INT, OCPP, PERSIST, RW

# go-e ocppcs: the index of the status in this tuple.
STATUSES = ("Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved",
            "Unavailable", "Faulted")
_POLL_MS = 1000  # error codes (a failed meter) can change without a controller event
_RETRY_MS = 5000  # after a StatusNotification got no answer


def charger_fault(c):
    """A fault of the charge point itself rather than of its connector."""
    f = c.fault
    return f == Err.OVERTEMP or (f == Err.UNKNOWN and c.vendor_error_code == "Internal")


def define_keys(settings):
    settings.define("MinimumStatusDuration", INT, 0, RW | PERSIST | OCPP, 0, 3600)
    settings.status("ocppcs", None)  # bound by StatusReporter


class StatusReporter:
    def __init__(self, settings, clock, session, controller, holds, ticks=ticks_ms):
        """holds: StatusHolds, the statuses other services hold over the controller's."""
        self.controller = controller
        self.settings = settings
        self.clock = clock
        self.session = session
        self.holds = holds
        self._ticks = ticks
        self._wake = asyncio.Event()
        # Per connector: [status, errorCode, vendorErrorCode, since ticks_ms, since epoch s or None]
        self._cur = [None, None]
        self._sent = [None, None]  # (status, errorCode, vendorErrorCode) last reported
        self.sent_count = 0
        settings.bind("ocppcs", self.ocppcs)
        settings.watch("MinimumStatusDuration", self.wake)
        controller.add_listener(self._on_event)
        session.on_online(self._on_online)
        holds.on_change(self.wake)

    # ---- inputs ----

    def wake(self, *_args):
        self._wake.set()

    def _on_event(self, event, _data):
        if event == "status" or event == "fault" or event == "fault_cleared":
            self._wake.set()

    def _on_online(self):
        self._sent = [None, None]
        self._wake.set()

    # ---- the status machine ----

    def state(self, n):
        """(status, errorCode, vendorErrorCode) of connector n now."""
        c = self.controller
        if n == 0:
            if charger_fault(c):
                return codes.FAULTED, c.ocpp_error_code, c.vendor_error_code
            return self.holds.apply(0, codes.AVAILABLE), codes.NO_ERROR, None
        # Held statuses: Unavailable, Reserved, Available after ConnectionTimeOut (OCPP 1.6 errata).
        return self.holds.apply(1, c.ocpp_status), c.ocpp_error_code, c.vendor_error_code

    def observe(self, now):
        """Note the current status of each connector and since when it holds."""
        for n in (0, 1):
            st, ec, vec = self.state(n)
            cur = self._cur[n]
            if cur is None or cur[0] != st or cur[1] != ec or cur[2] != vec:
                self._cur[n] = [st, ec, vec, now, self.clock.now()]

    def due(self, now):
        """(connector, 0) when one has a status to report now, else (None, ms until one
        may be due, or None)."""
        hold = self.settings.get("MinimumStatusDuration") * 1000
        wait = None
        for n in (0, 1):
            cur = self._cur[n]
            if cur is None:
                continue
            sent = self._sent[n]
            if sent is not None and sent[0] == cur[0] and sent[1] == cur[1] and sent[2] == cur[2]:
                continue
            # The first report after coming online goes at once: the CSMS knows nothing yet.
            left = 0 if sent is None or cur[0] == codes.FAULTED else hold - ticks_diff(now, cur[3])
            if left <= 0:
                return n, 0
            if wait is None or left < wait:
                wait = left
        return None, wait

    def payload(self, n):
        cur = self._cur[n]
        p = {"connectorId": n, "errorCode": cur[1], "status": cur[0]}
        if cur[0] == codes.FAULTED:
            p["info"] = "err %d" % self.controller.err  # the go-e error number
        if cur[2]:
            p["vendorErrorCode"] = cur[2][:50]
        t = cur[4] if cur[4] is not None else self.clock.now()
        if t is not None:
            p["timestamp"] = format_iso(t)
        return p

    def trigger(self, connector=None):
        """Send the status of connector now (None: of every connector), as TriggerMessage
        asks; False for a connector that does not exist."""
        if connector is not None and not 0 <= connector <= 1:
            return False
        for n in (0, 1):
            if connector is None or connector == n:
                self._sent[n] = None
        self._wake.set()
        return True

    def ocppcs(self):
        return STATUSES.index(self.state(1)[0])

    # ---- the task ----

    async def _pause(self, ms):
        try:
            await asyncio.wait_for(self._wake.wait(), ms / 1000)
        except asyncio.TimeoutError:
            pass

    async def _send(self, n):
        cur = self._cur[n]
        key = (cur[0], cur[1], cur[2])
        try:
            await self.session.call("StatusNotification", self.payload(n))
        except CallError as e:
            # Answered, if with an error: sending it again would get the same answer.
            log.error("StatusNotification: %s" % (e,))
        except (CallTimeout, NotConnected) as e:
            log.error("StatusNotification: %s" % (e,))
            await self._pause(_RETRY_MS)
            return
        self._sent[n] = key
        self.sent_count += 1

    async def run(self):
        while True:
            self._wake.clear()
            now = self._ticks()
            self.observe(now)
            wait = _POLL_MS
            if self.session.online.is_set():
                n, left = self.due(now)
                if n is not None:
                    await self._send(n)
                    continue
                if left is not None and left < wait:
                    wait = left
            await self._pause(wait)
