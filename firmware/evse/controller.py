"""The charge controller: IEC 61851 pilot, contactor, phase switching, cable lock
and the safety interlocks, as one control step over injected drivers.

Safety rules this module owns:
- the contactor closes only in state C (or D when ventilation is configured),
  with the PWM offer on for offer_before_close_ms and the diode seen under it,
  the session authorized, no fault and the lock locked;
- it opens in the same tick on A, B, E, F, a refused D, residual current or any
  fault; the RCM interrupt opens it even before the next tick;
- a normal stop (deauthorize, limit below 6 A, force off, disable, phase switch,
  unlock) withdraws the PWM offer first and opens when the EV stops drawing, the
  EV goes back to B, or STOP_GRACE_MS passed;
- an exception inside a tick opens the contactor and latches fault Unknown.

Faults (go-e `err` numbers): latched ones stay until reset_fault(); those in
_CLEARED_BY_UNPLUG also clear when the EV unplugs. Live ones (overtemperature,
pilot E/F, refused D, lock stuck locked) last as long as their cause.

A steady-state tick allocates nothing on MicroPython: the state lives in
preallocated attributes and everything that allocates runs only on a change.
"""
from firmware.compat import const, print_exception, sleep_ms, ticks_add, ticks_diff, ticks_ms
from firmware.evse import codes, connector
from firmware.evse.codes import PILOT_A, PILOT_B, PILOT_C, PILOT_D, PILOT_E, PILOT_NAMES, Cus, Err, ModelStatus
from firmware.evse.actuators import CableLock, Contactor
from firmware.evse.led import StatusLed
from firmware.evse.limits import CurrentLimits, TemperatureGuard
from firmware.evse.phase_switch import PhaseSwitch
from firmware.evse.pilot import DUTY_OFF, MAX_DA, MIN_DA, PWM_FREQ, PilotStateMachine, amps_to_duty, duty_to_u16

_TICK_MS = const(20)

_FRC_NEUTRAL = const(0)
_FRC_OFF = const(1)
_FRC_ON = const(2)

_UST_NORMAL = const(0)  # locked while a car is connected
_UST_AUTO_UNLOCK = const(1)  # unlocks when charging is done
_UST_ALWAYS = const(2)  # always locked (unlock() releases it until the next plug)

_CLEARED_BY_UNPLUG = (Err.FI_DC, Err.DIODE, Err.OVERAMP, Err.LOCK_STUCK_OPEN, Err.CONTACTOR_MISS)

DEFAULTS = {
    "max_amps": 32,  # rating of the charger and its supply
    "phases": 3,  # phases installed
    "allow_ventilation": False,  # accept state D
    "tick_ms": _TICK_MS,
    # IEC 61851-1: the EV has 3 s to stop drawing after the PWM is withdrawn.
    "stop_grace_ms": 3000,
    "stop_current_a": 1.0,  # below this on every phase the EV counts as paused
    # The EV may take 5 s to follow a lower PWM offer.
    "overcurrent_margin_a": 2.0,
    "overcurrent_grace_ms": 5000,
    "contactor_settle_ms": 300,
    # The EV must have seen the PWM offer this long, and the last pilot sample
    # (taken under the PWM) must show C with the diode, before the contactor closes.
    "offer_before_close_ms": 100,
    "phase_pause_ms": 5000,
    "lock_timeout_ms": 1500,
    "temp_derate_c": 60,
    "temp_cutoff_c": 80,
    "temp_hyst_c": 5,
    "pilot_debounce": 2,
    "pilot_hysteresis_mv": 400,
    "psm": 0,
    "ust": _UST_NORMAL,
}


def _opt(config, key):
    d = DEFAULTS[key]
    if config is None:
        return d
    if isinstance(config, dict):
        return config.get(key, d)
    return getattr(config, key, d)


class ChargeController:
    def __init__(self, drivers, config=None):
        self.config = config
        self.tick_ms = _opt(config, "tick_ms")
        self.max_amps = _opt(config, "max_amps")
        self._allow_d = bool(_opt(config, "allow_ventilation"))
        self._stop_grace = _opt(config, "stop_grace_ms")
        self._stop_current = float(_opt(config, "stop_current_a"))
        self._oc_margin_da = int(_opt(config, "overcurrent_margin_a") * 10)
        self._oc_grace = _opt(config, "overcurrent_grace_ms")
        self._close_delay = _opt(config, "offer_before_close_ms")

        if hasattr(drivers, "controller"):
            drivers.controller = self
        self._pwm = drivers.pilot_pwm
        self._adc = drivers.pilot_adc
        self._relay = drivers.contactor
        self._rcm = drivers.rcm
        self.meter = drivers.meter
        self._pilot = PilotStateMachine(_opt(config, "pilot_debounce"), _opt(config, "pilot_hysteresis_mv"))
        self._contactor = Contactor(drivers.contactor, drivers.contactor_feedback, _opt(config, "contactor_settle_ms"))
        self._phase = PhaseSwitch(drivers.phase_relay, _opt(config, "phases"), _opt(config, "phase_pause_ms"))
        self._lock = None
        if drivers.lock is not None:
            self._lock = CableLock(drivers.lock, drivers.lock_feedback, _opt(config, "lock_timeout_ms"))
        self._temp = None
        if drivers.temperature is not None:
            self._temp = TemperatureGuard(drivers.temperature, self.max_amps, _opt(config, "temp_derate_c"),
                                          _opt(config, "temp_cutoff_c"), _opt(config, "temp_hyst_c"))
        self._led = StatusLed(drivers.led) if drivers.led is not None else None
        self._limits = CurrentLimits(self.max_amps)

        # Commands
        self._enabled = True
        self._authorized = False
        self._frc = _FRC_NEUTRAL
        self._psm = _opt(config, "psm")
        self._ust = _opt(config, "ust")
        self._phase_req = None
        self._unlock_req = False
        self._hold = False  # cable kept locked after the EV side disconnected

        # State
        self._plugged = False
        self._finishing = False  # session ended while the EV stays plugged
        self._delivered = False  # contactor closed at least once in this session
        self._offering = False
        self._duty = DUTY_OFF
        self._offer_da = 0
        self._offer_limit_da = 0  # the limit of this tick, clipped to the pilot's range
        self._lock_ok = True  # the cable lock confirms locked (or there is none)
        self._offer_since = 0  # when the PWM offer last started
        self._oc_limit = 0.0  # A: current above which the EV overdraws the offer
        self._oc = False
        self._oc_since = 0
        self._stopping = False
        self._stop_since = 0
        self._latched = 0
        self._live = 0
        self._reason = None  # vendor error code of the current fault
        self._fault_seen = 0
        self._status = None
        self._rcm_trip = 0  # set by the RCM interrupt
        self._meter_exc = False
        self._crash_seen = False  # an exception in a tick was reported since the last reset
        self._listeners = []
        self.tick_count = 0
        self.gap_max_ms = 0  # longest time between two ticks of run(): what the other tasks cost it

        self._pwm.freq(PWM_FREQ)
        self._pwm.duty_u16(duty_to_u16(DUTY_OFF))
        # Bound method made once: an ISR must not allocate one per call.
        self._rcm_handler = self._rcm_isr
        if self._rcm is not None and hasattr(self._rcm, "irq"):
            self._rcm.irq(handler=self._rcm_handler)

    # ---- interrupt ----

    def _rcm_isr(self, _pin):
        # ISR: ints and a pin write only. Opening here, not just flagging, cuts
        # the reaction to residual current from a tick to microseconds.
        if self._rcm.value():
            self._rcm_trip = 1
            self._relay.value(0)

    # ---- commands ----

    def set_limit(self, source, amps, phases=None, status=ModelStatus.LOAD_MANAGEMENT):
        """Limit from one named source (amps None removes it); the offer is the minimum.
        status: the go-e modelStatus while this source stops the charging. None or an error message."""
        return self._limits.set(source, amps, phases, status)

    def authorize(self, on):
        """Session authorized (transaction running) or not."""
        on = bool(on)
        if on == self._authorized:
            return
        self._authorized = on
        if on:
            self._finishing = False
            self._delivered = False
        elif self._plugged:
            self._finishing = True

    def enable(self, on):
        """Availability: a disabled connector stops charging and reports Unavailable."""
        self._enabled = bool(on)

    def set_force(self, mode):
        """go-e frc: 0 neutral, 1 off, 2 on."""
        if mode not in (0, 1, 2) or isinstance(mode, bool):
            return "frc: value must be 0, 1 or 2"
        self._frc = mode
        return None

    def set_psm(self, mode):
        """go-e psm: 0 auto, 1 force 1-phase, 2 force 3-phase."""
        if mode not in (0, 1, 2) or isinstance(mode, bool):
            return "psm: value must be 0, 1 or 2"
        self._psm = mode
        return None

    def set_ust(self, mode):
        """go-e ust: 0 lock while a car is connected, 1 unlock when done, 2 always locked."""
        if mode not in (0, 1, 2) or isinstance(mode, bool):
            return "ust: value must be 0, 1 or 2"
        self._ust = mode
        return None

    def request_phases(self, n):
        """Phases wanted by OCPP smart charging (numberOfPhases); None withdraws the wish."""
        if n is not None and (isinstance(n, bool) or n not in (1, 2, 3)):
            return "numberOfPhases must be 1, 2 or 3"
        self._phase_req = n
        return None

    def unlock(self):
        """UnlockConnector: stop charging, then unlock. None when started (watch lock_status), else why not."""
        if self._lock is None:
            return "no cable lock"
        if self._latched == Err.CONTACTOR_STUCK:
            return "contactor welded: the socket stays locked"
        c = self._contactor
        if not c.closed and c.feedback_closed():
            # Commanded open but still reads closed: a weld not latched yet (or
            # hidden behind an earlier fault). The socket contacts may be live.
            return "contactor still closed: the socket stays locked"
        self._unlock_req = True
        self._hold = False
        return None

    def hold_lock(self, on):
        """Keep the cable locked in the socket while no EV is plugged (OCPP
        UnlockConnectorOnEVSideDisconnect false) until hold_lock(False) or unlock().
        Only the lock: the contactor opens exactly as without the hold."""
        self._hold = bool(on)

    def reset_fault(self):
        """Clears a latched fault when its cause is gone. None, or why not."""
        f = self._latched
        if not f:
            return None
        # Whatever the fault: a contactor that reads closed may be welded.
        if self._contactor.feedback_closed():
            return "contactor still closed"
        if f == Err.FI_DC and self._rcm is not None and self._rcm.value():
            return "residual current still present"
        self._clear_latched()
        return None

    def add_listener(self, fn):
        """fn(event, data), called from the control task (never from an ISR)."""
        self._listeners.append(fn)

    # ---- control step ----

    def tick(self, now):
        """One control step at time now (ticks_ms)."""
        # Kept below 2**30: a larger int would be a heap object on the ESP32 (after ~248 days).
        self.tick_count = (self.tick_count + 1) & 0x3FFFFFFF
        try:
            self._step(now)
        except Exception as e:  # noqa: BLE001 - the loop must survive anything, relay open
            self._crash(e)

    async def run(self):
        period = self.tick_ms
        due = ticks_ms()
        last = due
        while True:
            now = ticks_ms()
            gap = ticks_diff(now, last)
            if gap > self.gap_max_ms:
                self.gap_max_ms = gap
            last = now
            self.tick(now)
            due = ticks_add(due, period)
            delay = ticks_diff(due, ticks_ms())
            if delay < 0:
                # Overran (a long task held the loop): start a fresh schedule.
                due = ticks_ms()
                delay = 0
            await sleep_ms(delay)

    def _step(self, now):
        pilot = self._pilot
        high, low = self._adc.read()
        prev = pilot.state
        st = pilot.update(high, low, self._duty < DUTY_OFF)
        meter = self._read_meter(now)
        plug_event = self._plug_change(st, prev)
        plugged = self._plugged and st <= PILOT_D
        # No tuples between the parts: a steady-state tick allocates nothing.
        fault = self._faults(now, st, meter)
        offer = self._offer(now, fault, plugged)
        self._drive_contactor(now, st, fault, offer, meter)
        self._drive_pwm(now, offer)
        self._events(now, st, plug_event)

    def _read_meter(self, now):
        """The meter after its update, or None while it fails: no over-current or
        pause detection from stale values."""
        meter = self.meter
        if meter is None:
            return None
        try:
            meter.update(now)
            self._meter_exc = False
        except Exception as e:  # noqa: BLE001 - a meter bug is a meter failure, not a crash
            if not self._meter_exc:
                print_exception(e)
            self._meter_exc = True
        if self._meter_exc or not meter.ok:
            return None
        return meter

    def _plug_change(self, st, prev):
        """1 plugged, -1 unplugged, 0 no change."""
        if st == prev:
            return 0
        if st == PILOT_A:
            if self._plugged:
                self._plugged = False
                self._on_unplug()
                return -1
        elif st <= PILOT_D and not self._plugged:
            self._plugged = True
            self._unlock_req = False
            return 1
        return 0

    def _faults(self, now, st, meter):
        """Latches and live faults of this tick; returns the fault, sets _lock_ok."""
        c = self._contactor
        if self._rcm_trip or (self._rcm is not None and self._rcm.value()):
            self._latch(Err.FI_DC, "RCM")
        if self._pilot.diode_fault:
            self._latch(Err.DIODE, "Diode")
        f = c.check(now)
        if f:
            self._latch(f, "Welded" if f == Err.CONTACTOR_STUCK else "ContactorMissing")
        self._check_overcurrent(now, meter)
        tg = self._temp
        if tg is not None and tg.update(now):
            self._limits.set("temp", tg.limit_amps, None, ModelStatus.OVERTEMP)
        lock = self._lock
        self._lock_ok = True
        if lock is not None:
            # Sticky plug state: a passing E or F must not make the lock cycle.
            lock.command(now, self._lock_wanted(self._plugged))
            lock.update(now)
            self._lock_ok = lock.is_locked()
            if lock.failure == Err.LOCK_STUCK_OPEN:
                self._latch(Err.LOCK_STUCK_OPEN, "LockStuckOpen")
        live = 0
        reason = None
        if tg is not None and tg.overtemp:
            live = Err.OVERTEMP
            reason = "Overtemp"
        elif st >= PILOT_E:
            live = Err.UNKNOWN
            reason = "PilotE" if st == PILOT_E else "PilotF"
        elif st == PILOT_D and not self._allow_d:
            live = Err.UNKNOWN
            reason = "VentilationRequired"
        elif lock is not None and lock.failure == Err.LOCK_STUCK_LOCKED:
            live = Err.LOCK_STUCK_LOCKED
            reason = "LockStuckLocked"
        self._live = live
        if not self._latched:
            self._reason = reason
        return self._latched or live

    def _offer(self, now, fault, plugged):
        """Phases, then whether charging is offered (at _offer_limit_da deci-amps)."""
        ph = self._phase
        c = self._contactor
        was = ph.active
        # The relay waits for the feedback too: it must never switch under a
        # contactor that is still opening, or welded.
        phase_busy = ph.update(now, ph.desired(self._psm, self._wanted_phases()),
                               c.closed or c.feedback_closed(), plugged)
        if ph.active != was and self.meter is not None and hasattr(self.meter, "phases"):
            self.meter.phases = ph.active  # meters that estimate per-phase values need it
        da = self._limits.deci_amps
        if da > MAX_DA:
            da = MAX_DA
        self._offer_limit_da = da
        return (fault == 0 and plugged and self._enabled and self._authorized and self._frc != _FRC_OFF
                and not self._unlock_req and not phase_busy and self._lock_ok and da >= MIN_DA)

    def _drive_contactor(self, now, st, fault, offer, meter):
        c = self._contactor
        lock_ok = self._lock_ok
        charge_state = st == PILOT_C or (st == PILOT_D and self._allow_d)
        # A lock that stops confirming under load may let the plug out: hard stop.
        if fault or not charge_state or not lock_ok:
            c.open()
        elif offer:
            self._stopping = False
            # Close only once the EV has had the offer for a while and the sample
            # of this tick, taken under that offer, shows C with a working diode.
            # The RCM ISR may have fired since the fault check.
            if (not c.closed and self._pilot.pwm_ok and not self._rcm_trip
                    and ticks_diff(now, self._offer_since) >= self._close_delay):
                c.close()
        elif c.closed:
            # Normal stop: the offer goes first; the contactor follows.
            if not self._stopping:
                self._stopping = True
                self._stop_since = now
            elif ticks_diff(now, self._stop_since) >= self._stop_grace or self._ev_paused(meter):
                c.open()
        else:
            c.open()
        if not c.closed:
            self._stopping = False
        elif offer:
            self._delivered = True

    def _drive_pwm(self, now, offer):
        da = self._offer_limit_da
        duty = amps_to_duty(da) if offer else DUTY_OFF
        self._offering = offer
        if duty != self._duty:
            if self._duty == DUTY_OFF:
                self._offer_since = now
            self._duty = duty
            self._pwm.duty_u16(duty_to_u16(duty))
        oda = da if offer else 0
        if oda != self._offer_da:
            self._offer_da = oda
            # The one float of the loop, made only when an offer starts or changes:
            # stop paths stay allocation-free.
            if oda:
                m = oda // 10 if oda // 10 > self._oc_margin_da else self._oc_margin_da
                self._oc_limit = (oda + m) / 10

    def _events(self, now, st, plug_event):
        if plug_event:
            self._emit("plugged" if plug_event > 0 else "unplugged", PILOT_NAMES[st])
        fault = self._latched or self._live
        if fault != self._fault_seen:
            old = self._fault_seen
            self._fault_seen = fault
            if fault:
                self._emit("fault", fault)
            else:
                self._emit("fault_cleared", old)
        self._update_status()
        if self._led is not None:
            self._led.update(now)

    def _wanted_phases(self):
        req = self._phase_req
        lp = self._limits.phases
        if lp is not None and (req is None or lp < req):
            return lp
        return req

    def _lock_wanted(self, plugged):
        lock = self._lock
        if self._latched == Err.CONTACTOR_STUCK:
            return True  # the socket contacts may be live
        if self._unlock_req:
            want = False
        elif self._ust == _UST_ALWAYS or self._hold:
            want = True
        elif self._ust == _UST_AUTO_UNLOCK:
            want = plugged and not self.complete
        else:
            want = plugged
        # Never unlock under load: the offer goes, then the contactor, then the lock.
        if not want and (self._contactor.closed or self._contactor.feedback_closed()):
            return lock.locked_cmd
        return want

    def _check_overcurrent(self, now, meter):
        if not (self._contactor.closed and self._offer_da and meter is not None):
            self._oc = False
            return
        cur = meter.current
        lim = self._oc_limit
        if cur[0] > lim or cur[1] > lim or cur[2] > lim:
            if not self._oc:
                self._oc = True
                self._oc_since = now
            elif ticks_diff(now, self._oc_since) >= self._oc_grace:
                self._latch(Err.OVERAMP, "Overcurrent")
        else:
            self._oc = False

    def _ev_paused(self, meter):
        if meter is None:
            return False
        cur = meter.current
        lim = self._stop_current
        return cur[0] < lim and cur[1] < lim and cur[2] < lim

    def _latch(self, code, reason):
        # A weld outranks whatever came first: it decides what stays locked and
        # what reset_fault() needs, so it must be what is reported.
        if not self._latched or (code == Err.CONTACTOR_STUCK and self._latched != code):
            self._latched = code
            self._reason = reason

    def _clear_latched(self):
        self._latched = 0
        self._reason = None
        self._rcm_trip = 0
        self._pilot.diode_fault = False
        self._oc = False
        self._crash_seen = False

    def _on_unplug(self):
        self._finishing = False
        self._delivered = False
        if self._latched in _CLEARED_BY_UNPLUG:
            if not (self._latched == Err.FI_DC and self._rcm is not None and self._rcm.value()):
                self._clear_latched()

    def _update_status(self):
        s = connector.ocpp_status(self)
        if s == self._status:
            return
        self._status = s
        if self._led is not None:
            self._led.show(s)
        self._emit("status", s)
        if s == codes.CHARGING:
            self._emit("charging", None)
        elif s == codes.SUSPENDED_EV:
            self._emit("suspended_ev", None)
        elif s == codes.SUSPENDED_EVSE:
            self._emit("suspended_evse", None)

    def _emit(self, event, data):
        for fn in self._listeners:
            try:
                fn(event, data)
            except Exception as e:  # noqa: BLE001 - a listener bug must not stop the control loop
                print_exception(e)

    def _crash(self, e):
        # Outputs first, each on its own: the failing part may be one of them.
        try:
            self._relay.value(0)
        except Exception:  # noqa: BLE001
            pass
        try:
            self._contactor.closed = False
            self._offering = False
            self._duty = DUTY_OFF
            self._offer_da = 0
            self._pwm.duty_u16(duty_to_u16(DUTY_OFF))
        except Exception:  # noqa: BLE001
            pass
        if self._crash_seen:
            return  # already reported; do not flood the log every tick
        self._crash_seen = True
        print_exception(e)
        if self._latched == Err.CONTACTOR_STUCK:
            return  # a weld stays what is reported
        self._latched = Err.UNKNOWN
        self._reason = "Internal"
        try:
            self._fault_seen = Err.UNKNOWN
            self._emit("fault", Err.UNKNOWN)
            self._update_status()
        except Exception:  # noqa: BLE001
            pass

    # ---- state ----

    @property
    def pilot(self):
        """Pilot state as a small int (codes.PILOT_A..PILOT_F)."""
        return self._pilot.state

    @property
    def pilot_state(self):
        return PILOT_NAMES[self._pilot.state]

    @property
    def plugged(self):
        return self._plugged

    @property
    def duty_permille(self):
        return self._duty

    @property
    def duty(self):
        """PWM duty in percent (100 = steady +12 V, no offer)."""
        d = self._duty
        return d // 10 if d % 10 == 0 else d / 10

    @property
    def offering(self):
        return self._offering

    @property
    def offered_amps(self):
        """Amps the PWM offers now; 0 when no charging is offered."""
        d = self._offer_da
        return d // 10 if d % 10 == 0 else d / 10

    @property
    def limit_deci_amps(self):
        return self._limits.deci_amps

    @property
    def limit_amps(self):
        """Minimum over all limit sources and the rating (what would be offered)."""
        d = self._limits.deci_amps
        return d // 10 if d % 10 == 0 else d / 10

    @property
    def limit_source(self):
        return self._limits.source

    @property
    def limit_status(self):
        """The go-e modelStatus the limiting source gave (None: the hardware rating limits)."""
        return self._limits.status

    @property
    def led(self):
        """The status LED, or None without one (its OCPP keys set intensity and blinking)."""
        return self._led

    def limit(self, source):
        """(amps, phases) set by one source, or None."""
        return self._limits.get(source)

    @property
    def contactor_closed(self):
        return self._contactor.closed

    @property
    def stopping(self):
        """Offer withdrawn, contactor still closed, waiting for the EV to pause."""
        return self._stopping

    @property
    def phases_active(self):
        return self._phase.active

    @property
    def phase_switching(self):
        return self._phase.stage != 0

    @property
    def fault(self):
        return self._latched or self._live

    @property
    def fault_latched(self):
        return self._latched

    @property
    def vendor_error_code(self):
        """Why the fault, for OCPP vendorErrorCode; None without a fault."""
        if self._latched or self._live:
            return self._reason
        if self.meter_failed:
            return self.meter.error or "MeterException"
        return None

    @property
    def meter_failed(self):
        m = self.meter
        return m is not None and (self._meter_exc or not m.ok)

    @property
    def enabled(self):
        return self._enabled

    @property
    def authorized(self):
        return self._authorized

    @property
    def finishing(self):
        return self._finishing

    @property
    def complete(self):
        """Charging done while the EV stays plugged (go-e car 4)."""
        if self._finishing:
            return True
        return self._delivered and self._pilot.state == PILOT_B and not self._contactor.closed

    @property
    def force(self):
        return self._frc

    @property
    def psm(self):
        return self._psm

    @property
    def ust(self):
        return self._ust

    @property
    def ocpp_status(self):
        if self._status is None:
            return connector.ocpp_status(self)
        return self._status

    @property
    def ocpp_error_code(self):
        return connector.ocpp_error_code(self)

    @property
    def car(self):
        return connector.car(self)

    err = fault  # go-e `err` is the fault number

    @property
    def model_status(self):
        return connector.model_status(self)

    @property
    def lock_status(self):
        """go-e cus; 0 (unknown) without a cable lock."""
        return self._lock.status if self._lock is not None else Cus.UNKNOWN

    @property
    def lock_held(self):
        return self._hold

    @property
    def lock_fitted(self):
        return self._lock is not None

    @property
    def temperature_c(self):
        return self._temp.celsius if self._temp is not None else None
