"""StatusNotification for connector 0 (the charge point) and connector 1, the
MinimumStatusDuration key and go-e `ocppcs`. When a status is reported and
which: README.md.
"""
import asyncio

from firmware import log
from firmware.clock import format_iso
from firmware.compat import const, ticks_diff, ticks_ms
from firmware.evse import codes, connector
from firmware.evse.codes import Err
from firmware.ocpp.rpc import CallError, CallTimeout, NotConnected
from firmware.settings import INT, OCPP, PERSIST, RW

# go-e ocppcs: the index of the status in this tuple.
STATUSES = ("Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved",
            "Unavailable", "Faulted")
# OCPP 1.6 section 4.9 (connectors > 0; connector 0 only uses Available, Unavailable
# and Faulted, all reachable): row "from", column "to", both in the order of STATUSES,
# "x" where the change is allowed. One string: a dict of tuples of names cost 1.5 KB
# of heap on a board without PSRAM.
#              to: Available Preparing Charging SuspendedEVSE SuspendedEV Finishing Reserved Unavailable Faulted
_NEXT = const(".xxxx.xxx"  # Available
              "x.xxxx..x"  # Preparing
              "x..xxx.xx"  # Charging
              "x.x.xx.xx"  # SuspendedEVSE
              "x.xx.x.xx"  # SuspendedEV
              "xx.....xx"  # Finishing
              "xx.....xx"  # Reserved
              "xxxxx...x"  # Unavailable
              "xxxxxxxx.")  # Faulted
# Where a transition is missing from the table, the first of these the table
# allows in between (e.g. Finishing -> Preparing -> Charging: a new transaction).
_BRIDGES = ("Preparing", "Available", "Finishing")
# ChargePointErrorCode EVCommunicationError: a warning with these statuses only.
_EV_WARNING_STATUSES = ("Preparing", "SuspendedEV", "SuspendedEVSE", "Finishing")
_EV_SIDE_DISCONNECTED = "EV side disconnected"
_POLL_MS = 1000  # error codes (a failed meter) can change without a controller event
_RETRY_MS = 5000  # after a StatusNotification got no answer


def allowed(old, new):
    """True when OCPP 1.6 4.9 allows the change old -> new (old None: nothing reported yet)."""
    if old is None or old == new:
        return True
    if old not in STATUSES or new not in STATUSES:
        return False
    return _NEXT[9 * STATUSES.index(old) + STATUSES.index(new)] == "x"


def bridge(old, new):
    """The status to report between old and new when the table lacks old -> new, else None."""
    for b in _BRIDGES:
        if b != old and b != new and allowed(old, b) and allowed(b, new):
            return b
    return None


def _expected_gap(old, new):
    """Changes the status model makes in one step where 4.9 has two, which the
    report bridges; expected, not bugs of the model:
    - Finishing, then a card or RemoteStart with the EV still plugged: the new
      transaction starts at once (F2: Preparing in between);
    - Preparing made Inoperative: the usage ends (B1: Available), then A8;
    - made Operative again with the EV still plugged after its transaction ended
      while Unavailable: the user is back (H2: Preparing), then Finishing."""
    if old == codes.FINISHING:
        return new == codes.CHARGING or new == codes.SUSPENDED_EV or new == codes.SUSPENDED_EVSE
    if old == codes.UNAVAILABLE:
        return new == codes.FINISHING
    return old == codes.PREPARING and new == codes.UNAVAILABLE


def fit_error(status, ec, vec, err=0):
    """(errorCode, vendorErrorCode) that 4.9 allows with status; ec, vec when they fit."""
    if ec == "EVCommunicationError" and status not in _EV_WARNING_STATUSES:
        ec = "OtherError"
    elif status == codes.FAULTED and ec == codes.NO_ERROR:
        ec = "OtherError"
    if ec == "OtherError" and not vec:
        vec = codes.err_name(err)
    return ec, vec


def charger_fault(c):
    """A fault of the charge point itself rather than of its connector."""
    f = c.fault
    return f == Err.OVERTEMP or (f == Err.UNKNOWN and c.vendor_error_code == "Internal")


def define_keys(settings):
    settings.define("MinimumStatusDuration", INT, 0, RW | PERSIST | OCPP, 0, 3600)
    settings.status("ocppcs", None)  # bound by StatusReporter


class StatusReporter:
    def __init__(self, settings, clock, session, controller, holds, ticks=ticks_ms, transactions=None):
        """holds: StatusHolds, the statuses other services hold over the controller's;
        transactions: Transactions, whether one runs (None: no transaction module)."""
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
        self.transactions = transactions
        self.bugs = 0  # changes of the status model the 4.9 table lacks (each logged)
        self._told = [None, None]  # status the central system last got, kept across reconnects
        self._skipped = False  # connector 1 was not observed while inconsistent since its last observation
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
                ec, vec = fit_error(codes.FAULTED, c.ocpp_error_code, c.vendor_error_code, c.err)
                return codes.FAULTED, ec, vec
            return self.holds.apply(0, codes.AVAILABLE), codes.NO_ERROR, None
        st = c.ocpp_status
        if st == codes.PREPARING and self._ev_left():
            # The EV unplugged during a transaction, which goes on (the
            # controller's Preparing means "authorized, no EV"), or is about to
            # stop: then Available, what it becomes once stopped.
            st = codes.SUSPENDED_EV if not self._stops_on_ev_disconnect() else codes.AVAILABLE
        # Held statuses: Unavailable, Reserved, Available after ConnectionTimeOut (OCPP 1.6 errata).
        st = self.holds.apply(1, st)
        ec, vec = fit_error(st, c.ocpp_error_code, c.vendor_error_code, c.err)
        return st, ec, vec

    def _ev_left(self):
        t = self.transactions
        return t is not None and t.current is not None and not self.controller.plugged

    def _stops_on_ev_disconnect(self):
        try:
            return bool(self.settings.get("StopTransactionOnEVSideDisconnect"))
        except KeyError:
            return True

    def settled(self):
        """False while connector 1 is between two consistent states: a command
        (authorize, enable, ...) changed the controller since its last tick, whose
        status is then stale; the EV plugged in while authorized and the
        transaction rules are about to start the transaction; or the EV has
        unplugged and they are about to stop it. Nothing is observed then: the
        next tick's status event wakes the reporter (and its poll, at the latest)."""
        c = self.controller
        st = c.ocpp_status
        if connector.ocpp_status(c) != st:
            return False
        t = self.transactions
        if t is None:
            return True
        if t.current is None and (st == codes.CHARGING or st == codes.SUSPENDED_EV or st == codes.SUSPENDED_EVSE):
            # Authorized before plug-in, the EV just plugged: the transaction
            # starts at the rules' next step. No Charging/Suspended* without it.
            return False
        return not (st == codes.PREPARING and self._ev_left() and self._stops_on_ev_disconnect())

    def observe(self, now):
        """Note the current status of each connector and since when it holds."""
        for n in (0, 1):
            if n == 1 and not self.settled():
                self._skipped = True
                continue
            st, ec, vec = self.state(n)
            cur = self._cur[n]
            skipped = n == 1 and self._skipped
            if n == 1:
                self._skipped = False
            if cur is None or cur[0] != st or cur[1] != ec or cur[2] != vec:
                if (cur is not None and not allowed(cur[0], st) and not _expected_gap(cur[0], st)
                        and not skipped):
                    # The status model itself made a change the table lacks (not a
                    # status that held only while the picture was inconsistent,
                    # e.g. Available between a stop and a new authorization).
                    self.bugs += 1
                    log.error("bug: connector %d status %s -> %s is not in the OCPP 1.6 table" % (n, cur[0], st))
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

    def payload(self, n, status=None):
        """The StatusNotification of connector n's observed status; status: a bridge
        status to report instead (the table needs it in between), with NoError."""
        cur = self._cur[n]
        if status is not None and status != cur[0]:
            cur = [status, codes.NO_ERROR, None, cur[3], cur[4]]
        p = {"connectorId": n, "errorCode": cur[1], "status": cur[0]}
        if cur[0] == codes.FAULTED:
            p["info"] = "err %d" % self.controller.err  # the go-e error number
        elif n == 1 and cur[0] == codes.SUSPENDED_EV and self._ev_left():
            p["info"] = _EV_SIDE_DISCONNECTED
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

    def next_payload(self, n):
        """(payload, final) for connector n's due report: the observed status, or
        first the bridge the 4.9 table needs from what the central system last got
        (final False: the observed status is still due after it)."""
        cur = self._cur[n]
        last = self._told[n]
        if allowed(last, cur[0]):
            return self.payload(n), True
        # A status omitted (MinimumStatusDuration, offline) or a model bug (logged
        # by observe) left a gap the table does not allow: report the step between.
        b = bridge(last, cur[0])
        log.info("connector %d: %s -> %s reported through %s" % (n, last, cur[0], b))
        return self.payload(n, b), b is None

    async def _send(self, n):
        cur = self._cur[n]
        key = (cur[0], cur[1], cur[2])
        p, final = self.next_payload(n)
        try:
            await self.session.call("StatusNotification", p)
        except CallError as e:
            # Answered, if with an error: sending it again would get the same answer.
            log.error("StatusNotification: %s" % (e,))
        except (CallTimeout, NotConnected) as e:
            log.error("StatusNotification: %s" % (e,))
            await self._pause(_RETRY_MS)
            return
        self.delivered(n, key, p, final)

    def delivered(self, n, key, p, final):
        """The central system got p (a report of key, or a bridge before it when not final)."""
        self._told[n] = p["status"]
        self.sent_count += 1
        if final:
            self._sent[n] = key

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
