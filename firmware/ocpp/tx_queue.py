"""The queue of transaction-related messages (StartTransaction, StopTransaction,
MeterValues of a transaction): persisted on flash before push() returns,
delivered in order, retried, resent under the same OCPP message id; the keys
TransactionMessageAttempts and TransactionMessageRetryInterval. The file
layout and the rules (room, retries, timestamps) are in README.md.
"""
import asyncio

from firmware import log
from firmware.compat import const, sleep_ms, ticks_diff, ticks_ms, urandom
from firmware.ocpp.rpc import CallError, CallTimeout, NotConnected
from firmware.settings import INT, OCPP, PERSIST, RW

_DIR = "txq"
_IDS = "txids.json"
_KINDS = {"StartTransaction": "S", "StopTransaction": "T", "MeterValues": "M"}
_KEEP_IDS = const(8)  # refs whose transactionId is remembered (the newest)


def define_keys(settings):
    d = settings.define
    d("TransactionMessageAttempts", INT, 3, RW | PERSIST | OCPP, 1, 100)
    d("TransactionMessageRetryInterval", INT, 60, RW | PERSIST | OCPP, 0, 86400)


def _is_msg(name):
    return len(name) > 8 and name[:8].isdigit() and "." not in name


class TxQueue:
    def __init__(self, store, session, settings, clock, max_messages=100):
        self.store = store
        self.session = session
        self.settings = settings
        self.clock = clock
        self.max_messages = max_messages
        self.dropped = 0  # messages given up (room or attempts), since boot
        self.sent = 0
        self._boot = "%08x" % int.from_bytes(urandom(4), "big")
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._listeners = []
        self._attempts = 0
        self._names = []
        self._seq = 0
        self._load()

    # -- flash ----------------------------------------------------------------
    def _load(self):
        from firmware.compat import makedirs
        makedirs(self.store.path(_DIR))
        names = []
        for n in self.store.listdir(_DIR):
            if _is_msg(n):
                names.append(n)
            else:
                # A temp file of a cut write, or a quarantined corrupt one.
                self.store.delete(_DIR + "/" + n)
        names.sort()
        self._names = names
        if names:
            self._seq = int(names[-1][:8]) + 1
        obj, err = self.store.read_json(_IDS)
        if err:
            log.error(err)
        self._ids = obj if isinstance(obj, dict) else {}
        if not names:
            self._empty.set()

    def _save_ids(self):
        ids = self._ids
        if len(ids) > _KEEP_IDS:
            keys = sorted(int(k) for k in ids)
            for k in keys[:len(keys) - _KEEP_IDS]:
                del ids[str(k)]
        try:
            self.store.write_json(_IDS, ids)
        except OSError as e:
            log.error("txids not saved: %s" % e)

    # -- for the features -------------------------------------------------------
    def push(self, action, payload, tx_ref=None):
        """Persist one message, then deliver it in order. True when it is on
        flash; False when it could not be queued (reported in ocpple)."""
        seq = self._seq
        self._seq = seq + 1
        kind = _KINDS.get(action, "O")
        name = "%08d%s%s" % (seq, kind, "" if tx_ref is None else tx_ref)
        rec = {"a": action, "p": payload, "id": "%s-q%d" % (self._boot, seq), "b": self._boot, "k": ticks_ms()}
        if tx_ref is not None:
            rec["r"] = tx_ref
        if len(self._names) >= self.max_messages and not self._make_room() and kind == "M":
            self.dropped += 1
            log.error("transaction queue full of Start/StopTransaction: new MeterValues dropped")
            return False
        try:
            self.store.write_json(_DIR + "/" + name, rec)
        except OSError as e:
            log.error("%s not queued: %s" % (action, e))
            return False
        self._names.append(name)
        self._empty.clear()
        self._wake.set()
        return True

    def _make_room(self):
        for i, n in enumerate(self._names):
            if n[8] == "M" and i > 0:  # never the head: it may be in flight
                self._remove(i)
                self.dropped += 1
                log.error("transaction queue full: oldest MeterValues dropped")
                return True
        return False

    def room_for_transaction(self):
        """False while Start/StopTransaction messages alone fill the queue but
        for the two a new transaction needs."""
        n = 0
        for name in self._names:
            if name[8] in "ST":
                n += 1
        return n + 2 <= self.max_messages

    def pending(self):
        return len(self._names)

    def knows(self, ref):
        """True when a message of transaction ref is queued or its id is known."""
        return str(ref) in self._ids or any(self._ref_of(n) == ref for n in self._names)

    def has_stop(self, ref):
        return any(n[8] == "T" and self._ref_of(n) == ref for n in self._names)

    def max_ref(self):
        m = 0
        for k in self._ids:
            if int(k) > m:
                m = int(k)
        for n in self._names:
            r = self._ref_of(n)
            if r is not None and r > m:
                m = r
        return m

    def id_for(self, ref):
        return self._ids.get(str(ref))

    @staticmethod
    def _ref_of(name):
        return int(name[9:]) if len(name) > 9 else None

    def on_answer(self, fn):
        """fn(action, ref, payload, response) after a queued message was answered."""
        self._listeners.append(fn)

    async def wait_empty(self, timeout_ms):
        """True once everything queued is delivered (or given up), False at timeout."""
        if not self._names:
            return True
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_ms / 1000)
        except asyncio.TimeoutError:
            pass
        return not self._names

    # -- delivery -----------------------------------------------------------------
    def _remove(self, i):
        n = self._names.pop(i)
        self.store.delete(_DIR + "/" + n)
        if not self._names:
            self._empty.set()

    def _give_up(self, why):
        n = self._names[0]
        self._remove(0)
        self.dropped += 1
        self._attempts = 0
        log.error("queued message %s given up: %s" % (n, why))
        ref = self._ref_of(n)
        if n[8] == "S" and ref is not None and str(ref) not in self._ids:
            self._ids[str(ref)] = None  # no transactionId will ever come
            self._save_ids()

    def _stamp(self, name, rec, p):
        """Fill missing timestamps (kept on flash, so a resend is identical); False while no time is known."""
        now = self.clock.now()
        if now is None:
            return False
        changed = False
        t = now
        if rec.get("b") == self._boot and isinstance(rec.get("k"), int):
            t = now - ticks_diff(ticks_ms(), rec["k"]) // 1000
        iso = self.clock.iso(t)
        if rec["a"] != "MeterValues" and not p.get("timestamp"):
            p["timestamp"] = iso
            changed = True
        for key in ("meterValue", "transactionData"):
            for mv in p.get(key) or ():
                if isinstance(mv, dict) and not mv.get("timestamp"):
                    mv["timestamp"] = iso
                    changed = True
        if changed:
            try:
                self.store.write_json(_DIR + "/" + name, rec)
            except OSError as e:
                log.error("txq stamp not saved: %s" % e)
        return True

    async def run(self):
        while True:
            try:
                await self._deliver_one()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the queue task must go on
                log.exception("tx queue", e)
                await sleep_ms(1000)

    async def _deliver_one(self):
        if not self._names:
            self._empty.set()
            self._wake.clear()
            await self._wake.wait()
            return
        session = self.session
        if not session.online.is_set():
            await session.online.wait()
        name = self._names[0]
        rec, err = self.store.read_json(_DIR + "/" + name)
        if not isinstance(rec, dict) or "a" not in rec or not isinstance(rec.get("p"), dict):
            self._give_up(err or "unreadable")
            return
        action = rec["a"]
        p = rec["p"]
        ref = rec.get("r")
        if ref is not None and action != "StartTransaction":
            key = str(ref)
            tid = self._ids.get(key)
            if tid is None:
                if action == "StopTransaction":
                    self._give_up("transaction %d has no transactionId" % ref)
                    return
                p.pop("transactionId", None)
            else:
                p["transactionId"] = tid
        if not self._stamp(name, rec, p):
            await sleep_ms(500)
            return
        try:
            res = await session.call(action, p, msg_id=rec["id"])
        except NotConnected:
            await sleep_ms(100)
            return
        except (CallTimeout, CallError) as e:
            self._attempts += 1
            limit = self.settings.get("TransactionMessageAttempts")
            if self._attempts >= limit:
                self._give_up("%s after %d attempts" % (e, self._attempts))
            else:
                await sleep_ms(self.settings.get("TransactionMessageRetryInterval") * 1000 * self._attempts)
            return
        self._attempts = 0
        self.sent += 1
        if action == "StartTransaction" and ref is not None:
            self._ids[str(ref)] = res.get("transactionId")
            self._save_ids()
        if self._names and self._names[0] == name:
            self._remove(0)
        for fn in self._listeners:
            try:
                fn(action, ref, p, res)
            except Exception as e:  # noqa: BLE001
                log.exception("tx queue listener", e)
