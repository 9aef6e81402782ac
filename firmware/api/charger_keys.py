"""The go-e charger keys (amp, frc, car, nrg, dwo, tcl, ...) mapped onto the
charge controller and its local limits (evse/local_limits.py).

define_keys() only declares the keys (the REPL config module needs nothing
more); ChargerKeys binds them to the running controller: watchers, status
getters, the session energy `wh`.
"""
from firmware import log
from firmware.evse import local_limits
from firmware.settings import BOOL, FLOAT, INT, JSON, NULL, PERSIST, RW, SECRET, STR, W
from firmware.version import VENDOR, VERSION


def _nrg(meter):
    """go-e `nrg`: always 16 entries, plain units (V, A, W, percent)."""
    if meter is None:
        return [0] * 16
    v, a, w, pf = meter.voltage, meter.current, meter.power, meter.pf
    return [round(v[0]), round(v[1]), round(v[2]), 0,
            round(a[0], 2), round(a[1], 2), round(a[2], 2),
            round(w[0]), round(w[1]), round(w[2]), 0, round(meter.power_w),
            round(pf[0] * 100), round(pf[1] * 100), round(pf[2] * 100), 0]


class ChargerKeys:
    """The state behind the keys that are more than a stored value."""

    def __init__(self, settings, controller, energy, reboot, board):
        """reboot(): the rst key; board: model and serial for typ and sse."""
        self.settings = settings
        self.controller = controller
        self.energy = energy
        self.max_amps = controller.max_amps
        cfg = controller.config
        self.phases = cfg.get("phases", 3) if isinstance(cfg, dict) else 3
        self._wh0 = None  # meter reading when the car was plugged in
        self._wh = 0.0  # energy of the last session once unplugged
        controller.add_listener(self._event)
        if controller.plugged:
            self._wh0 = self._meter_wh()
        self._bind(reboot, board)

    def map_limits(self, limits):
        """tcl, dwo and ocppf set the controller's local limits (a LocalLimits)."""
        s = self.settings
        s.watch("tcl", lambda st: limits.set_temporary(st.value))
        s.watch("dwo", lambda st: limits.set_energy(st.value))
        s.watch("ocppf", lambda st: limits.set_fallback(st.value))
        limits.set_fallback(s.get("ocppf"))

    def limit_ended(self, name):
        """A local limit ended by itself (tcl lapsed, dwo at unplug): its key reads null."""
        key = "tcl" if name == local_limits.TEMPORARY else "dwo"
        if self.settings.get(key) is not None:
            self.settings.set(key, None)

    def _meter_wh(self):
        # The one register behind eto, MeterValues and meterStart/meterStop: never
        # the meter's own reading, which restarts, lags or leads it.
        return self.energy.total_wh

    def follow(self, transactions):
        """Count `wh` from the transactions' own meterStart/meterStop (without a
        call: all the register counted since plug-in)."""
        self._txs = transactions
        self._done = 0  # Wh of the transactions that ended in this plug-in session
        self._tx0 = None  # register when the running transaction started (or the EV plugged in during it)
        transactions.on_start(self._tx_started)
        transactions.on_stop(self._tx_stopped)

    def _tx_started(self, tx):
        self._tx0 = tx.meter_start

    def _tx_stopped(self, tx):
        if self._tx0 is not None and self._wh0 is not None:
            # meterStop: the transaction module flushed the register just now.
            end = self._meter_wh()
            self._done += (end if end > tx.meter_start else tx.meter_start) - self._tx0
        self._tx0 = None
        if not self.controller.plugged and self._wh0 is not None:
            self._end_session()  # the EV had left: the stop ends its session

    def session_wh(self):
        """go-e `wh`: energy of this plug-in session (kept after unplug), in whole Wh
        of the eto register: what its transactions counted, meterStop - meterStart
        each, so wh <= eto - (eto when the car was plugged in) at every moment."""
        if self._wh0 is None:
            return self._wh
        now = self._meter_wh()
        if getattr(self, "_txs", None) is None:
            d = now - self._wh0
        else:
            d = self._done + (now - self._tx0 if self._tx0 is not None else 0)
        return d if d > 0 else 0

    def _event(self, event, data):
        if event == "plugged":
            self._wh0 = self._meter_wh()
            self._wh = 0
            if getattr(self, "_txs", None) is not None:
                self._done = 0
                if self._tx0 is not None:
                    self._tx0 = self._wh0  # a transaction that went on unplugged counts again from here
        elif event == "unplugged":
            # A transaction still running counts on to its meterStop (the
            # register's last Wh are taken when it stops); then the session ends.
            if getattr(self, "_txs", None) is None or self._tx0 is None:
                self._end_session()

    def _end_session(self):
        self._wh = self.session_wh()
        self._wh0 = None

    def ama_written(self, st):
        # Lowering ama lowers amp with it (persisted), so amp <= ama holds after a reboot too.
        s = self.settings
        if s.get("amp") > st.value:
            log.info("amp lowered to ama %d A" % st.value)
            s.set("amp", st.value)
        self.controller.set_limit("ama", st.value)


    def _bind(self, reboot, board):
        s = self.settings
        c = self.controller
        energy = self.energy
        s.watch("amp", lambda st: c.set_limit("amp", st.value))
        s.watch("ama", self.ama_written)
        c.set_limit("amp", s.get("amp"))
        c.set_limit("ama", s.get("ama"))
        s.watch("frc", lambda st: c.set_force(st.value))
        s.watch("psm", lambda st: c.set_psm(st.value))
        s.watch("ust", lambda st: c.set_ust(st.value))
        c.set_psm(s.get("psm"))
        c.set_ust(s.get("ust"))
        s.watch("rst", lambda st: reboot())
        b = s.bind
        b("car", lambda: c.car)
        b("err", lambda: c.err)
        b("modelStatus", lambda: c.model_status)
        b("alw", lambda: c.offering)
        b("acu", self.acu)
        b("nrg", lambda: _nrg(c.meter))
        b("eto", lambda: energy.total_wh)
        b("wh", self.session_wh)
        b("pha", self.pha)
        b("pnp", self.pnp)
        b("fsp", lambda: c.phases_active == 1)
        b("lck", lambda: c.ust)
        b("cus", lambda: c.lock_status)
        b("cbl", lambda: None)  # no proximity-pilot reading on the supported boards
        b("tma", lambda: [c.temperature_c] if c.temperature_c is not None else [])
        b("var", self.var)
        model = getattr(board, "model", "OpenWallbox")
        serial = getattr(board, "serial", None) or ""
        b("typ", lambda: model)
        b("sse", lambda: serial)

    # -- read-only values ------------------------------------------------------
    def pha(self):
        """Phases after the contactor L1..L3, then before it L1..L3."""
        c = self.controller
        m = c.meter
        n = c.phases_active if c.contactor_closed else 0
        out = [n >= 1, n >= 2, n >= 3, False, False, False]
        for i in range(3):
            out[3 + i] = (m.voltage[i] > 100) if m is not None and m.ok else i < self.phases
        return out

    def acu(self):
        c = self.controller
        if not c.offering:
            return None
        return int(c.offered_amps)

    def pnp(self):
        c = self.controller
        return c.phases_active if c.contactor_closed else 0

    def var(self):
        return 22 if self.max_amps * self.phases * 230 > 11500 else 11


def _check_amp(settings):
    def check(v):
        ama = settings.get("ama")
        if v > ama:
            return "value %d exceeds ama %d" % (v, ama)
        return None
    return check


def define_keys(settings, max_amps=32):
    """Every key of this module, without a controller (see module docstring)."""
    s = settings
    # Limits, each one source of the controller's minimum.
    s.define("ama", INT, max_amps, RW | PERSIST, 6, max_amps)
    # amp is restored before its ama check applies: a stored amp above ama
    # (or the default 16 under a lower ama) is clamped, not replaced by 16.
    amp = s.define("amp", INT, min(16, max_amps), RW | PERSIST, 6, max_amps)
    amp.check = _check_amp(s)
    if amp.value > s.get("ama"):
        s.set("amp", s.get("ama"))
    s.define("tcl", INT, None, RW | NULL, 0, max_amps)
    s.define("dwo", FLOAT, None, RW | NULL, 0, 1000000)

    # Commands to the controller; its own checks are the validators' last word.
    s.define("frc", INT, 0, RW, 0, 2)
    s.define("psm", INT, 0, RW | PERSIST, 0, 2)
    s.define("ust", INT, 0, RW | PERSIST, 0, 2)
    s.define("fna", STR, "OpenWallbox", RW | PERSIST, 0, 32)

    # Optional API protection (see api/http.py); off by default like go-e.
    s.define("apw", STR, "", W | PERSIST | SECRET, 0, 64)
    s.define("apr", BOOL, False, RW | PERSIST)

    # rst: any value reboots (clients send 1, true or "true").
    s.define("rst", JSON, None, W | NULL)
    for k in _STATUS:
        s.status(k, None)  # bound by ChargerKeys
    s.status("rbt", log.uptime_ms)
    s.status("var", None)
    s.status("fwv", lambda: VERSION)
    s.status("oem", lambda: VENDOR)
    for k in ("typ", "sse"):
        s.status(k, None)
    # Offline fallback current: the limit while OCPP is enabled but not online.
    s.define("ocppf", INT, None, RW | PERSIST | NULL, 0, max_amps)


_STATUS = ("car", "err", "modelStatus", "alw", "acu", "nrg", "eto", "wh", "pha", "pnp", "fsp", "lck", "cus", "cbl",
           "tma")
