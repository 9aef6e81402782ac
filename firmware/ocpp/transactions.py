"""Transactions on connector 1: when they start and stop and why, the
RemoteStart/RemoteStop/UnlockConnector handlers, the RFID reader, tx.json on
flash, and the keys AuthorizeRemoteTxRequests, ConnectionTimeOut,
MaxEnergyOnInvalidId, StopTransactionOn*, UnlockConnectorOnEVSideDisconnect
and go-e acs, trx, ocppd, ocppti. The rules (power loss, ConnectionTimeOut,
the held cable lock) are in README.md.
"""
import asyncio

from firmware import log
from firmware.compat import const, sleep_ms, ticks_diff, ticks_ms
from firmware.evse.codes import PREPARING, Cus, Err, ModelStatus
from firmware.settings import BOOL, INT, JSON, NULL, OCPP, PERSIST, RW, STR

TX_FILE = "tx.json"
_STEP_MS = const(100)  # reader poll and rule checks
FREE_TAG = "FREE"  # idTag of charging without a card while ocppd is ""
_UNLOCK_WAIT_MS = const(6000)
TX_LIMIT = "ocpp_tx"  # the controller's limit source of a RemoteStartTransaction's TxProfile
_EMERGENCY = (Err.FI_AC, Err.FI_DC, Err.FI_UNKNOWN)


class Tx:
    __slots__ = ("ref", "id", "id_tag", "meter_start", "start_s", "card", "queued", "invalid", "parent")

    def __init__(self, ref, id_tag, meter_start, start_s, card=None, queued=True, parent=None):
        self.ref = ref
        self.id = None
        self.id_tag = id_tag
        self.meter_start = meter_start
        self.start_s = start_s
        self.card = card
        self.queued = queued  # its OCPP messages go to the queue (OCPP enabled at start)
        self.invalid = False  # the CSMS answered StartTransaction with a status other than Accepted
        self.parent = parent  # parentIdTag of id_tag (its group), None when unknown


def profile_limit(profile):
    """(amps, phases) of a RemoteStartTransaction TxProfile, or None when unusable.

    The first schedule period applies for the whole transaction; W converts
    with 230 V per phase.
    """
    if profile.get("chargingProfilePurpose") != "TxProfile":
        return None
    sch = profile.get("chargingSchedule") or {}
    periods = sch.get("chargingSchedulePeriod") or ()
    if not periods:
        return None
    p = periods[0]
    ph = p.get("numberPhases")
    lim = p.get("limit")
    if sch.get("chargingRateUnit") == "W":
        lim = lim / (230 * (ph or 3))
    return lim, ph


class Transactions:
    def __init__(self, settings, controller, energy, clock, store, queue, auth=None, cards=None, holds=None,
                 take_rfid=None, rebooting=None):
        """auth: Authorization; cards: go-e Cards; holds: StatusHolds (Available once
        ConnectionTimeOut passed); take_rfid() -> a presented idTag or None;
        rebooting() -> True while the application shuts down for a reboot."""
        self.settings = settings
        self.controller = controller
        self.energy = energy
        self.clock = clock
        self.store = store
        self.queue = queue
        self.auth = auth
        self.cards = cards
        self.holds = holds
        self._take_rfid = take_rfid
        self._rebooting = rebooting
        self.current = None
        self.last_ref = queue.max_ref()  # refs stay unique across reboots
        self._grant = None  # [idTag, card index, ticks]: authorized, waiting for the plug
        self._authorizing = False
        self._wait_unplug = False  # a session ended with the EV plugged: no automatic restart
        self._plug_ms = None  # ticks the EV plugged while waiting for authorization
        self._plug_expired = False
        self._hold_tag = None  # idTag that releases the held cable lock
        self._recovered = False
        self._unsent = None  # (payload, ref) of a StopTransaction the queue could not take yet
        self._full_said = False
        self._start_ls = []
        self._stop_ls = []
        self._stop_data = []
        self._start_checks = []
        self.trx = settings.bind("trx", check=self._check_trx)  # go-e trx
        settings.watch("trx", self._trx_written)
        settings.watch("UnlockConnectorOnEVSideDisconnect", self._unlock_key_written)
        settings.bind("ocppti", lambda: self.current.id if self.current is not None else None)
        self.queue.on_answer(self._answered)

    # -- interface ----------------------------------------------------------------
    @property
    def active(self):
        return self.current is not None

    def on_start(self, fn):
        self._start_ls.append(fn)

    def on_stop(self, fn):
        self._stop_ls.append(fn)

    def add_start_check(self, fn):
        """fn(idTag, connectorId) -> None when it may start there, else why not (a reservation)."""
        self._start_checks.append(fn)

    def may_start(self, tag, connector=1):
        for fn in self._start_checks:
            if fn(tag, connector) is not None:
                return False
        return True

    def on_stop_data(self, fn):
        """fn(tx) -> MeterValues for the transactionData of its StopTransaction."""
        self._stop_data.append(fn)

    def handlers(self):
        return {"RemoteStartTransaction": self.remote_start, "RemoteStopTransaction": self.remote_stop,
                "UnlockConnector": self.unlock_connector}

    @property
    def plug_expired(self):
        """ConnectionTimeOut passed with no authorization: the connector reports Available."""
        return self._plug_expired

    @plug_expired.setter
    def plug_expired(self, on):
        if on == self._plug_expired:
            return
        self._plug_expired = on
        if self.holds is not None:
            if on:
                self.holds.hold("plug_expired", 1, "Available", (PREPARING,))
            else:
                self.holds.release("plug_expired", 1)

    async def stop(self, reason):
        """Stop the running transaction; returns once its StopTransaction is on flash."""
        self.stop_now(reason)

    # -- authorization --------------------------------------------------------------
    def _ocpp_on(self):
        return bool(self.settings.get("ocppe"))

    def _free_tag(self):
        return self.settings.get("ocppd") or FREE_TAG

    def grant(self, tag, card=None, limit=None, parent=None):
        """Authorized: the EV may charge once plugged (ConnectionTimeOut to plug in).
        False when no transaction can start now."""
        c = self.controller
        if not c.enabled:
            # Unavailable (ChangeAvailability Inoperative): no transaction may start.
            log.warn("connector unavailable: authorization of %s not used" % tag)
            return False
        if not self._room():
            return False
        if not self.may_start(tag):
            log.warn("%s may not start a transaction on this connector" % tag)
            return False
        self._grant = [tag, card, ticks_ms(), parent]
        self._plug_ms = None
        self.plug_expired = False
        if limit is not None:
            c.set_limit(TX_LIMIT, limit[0], limit[1], ModelStatus.OCPP_DOESNT_WANT)
        c.authorize(True)
        self._set_trx()
        log.info("authorized " + tag)
        if c.plugged and not c.fault:
            self._start(tag, card, parent)  # at once: no energy flows before StartTransaction
        return True

    def _cancel_grant(self):
        if self._grant is not None:
            self._grant = None
            self.controller.authorize(False)
            self.controller.set_limit(TX_LIMIT, None)
            self._set_trx()

    def _set_trx(self):
        """go-e trx: None, 0 without a card, card index + 1."""
        if self.trx is None:
            return
        tx = self.current
        g = tx.card if tx is not None else (self._grant[1] if self._grant is not None else -2)
        self.trx.value = None if g == -2 else (0 if g is None else g + 1)

    async def _identify(self, tag):
        """(ok, how, parent) of an idTag through the authorization chain; None while
        another authorization is under way (one at a time)."""
        if self._authorizing:
            return None
        self._authorizing = True
        try:
            return await self.auth.identify(tag)
        finally:
            self._authorizing = False

    async def authorize_tag(self, tag, limit=None):
        """Authorize a presented idTag (card or remote start) and grant it."""
        r = await self._identify(tag)
        if r is None:
            return
        ok, how, parent = r
        if not ok:
            log.warn("idTag %s not authorized (%s)" % (tag, how))
            return
        if self.current is None:
            card = self.cards.index(tag) if self.cards else None
            self.grant(tag, card, limit, parent)

    async def _stop_by_group(self, tx, tag):
        """Another idTag of the transaction's group stops it (OCPP 1.6 section 3.10)."""
        r = await self._identify(tag)
        if r is None:
            return
        ok, how, parent = r
        if ok and parent == tx.parent and self.current is tx:
            self.stop_now("Local", tag)
        else:
            log.info("idTag %s does not stop transaction %d (%s, group %s)" % (tag, tx.ref, how, parent))

    def _release_hold(self):
        self._hold_tag = None
        self.controller.hold_lock(False)

    def _unlock_key_written(self, st):
        if st.value:
            self._release_hold()

    def _on_card(self, tag):
        tx = self.current
        if tag == self._hold_tag:
            self._release_hold()  # the cable's owner is back
            if tx is None:
                return
        if tx is not None:
            if tag == tx.id_tag:
                self.stop_now("Local", tag)
            elif tx.parent is not None and self.auth is not None:
                asyncio.create_task(self._stop_by_group(tx, tag))
            return
        g = self._grant
        if g is not None and g[0] == tag:
            self._cancel_grant()  # the same card again before plugging in: cancel
            return
        asyncio.create_task(self.authorize_tag(tag))

    # -- start and stop -----------------------------------------------------------------
    def _room(self):
        """False (reported once) while a new transaction's messages could not be kept."""
        if self._unsent is None and (not self._ocpp_on() or self.queue.room_for_transaction()):
            self._full_said = False
            return True
        if not self._full_said:
            self._full_said = True
            log.error("transaction queue full: no new transaction until the central system takes the queued ones")
        return False

    def _start(self, tag, card, parent=None):
        self._grant = None
        self._plug_ms = None
        self.plug_expired = False
        if self._hold_tag is not None:
            self._release_hold()  # a new session owns the socket (locked while plugged anyway)
        self.last_ref += 1
        energy = self.energy
        energy.flush()
        now = self.clock.now()
        tx = Tx(self.last_ref, tag, energy.total_wh, now, card, self._ocpp_on(), parent)
        self._write(tx)
        if tx.queued:
            p = {"connectorId": 1, "idTag": tag, "meterStart": tx.meter_start}
            if now is not None:
                p["timestamp"] = self.clock.iso(now)
            self.queue.push("StartTransaction", p, tx_ref=tx.ref)
        self.current = tx
        self.controller.authorize(True)
        self._set_trx()
        log.info("transaction %d started for %s at %d Wh" % (tx.ref, tag, tx.meter_start))
        for fn in self._start_ls:
            try:
                fn(tx)
            except Exception as e:  # noqa: BLE001
                log.exception("on_start", e)

    def _write(self, tx, stop=None):
        rec = {"on": True, "ref": tx.ref, "tag": tx.id_tag, "ms": tx.meter_start, "s": tx.start_s, "c": tx.card,
               "q": tx.queued}
        if tx.parent is not None:
            rec["p"] = tx.parent
        if stop is not None:
            rec["stop"] = stop  # the StopTransaction the queue could not take
        try:
            self.store.write_json(TX_FILE, rec)
        except OSError as e:
            log.error("tx.json not saved: %s" % e)

    def _retry_unsent(self):
        p, ref = self._unsent
        if self.queue.push("StopTransaction", p, tx_ref=ref):
            self._unsent = None
            self.store.delete(TX_FILE)

    def stop_now(self, reason, tag=None, at=None):
        """Stop the running transaction now (synchronous: the StopTransaction is on flash on return).
        at: the stop time (epoch s) when it is not now."""
        tx = self.current
        if tx is None:
            return
        self.current = None
        energy = self.energy
        energy.flush()
        stop_wh = energy.total_wh
        if stop_wh < tx.meter_start:
            stop_wh = tx.meter_start
        if tx.queued:
            p = {"meterStop": stop_wh, "reason": reason}
            if tx.id is not None:
                p["transactionId"] = tx.id
            now = self.clock.now() if at is None else at
            if now is not None:
                p["timestamp"] = self.clock.iso(now)
            if tag:
                p["idTag"] = tag
            for fn in self._stop_data:
                try:
                    data = fn(tx)
                    if data:
                        p["transactionData"] = p.get("transactionData", []) + data
                except Exception as e:  # noqa: BLE001 - metering must not cost the StopTransaction
                    log.exception("stop_data", e)
            if not self.queue.push("StopTransaction", p, tx_ref=tx.ref):
                # Never lost: tx.json keeps it for the next boot, the rules retry it.
                self._unsent = (p, tx.ref)
                self._write(tx, p)
        if self._unsent is None:
            self.store.delete(TX_FILE)
        if tx.card is not None and self.cards is not None:
            self.cards.add_energy(tx.card, stop_wh - tx.meter_start)
        c = self.controller
        c.authorize(False)
        c.set_limit(TX_LIMIT, None)
        c.set_limit("invalid", None)
        self._wait_unplug = c.plugged
        self._set_trx()
        log.info("transaction %d stopped (%s) at %d Wh" % (tx.ref, reason, stop_wh))
        for fn in self._stop_ls:
            try:
                fn(tx)
            except Exception as e:  # noqa: BLE001
                log.exception("on_stop", e)

    def recover(self):
        """At boot: close a transaction a power loss cut (once)."""
        if self._recovered:
            return
        self._recovered = True
        q = self.queue
        obj, err = self.store.read_json(TX_FILE)
        if err:
            log.error(err)
        if not isinstance(obj, dict) or not obj.get("on"):
            return
        ref = obj.get("ref")
        if not isinstance(ref, int):
            return
        if ref > self.last_ref:
            self.last_ref = ref
        tx = Tx(ref, obj.get("tag") or FREE_TAG, obj.get("ms") or 0, obj.get("s"), obj.get("c"), bool(obj.get("q")),
                obj.get("p"))
        if tx.queued:
            if q.has_stop(ref):
                self.store.delete(TX_FILE)  # stopped just before the cut
                return
            stop = obj.get("stop")
            if isinstance(stop, dict):
                # Stopped, but the queue could not take the StopTransaction then.
                self._unsent = (stop, ref)
                self._retry_unsent()
                return
            if not q.knows(ref):
                # Cut between tx.json and the StartTransaction: queue it now.
                p = {"connectorId": 1, "idTag": tx.id_tag, "meterStart": tx.meter_start}
                if tx.start_s is not None:
                    p["timestamp"] = self.clock.iso(tx.start_s)
                q.push("StartTransaction", p, tx_ref=ref)
            tx.id = q.id_for(ref)
        self.current = tx
        # Stopped when the last meter reading reached the flash, the latest
        # moment known to have been before the cut.
        at = self.energy.saved_time
        if at is None or (isinstance(tx.start_s, int) and at < tx.start_s):
            at = tx.start_s
        self.stop_now("PowerLoss", at=at)

    def _answered(self, action, ref, payload, res):
        if action == "StartTransaction":
            info = res.get("idTagInfo") or {}
            if self.auth is not None:
                self.auth.learn(payload.get("idTag"), info)
            tx = self.current
            if tx is not None and tx.ref == ref:
                tx.id = res.get("transactionId")
                parent = info.get("parentIdTag")
                if parent is not None and parent != tx.parent:
                    tx.parent = parent  # the group the central system knows the idTag by
                    if self._unsent is None:
                        self._write(tx)
                if info.get("status") != "Accepted":
                    tx.invalid = True
                    log.warn("StartTransaction: idTag %s" % info.get("status"))
        elif action == "StopTransaction" and payload.get("idTag") and res.get("idTagInfo"):
            if self.auth is not None:
                self.auth.learn(payload["idTag"], res["idTagInfo"])

    # -- the rules, every _STEP_MS ------------------------------------------------------------
    def step(self, now):
        c = self.controller
        s = self.settings
        if self._unsent is not None:
            self._retry_unsent()
        take = self._take_rfid
        if take is not None:
            tag = take()
            if tag:
                self._on_card(tag)
        plugged = c.plugged
        if not plugged:
            self._wait_unplug = False
            self._plug_ms = None
            self.plug_expired = False
        tx = self.current
        if tx is not None:
            f = c.fault_latched
            if f in _EMERGENCY:
                self.stop_now("EmergencyStop")
            elif f == Err.CONTACTOR_STUCK:
                self.stop_now("Other")
            elif not plugged:
                if (self._hold_tag is None and not s.get("UnlockConnectorOnEVSideDisconnect") and c.lock_fitted
                        and tx.id_tag != self._free_tag()):
                    self._hold_tag = tx.id_tag
                    c.hold_lock(True)
                if s.get("StopTransactionOnEVSideDisconnect"):
                    self.stop_now("EVDisconnected")
                    if s.get("UnlockConnectorOnEVSideDisconnect") and c.lock_fitted:
                        c.unlock()
            elif tx.invalid:
                if self.energy.total_wh - tx.meter_start >= s.get("MaxEnergyOnInvalidId"):
                    if s.get("StopTransactionOnInvalidId"):
                        self.stop_now("DeAuthorized")
                    elif c.limit("invalid") is None:
                        c.set_limit("invalid", 0)  # energy stops; the transaction goes on
            return
        g = self._grant
        if g is not None:
            if not c.enabled:
                # Made Inoperative (ChangeAvailability) while waiting for the plug.
                log.info("connector unavailable: authorization of %s cancelled" % g[0])
                self._cancel_grant()
            elif plugged and not c.fault:
                self._start(g[0], g[1], g[3])
            elif not plugged and ticks_diff(now, g[2]) > s.get("ConnectionTimeOut") * 1000:
                log.info("ConnectionTimeOut: authorization of %s cancelled" % g[0])
                self._cancel_grant()
            return
        if (plugged and not self._wait_unplug and not self._authorizing and c.enabled and not c.fault
                and (s.get("acs") == 0 or c.force == 2)):
            if self._room() and self.may_start(self._free_tag()):
                self._start(self._free_tag(), None)
        elif plugged and not self._wait_unplug:
            if self._plug_ms is None:
                self._plug_ms = now
            elif (not self.plug_expired and not self._authorizing
                  and ticks_diff(now, self._plug_ms) > s.get("ConnectionTimeOut") * 1000):
                log.info("ConnectionTimeOut: no authorization for the plugged EV")
                self.plug_expired = True  # held Available: the status reporter wakes

    async def run(self):
        try:
            self.recover()
            while True:
                try:
                    self.step(ticks_ms())
                except Exception as e:  # noqa: BLE001 - keep the rules running
                    log.exception("transactions", e)
                await sleep_ms(_STEP_MS)
        except asyncio.CancelledError:
            # The application is shutting down for a reboot.
            if self._rebooting is not None and self._rebooting() and self.current is not None:
                self.stop_now("Reboot")
            raise

    # -- OCPP handlers --------------------------------------------------------------------
    def _can_start(self, cid):
        c = self.controller
        # An authorization waiting for the plug is a start already promised: a second
        # Accepted would silently replace it.
        return ((cid is None or cid == 1) and self.current is None and not self._authorizing
                and self._grant is None and c.enabled and not c.fault and self._room())

    async def remote_start(self, p):
        """Accepted only when the start is granted (authorized first with AuthorizeRemoteTxRequests)."""
        cid = p.get("connectorId")
        if not self._can_start(cid):
            return {"status": "Rejected"}
        limit = None
        prof = p.get("chargingProfile")
        if prof is not None:
            limit = profile_limit(prof)
            if limit is None:
                return {"status": "Rejected"}
        tag = p["idTag"]
        parent = None
        if self.settings.get("AuthorizeRemoteTxRequests"):
            ok, how, parent = await self._identify(tag)  # not None: _can_start saw none under way
            if not ok:
                log.warn("RemoteStartTransaction: idTag %s not authorized (%s)" % (tag, how))
                return {"status": "Rejected"}
            if not self._can_start(cid):  # e.g. a card started a transaction meanwhile
                return {"status": "Rejected"}
        if not self.grant(tag, self.cards.index(tag) if self.cards else None, limit, parent):
            return {"status": "Rejected"}
        return {"status": "Accepted"}

    def remote_stop(self, p):
        tx = self.current
        if tx is None or tx.id is None or p["transactionId"] != tx.id:
            return {"status": "Rejected"}
        return {"status": "Accepted"}, lambda: self.stop_now("Remote")

    async def unlock_connector(self, p):
        c = self.controller
        if p["connectorId"] != 1 or not c.lock_fitted:
            return {"status": "NotSupported"}
        self.stop_now("UnlockCommand")
        self._cancel_grant()
        self._hold_tag = None  # c.unlock() ends the hold
        if c.unlock() is not None:
            return {"status": "UnlockFailed"}
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < _UNLOCK_WAIT_MS:
            st = c.lock_status
            if st == Cus.UNLOCKED:
                return {"status": "Unlocked"}
            if st == Cus.UNLOCK_FAILED:
                break
            await sleep_ms(50)
        return {"status": "UnlockFailed"}

    # -- go-e trx ----------------------------------------------------------------------------
    def _trx_written(self, st):
        if st.value is None:
            if self.current is not None:
                self.stop_now("Local")
            self._cancel_grant()
        elif self.current is None and self._grant is None:
            v = st.value
            tag = self._free_tag()
            card = None
            if v > 0 and self.cards is not None:
                card = v - 1
                tag = self.cards.uid(card) or tag
            self.grant(tag, card)
        self._set_trx()

    def _check_trx(self, v):
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10:
            return "expected null or 0..10"
        if v > 0 and (self.cards is None or self.cards.uid(v - 1) is None):
            return "card %d is not taught" % v
        return None


def define_keys(settings):
    d = settings.define
    d("AuthorizeRemoteTxRequests", BOOL, True, RW | PERSIST | OCPP)
    d("ConnectionTimeOut", INT, 60, RW | PERSIST | OCPP, 0, 3600)
    d("MaxEnergyOnInvalidId", INT, 0, RW | PERSIST | OCPP, 0, 1000000)
    d("StopTransactionOnEVSideDisconnect", BOOL, True, RW | PERSIST | OCPP)
    d("StopTransactionOnInvalidId", BOOL, True, RW | PERSIST | OCPP)
    d("UnlockConnectorOnEVSideDisconnect", BOOL, True, RW | PERSIST | OCPP)
    d("acs", INT, 0, RW | PERSIST, 0, 1)
    d("ocppd", STR, "", RW | PERSIST, 0, 20)
    d("trx", JSON, None, RW | NULL)  # its check reads the taught cards: bound by Transactions
    settings.status("ocppti", None)
