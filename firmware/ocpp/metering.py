"""OCPP MeterValues: sampled values during a transaction, clock-aligned values,
values sent on demand, and the transactionData of StopTransaction. Owns the
keys MeterValueSampleInterval (`ocppi`), ClockAlignedDataInterval (`ocppai`),
MeterValuesSampledData, MeterValuesAlignedData, StopTxnSampledData,
StopTxnAlignedData (each with its read-only MaxLength key) and go-e `ocppcm`.
What is sent when, and the measurands: README.md.
"""
import asyncio
import json

from firmware import log
from firmware.clock import format_iso
from firmware.compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms
from firmware.ocpp.rpc import CallError, CallTimeout, NotConnected
from firmware.settings import CSL, INT, OCPP, PERSIST, R, RW

ENERGY = "Energy.Active.Import.Register"
_POWER = const("Power.Active.Import")
_CURRENT = const("Current.Import")
_VOLTAGE = const("Voltage")
_CURRENT_OFFERED = const("Current.Offered")
_POWER_OFFERED = const("Power.Offered")
_FREQUENCY = const("Frequency")
_TEMPERATURE = const("Temperature")
MEASURANDS = (ENERGY, _POWER, _CURRENT, _VOLTAGE, _CURRENT_OFFERED, _POWER_OFFERED, _FREQUENCY, _TEMPERATURE)

_PERIODIC = const("Sample.Periodic")
_CLOCK = const("Sample.Clock")
_TRIGGER = const("Trigger")
_BEGIN = const("Transaction.Begin")
_END = const("Transaction.End")

KEEP = const(6)  # samples kept between Transaction.Begin and Transaction.End
_CONNECTOR = const(1)
_FILE = const("stop_data.json")
_MAX_WAIT_MS = const(1000)  # re-check at least this often: the clock or the connector may change
_NEAR_MS = const(100)  # poll step in the last second before an aligned instant
_NOMINAL_V = 230.0  # for Power.Offered while the meter has no voltage
_DAY = const(86400)
_PHASES = ("L1", "L2", "L3")
_PHASES_N = ("L1-N", "L2-N", "L3-N")
_CHARGING = const("Charging")


def next_aligned(t, interval):
    """The first clock-aligned instant after epoch second t: midnight UTC plus a
    multiple of interval, the day's last interval ending at the next midnight."""
    midnight = t - t % _DAY
    n = midnight + ((t - midnight) // interval + 1) * interval
    return n if n < midnight + _DAY else midnight + _DAY


def _sv(out, value, context, measurand, unit, phase=None, location="Outlet"):
    v = {"value": value, "context": context, "measurand": measurand, "location": location}
    if phase is not None:
        v["phase"] = phase
    if unit is not None:
        v["unit"] = unit
    out.append(v)


class Metering:
    def __init__(self, settings, clock, controller, energy, session, tx_queue=None, store=None, transactions=None,
                 ticks=ticks_ms):
        """tx_queue: where transaction meter values go (None: sent directly, best effort);
        store: keeps transactionData across a reboot; transactions: start/stop events,
        the running transaction and the transactionData hook of its StopTransaction."""
        self.settings = settings
        self.clock = clock
        self.controller = controller
        self.energy = energy
        self.session = session
        self.tx_queue = tx_queue
        self.transactions = transactions
        self._ticks = ticks
        self._store = store
        self._wake = asyncio.Event()
        self._ref = None  # local reference of the transaction the kept samples belong to
        self._begin = None  # Transaction.Begin MeterValue (JSON text) or None
        self._kept = []  # later samples (JSON text), at most KEEP
        self._sampling = None  # ref of the transaction the sample timer runs for
        self._next_ms = None  # ticks of the next periodic sample; None: start anew
        self._next_al = None  # epoch s of the next aligned instant; None: compute anew
        self._inflight = False
        self.sent = 0  # MeterValues handed to the queue or the session
        self.dropped = 0  # clock-aligned values dropped while offline
        self._load()
        settings.watch("MeterValueSampleInterval", self.restart_timers)
        settings.watch("ClockAlignedDataInterval", self.restart_timers)
        if transactions is not None:
            transactions.on_start(self._on_start)
            transactions.on_stop(self._on_stop)
            transactions.on_stop_data(self.stop_data)

    # -- samples ------------------------------------------------------------------
    def sample(self, context, measurands_csv, t=None):
        """One OCPP MeterValue {"timestamp", "sampledValue"} of the listed measurands.

        t: epoch seconds of the timestamp (default now). None while the clock is
        not set, or when none of the measurands can be read.
        """
        if t is None:
            t = self.clock.now()
        if t is None or not measurands_csv:
            return None
        ctl = self.controller
        m = ctl.meter
        ok = m is not None and m.ok
        ph = ctl.phases_active
        if ph > 3:
            ph = 3
        out = []
        for name in measurands_csv.split(","):
            if name == ENERGY:
                _sv(out, "%d" % self.energy.total_wh, context, name, "Wh")
            elif name == _POWER:
                if ok:
                    _sv(out, "%.0f" % m.power_w, context, name, "W")
            elif name == _CURRENT:
                if ok:
                    for i in range(ph):
                        _sv(out, "%.1f" % m.current[i], context, name, "A", _PHASES[i])
            elif name == _VOLTAGE:
                if ok:
                    for i in range(ph):
                        _sv(out, "%.1f" % m.voltage[i], context, name, "V", _PHASES_N[i])
            elif name == _CURRENT_OFFERED:
                _sv(out, "%.1f" % ctl.offered_amps, context, name, "A")
            elif name == _POWER_OFFERED:
                amps = ctl.offered_amps
                p = 0.0
                for i in range(ph):
                    v = m.voltage[i] if ok and m.voltage[i] > 0 else _NOMINAL_V
                    p += v * amps
                _sv(out, "%.0f" % p, context, name, "W")
            elif name == _FREQUENCY:
                if ok and m.frequency is not None:
                    _sv(out, "%.2f" % m.frequency, context, name, None)
            elif name == _TEMPERATURE:
                c = ctl.temperature_c
                if c is not None:
                    _sv(out, "%.1f" % c, context, name, "Celsius", None, "Body")
        if not out:
            return None
        return {"timestamp": format_iso(t), "sampledValue": out}

    # -- transactionData --------------------------------------------------------------
    def stop_data(self, tx):
        """transactionData for the StopTransaction of tx: Transaction.Begin, the last
        KEEP periodic / clock samples, and Transaction.End (taken now).

        Call once per transaction: the kept samples are handed over and forgotten.
        """
        out = []
        if tx is not None and tx.ref == self._ref:
            if self._begin is not None:
                out.append(json.loads(self._begin))
            for s in self._kept:
                out.append(json.loads(s))
        end = self.sample(_END, self.settings.get("StopTxnSampledData"))
        if end is not None:
            out.append(end)
        self._reset(None)
        return out

    def _reset(self, ref):
        had = self._begin is not None or self._kept
        self._ref = ref
        self._begin = None
        self._kept = []
        if had and self._store is not None:
            self._store.delete(_FILE)

    def _keep(self, context, key, t=None, begin=False):
        mv = self.sample(context, self.settings.get(key), t)
        if mv is None:
            return
        text = json.dumps(mv, separators=(",", ":"))
        if begin:
            self._begin = text
        else:
            if len(self._kept) >= KEEP:
                self._kept.pop(0)
            self._kept.append(text)
        self._save()

    def _save(self):
        if self._store is None:
            return
        text = '{"ref":%d,"begin":%s,"kept":[%s]}' % (self._ref, self._begin or "null", ",".join(self._kept))
        try:
            self._store.write_text(_FILE, text)
        except OSError as e:
            log.error("stop data not saved: %s" % e)

    def _load(self):
        if self._store is None:
            return
        obj, err = self._store.read_json(_FILE)
        if err:
            log.error(err)
        if not isinstance(obj, dict) or not isinstance(obj.get("ref"), int):
            return
        kept = obj.get("kept")
        if not isinstance(kept, list):
            kept = []
        self._ref = obj["ref"]
        b = obj.get("begin")
        self._begin = json.dumps(b, separators=(",", ":")) if isinstance(b, dict) else None
        self._kept = [json.dumps(k, separators=(",", ":")) for k in kept[-KEEP:] if isinstance(k, dict)]

    # -- transactions -----------------------------------------------------------------
    def _on_start(self, tx):
        self._reset(tx.ref)
        self._keep(_BEGIN, "StopTxnSampledData", begin=True)
        self._sampling = tx.ref
        iv = self.settings.get("MeterValueSampleInterval")
        # The interval counts from the start of the transaction.
        self._next_ms = ticks_add(self._ticks(), iv * 1000) if iv > 0 else None
        self._wake.set()

    def _on_stop(self, _tx):
        self._sampling = None
        self._wake.set()

    def _transaction(self):
        tr = self.transactions
        if tr is None or not tr.active:
            return None
        return tr.current

    # -- schedule ---------------------------------------------------------------------
    def restart_timers(self, _setting=None):
        """An interval changed: it applies now, not after the old interval ran out."""
        self._next_ms = None
        self._next_al = None
        self._wake.set()

    def step(self):
        """Send / keep whatever is due now; returns ms until the next check."""
        now = self._ticks()
        s = self.settings
        wait = _MAX_WAIT_MS
        tx = self._transaction()
        if tx is None:
            self._sampling = None
        elif tx.ref != self._sampling:
            # A transaction this module did not see start (recovered after a reboot).
            if tx.ref != self._ref:
                self._reset(tx.ref)
            self._sampling = tx.ref
            self._next_ms = None

        iv = s.get("MeterValueSampleInterval")
        if tx is not None and iv > 0:
            if self._next_ms is None:
                self._next_ms = ticks_add(now, iv * 1000)
            d = ticks_diff(self._next_ms, now)
            if d <= 0:
                self._periodic(tx)
                self._next_ms = ticks_add(self._next_ms, iv * 1000)
                d = ticks_diff(self._next_ms, now)
                if d <= 0:  # fell behind by a whole interval: start a fresh schedule
                    self._next_ms = ticks_add(now, iv * 1000)
                    d = iv * 1000
            if d < wait:
                wait = d

        civ = s.get("ClockAlignedDataInterval")
        t = self.clock.now()
        if civ > 0 and t is not None:
            n = self._next_al
            if n is None or t < n - civ:  # first time, or the clock went back
                n = next_aligned(t, civ)
            elif t >= n:
                if t - n < civ:  # not when the clock jumped past whole intervals
                    self._aligned(tx, n)
                n = next_aligned(t, civ)
            self._next_al = n
            # t is whole seconds: within the last second before n, poll finely.
            d = (n - t - 1) * 1000 if n - t > 1 else _NEAR_MS
            if d < wait:
                wait = d
        return wait

    def _periodic(self, tx):
        s = self.settings
        mode = s.get("ocppcm")
        if mode == 0 or self.controller.ocpp_status == _CHARGING:
            mv = self.sample(_PERIODIC, s.get("MeterValuesSampledData"))
            if mv is not None:
                self._send_tx(tx, mv)
        self._keep(_PERIODIC, "StopTxnSampledData")

    def _aligned(self, tx, t):
        mv = self.sample(_CLOCK, self.settings.get("MeterValuesAlignedData"), t)
        if tx is not None:
            if mv is not None:
                self._send_tx(tx, mv)
            self._keep(_CLOCK, "StopTxnAlignedData", t)
        elif mv is not None:
            self._send_direct({"connectorId": _CONNECTOR, "meterValue": [mv]})

    # -- sending ----------------------------------------------------------------------
    def trigger(self, connector=None):
        """Send the current meter values now (TriggerMessage), directly: the
        transaction queue is not disturbed. False for an unknown connector."""
        if connector is not None and connector not in (0, _CONNECTOR):
            return False
        mv = self.sample(_TRIGGER, self.settings.get("MeterValuesSampledData"))
        if mv is not None:
            payload = {"connectorId": _CONNECTOR, "meterValue": [mv]}
            tx = self._transaction()
            if tx is not None and tx.id is not None:
                payload["transactionId"] = tx.id
            self._send_direct(payload)
        return True

    def _send_tx(self, tx, mv):
        q = self.tx_queue
        payload = {"connectorId": _CONNECTOR, "transactionId": tx.id if tx.id is not None else 0,
                   "meterValue": [mv]}
        if q is not None:
            q.push("MeterValues", payload, tx_ref=tx.ref)
            self.sent += 1
        elif tx.id is not None:
            self._send_direct(payload)  # no queue in this build: best effort
        else:
            self.dropped += 1

    def _send_direct(self, payload):
        session = self.session
        if self._inflight or not session.online.is_set():
            self.dropped += 1
            return
        self._inflight = True
        self.sent += 1
        asyncio.create_task(self._call(payload))

    async def _call(self, payload):
        try:
            await self.session.call("MeterValues", payload)
        except (NotConnected, CallTimeout, CallError) as e:
            log.warn("MeterValues not sent: %s" % (e,))
        finally:
            self._inflight = False

    async def run(self):
        while True:
            self._wake.clear()  # before step(): a change during it wakes the next wait
            try:
                wait = self.step()
            except Exception as e:  # never let the task die; try again shortly
                log.exception("metering", e)
                wait = _MAX_WAIT_MS
            if wait <= 0:
                await sleep_ms(0)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), wait / 1000)
            except asyncio.TimeoutError:
                pass


def define_keys(s):
    n = len(MEASURANDS)
    rw = RW | PERSIST | OCPP
    s.define("MeterValueSampleInterval", INT, 60, rw, 0, 86400, alias="ocppi")
    s.define("ClockAlignedDataInterval", INT, 0, rw, 0, 86400, alias="ocppai")
    # MaxLength first: validating a restored list reads it.
    for key, default in (("MeterValuesSampledData", ENERGY), ("MeterValuesAlignedData", ENERGY),
                         ("StopTxnSampledData", ""), ("StopTxnAlignedData", "")):
        s.define(key + "MaxLength", INT, n, R | OCPP)
        s.define(key, CSL, default, rw, MEASURANDS, key + "MaxLength")
    s.define("ocppcm", INT, 0, RW | PERSIST, 0, 1)
