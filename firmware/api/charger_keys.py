"""The go-e charger keys (amp, frc, car, nrg, dwo, tcl, ...) over the charge
controller, and their effects: limits, force state, phase mode, cable lock,
session energy limit, temporary current limit, offline fallback current.

Each key is defined in the one settings registry, so the HTTP API, the REPL
config module and OCPP all see and validate the same values. define_keys()
runs before the feature modules (they watch frc, ...); setup(app) adds what
needs the board and the OCPP session, the status page and the periodic task.
"""
from firmware import log
from firmware.compat import sleep_ms, ticks_diff, ticks_ms
from firmware.settings import BOOL, FLOAT, INT, JSON, NULL, PERSIST, RW, SECRET, STR, W

TCL_LAPSE_MS = 600000  # go-e: tcl lapses after 10 min without refresh
_CHECK_MS = 1000


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

    def __init__(self, settings, controller, energy, max_amps, phases=3):
        self.settings = settings
        self.controller = controller
        self.energy = energy
        self.max_amps = max_amps
        self.phases = phases
        self.session = None  # OcppSession, for the offline fallback (ocppf)
        self._wh0 = None  # meter reading when the car was plugged in
        self._wh = 0.0  # energy of the last session once unplugged
        self._tcl_at = None  # ticks_ms of the last tcl write
        controller.add_listener(self._event)
        if controller.plugged:
            self._wh0 = self._meter_wh()

    def _meter_wh(self):
        m = self.controller.meter
        if m is not None and m.ok:
            return m.energy_wh
        return float(self.energy.total_wh)

    def session_wh(self):
        """go-e `wh`: energy since the car was plugged in (kept after unplug)."""
        if self._wh0 is None:
            return self._wh
        d = self._meter_wh() - self._wh0
        return round(d, 1) if d > 0 else 0.0

    def _event(self, event, data):
        if event == "plugged":
            self._wh0 = self._meter_wh()
            self._wh = 0.0
        elif event == "unplugged":
            self._wh = self.session_wh()
            self._wh0 = None
            # dwo is a limit for one session.
            if self.settings.get("dwo") is not None:
                self.settings.set("dwo", None)
            self.controller.set_limit("dwo", None)

    def ama_written(self, st):
        # Lowering ama lowers amp with it (persisted), so amp <= ama holds after a reboot too.
        s = self.settings
        if s.get("amp") > st.value:
            log.info("amp lowered to ama %d A" % st.value)
            s.set("amp", st.value)
        self.controller.set_limit("ama", st.value)

    def tcl_written(self, st):
        self._tcl_at = ticks_ms() if st.value is not None else None
        self.controller.set_limit("tcl", st.value)

    def check(self, now):
        """Periodic work (once a second): tcl lapse, dwo energy limit, ocppf."""
        s = self.settings
        c = self.controller
        if self._tcl_at is not None and ticks_diff(now, self._tcl_at) >= TCL_LAPSE_MS:
            self._tcl_at = None
            s.set("tcl", None)
        dwo = s.get("dwo")
        if dwo is not None and c.plugged and self.session_wh() >= dwo:
            if c.limit("dwo") is None:
                log.info("energy limit dwo=%s Wh reached" % dwo)
                c.set_limit("dwo", 0)
        elif c.limit("dwo") is not None:
            c.set_limit("dwo", None)
        sess = self.session
        if sess is not None:
            f = s.get("ocppf")
            offline = s.get("ocppe") and not sess.online.is_set()
            want = f if offline else None
            have = c.limit("ocppf")
            if (have is None) != (want is None) or (have is not None and have[0] != want):
                c.set_limit("ocppf", want)

    async def run(self):
        while True:
            try:
                self.check(ticks_ms())
            except Exception as e:  # noqa: BLE001 - the periodic check must keep running
                log.exception("charger keys", e)
            await sleep_ms(_CHECK_MS)

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


_pending = None  # ChargerKeys made by define_keys, completed by setup(app)


def define_keys(settings, controller, energy, reboot, max_amps=32):
    global _pending
    s = settings
    phases = 3
    cfg = getattr(controller, "config", None)
    if isinstance(cfg, dict):
        phases = cfg.get("phases", 3)
    ks = ChargerKeys(s, controller, energy, max_amps, phases)
    _pending = ks
    c = controller

    # Limits, each one source of the controller's minimum.
    s.define("ama", INT, max_amps, RW | PERSIST, 6, max_amps)
    # amp is restored before its ama check applies: a stored amp above ama
    # (or the default 16 under a lower ama) is clamped, not replaced by 16.
    amp = s.define("amp", INT, min(16, max_amps), RW | PERSIST, 6, max_amps)
    amp.check = _check_amp(s)
    if amp.value > s.get("ama"):
        s.set("amp", s.get("ama"))
    s.watch("amp", lambda st: c.set_limit("amp", st.value))
    s.watch("ama", ks.ama_written)
    s.define("tcl", INT, None, RW | NULL, 0, max_amps)
    s.watch("tcl", ks.tcl_written)
    s.define("dwo", FLOAT, None, RW | NULL, 0, 1000000)
    c.set_limit("amp", s.get("amp"))
    c.set_limit("ama", s.get("ama"))

    # Commands to the controller; its own checks are the validators' last word.
    s.define("frc", INT, 0, RW, 0, 2)
    s.watch("frc", lambda st: c.set_force(st.value))
    s.define("psm", INT, 0, RW | PERSIST, 0, 2)
    s.watch("psm", lambda st: c.set_psm(st.value))
    s.define("ust", INT, 0, RW | PERSIST, 0, 2)
    s.watch("ust", lambda st: c.set_ust(st.value))
    c.set_psm(s.get("psm"))
    c.set_ust(s.get("ust"))
    s.define("fna", STR, "OpenWallbox", RW | PERSIST, 0, 32)

    # Optional API protection (see api/http.py); off by default like go-e.
    s.define("apw", STR, "", W | PERSIST | SECRET, 0, 64)
    s.define("apr", BOOL, False, RW | PERSIST)

    # rst: any value reboots (clients send 1, true or "true").
    s.define("rst", JSON, None, W | NULL)
    s.watch("rst", lambda st: reboot())

    st = s.status
    st("car", lambda: c.car)
    st("err", lambda: c.err)
    st("modelStatus", lambda: c.model_status)
    st("alw", lambda: c.offering)
    st("acu", ks.acu)
    st("nrg", lambda: _nrg(c.meter))
    st("eto", lambda: energy.total_wh)
    st("wh", ks.session_wh)
    st("pha", ks.pha)
    st("pnp", ks.pnp)
    st("fsp", lambda: c.phases_active == 1)
    st("lck", lambda: c.ust)
    st("cus", lambda: c.lock_status)
    st("cbl", lambda: None)  # no proximity-pilot reading on the supported boards
    st("tma", lambda: [c.temperature_c] if c.temperature_c is not None else [])
    st("rbt", log.uptime_ms)
    st("var", ks.var)
    return ks


def setup(app):
    """Keys that need the board or the OCPP session, the status page and the periodic task."""
    from firmware.api.page import page
    from firmware.version import VENDOR, VERSION
    global _pending
    ks = _pending
    _pending = None
    s = app.settings
    board = app.board
    model = getattr(board, "model", "OpenWallbox")
    serial = getattr(board, "serial", None) or ""
    s.status("fwv", lambda: VERSION)
    s.status("oem", lambda: VENDOR)
    s.status("typ", lambda: model)
    s.status("sse", lambda: serial)
    # Offline fallback current: the limit while OCPP is enabled but not online.
    s.define("ocppf", INT, None, RW | PERSIST | NULL, 0, ks.max_amps if ks else 32)
    if ks is not None:
        ks.session = app.session
        app.tasks.append(ks.run)
    app.api.page = page
