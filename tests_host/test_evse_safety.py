"""Safety invariants of the charge controller over long random sequences of EV
states, noisy pilot samples, faults, limits and commands (hypothesis).

Checked after every control tick:
- the contactor is never closed in A, B, E, F (or D without ventilation), with
  any fault, with residual current present, or with the lock not locked;
- it only ever closes after the PWM offer has been on for the close delay and
  the pilot sample of the closing tick, taken under that offer, showed the
  diode; once the offer is withdrawn it stays closed at most the stop grace time
  (the normal stop of IEC 61851-1);
- it is open in the same tick the controller reports state A, and in the tick
  of the first sample that shows A;
- no PWM offer without a plugged EV or with a fault;
- the phase relay only moves with the contactor open;
- a welded contactor stays latched until reset_fault() succeeds;
- an exception inside a driver during a tick leaves the contactor open, the PWM
  off and a fault latched, but for the temperature sensor, whose failed reading
  limits the offer to 6 A; a failing meter (ok False, or raising) changes none
  of the above.
"""
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.evse.codes import PILOT_C, PILOT_D, Cus, Err
from firmware.evse.pilot import PilotStateMachine
from tests_host.fakes import FakeMeter, Rig, pilot_levels

STOP_GRACE_MS = 3000
OFFER_BEFORE_CLOSE_MS = 100

ev_state = st.sampled_from("AABBCCCCCCDEF")
ACTIONS = {
    "ev": (12, st.tuples(st.just("ev"), ev_state)),
    "wait": (20, st.tuples(st.just("wait"), st.one_of(st.integers(1, 5), st.integers(1, 60), st.integers(100, 200)))),
    "auth": (4, st.tuples(st.just("auth"), st.booleans())),
    "limit": (4, st.tuples(st.just("limit"), st.sampled_from(["amp", "ocpp", "tcl", "ocppf"]),
                           st.one_of(st.none(), st.floats(0, 100, allow_nan=False), st.integers(0, 40)),
                           st.sampled_from([None, 1, 3]))),
    "enable": (2, st.tuples(st.just("enable"), st.booleans())),
    "frc": (2, st.tuples(st.just("frc"), st.integers(0, 2))),
    "psm": (2, st.tuples(st.just("psm"), st.integers(0, 2))),
    "phases": (2, st.tuples(st.just("phases"), st.sampled_from([None, 1, 2, 3]))),
    "ust": (1, st.tuples(st.just("ust"), st.integers(0, 2))),
    "unlock": (1, st.tuples(st.just("unlock"))),
    "reset": (3, st.tuples(st.just("reset"))),
    "heal": (4, st.tuples(st.just("heal"))),
    "rcm": (1, st.tuples(st.just("rcm"), st.integers(0, 1))),
    "rcm_irq": (1, st.tuples(st.just("rcm_irq"))),
    "weld": (2, st.tuples(st.just("weld"), st.sampled_from([None, None, 0, 1]))),
    "lock_stuck": (2, st.tuples(st.just("lock_stuck"), st.sampled_from([None, None, 0, 1]))),
    "diode": (2, st.tuples(st.just("diode"), st.booleans())),
    "draw": (3, st.tuples(st.just("draw"), st.one_of(st.none(), st.floats(0, 60, allow_nan=False)))),
    "temp": (2, st.tuples(st.just("temp"), st.one_of(st.none(), st.floats(20, 95, allow_nan=False)))),
    "glitch": (3, st.tuples(st.just("glitch"), st.integers(-13000, 13000))),
    "meter": (2, st.tuples(st.just("meter"), st.sampled_from(["ok", "fail", "raise"]))),
    "boom": (1, st.tuples(st.just("boom"), st.sampled_from(
        [("pilot_adc", "read"), ("contactor_feedback", "value"), ("lock_feedback", "value"),
         ("temperature", "read_c"), ("led", "value"), ("phase_relay", "value")]))),
}
# Weighted: mostly EV moves and time passing, faults rarer, and "heal" often
# enough that sequences keep returning to charging.
action = st.sampled_from([k for k, (w, _) in ACTIONS.items() for _ in range(w)]).flatmap(lambda k: ACTIONS[k][1])


class Checker:
    def __init__(self, rig, allow_d, seed, jitter):
        self.r = rig
        self.allow_d = allow_d
        self.rnd = random.Random(seed)
        self.jitter = jitter
        self.last_offer = None
        self.offer_since = None  # when the PWM offer started, None while off
        self.a_run = 0  # ticks in a row whose sample is clearly A
        self.welded = False
        self.max_dt = 20
        self.ticks = 0

    def tick(self, glitch=None):
        r = self.r
        dt = self.rnd.randint(5, 40) if self.jitter else 20
        self.max_dt = max(self.max_dt, dt)
        r.now += dt
        r._apply_ev()
        high, low = r.d.pilot_adc.sample
        noise = self.rnd.randint(-900, 900)
        high += noise
        if glitch is not None:
            high = glitch
        r.d.pilot_adc.set_mv(high, low + noise)
        before_closed = r.d.contactor.level
        before_relay = r.d.phase_relay.level
        # The PWM this tick's sample was taken under (the offer of the previous tick).
        before_offer_since = self.offer_since
        r.ctrl.tick(r.now)
        self.ticks += 1
        self.a_run = self.a_run + 1 if high >= 10900 else 0
        self.check(before_closed, before_relay, before_offer_since)

    def check(self, before_closed, before_relay, before_offer_since):
        r = self.r
        c = r.ctrl
        closed = r.d.contactor.level == 1
        offering = r.d.pilot_pwm.duty_u16() < 65535
        if offering:
            self.last_offer = r.now
            if self.offer_since is None:
                self.offer_since = r.now
        else:
            self.offer_since = None
        if closed:
            assert c.pilot_state == "C" or (c.pilot_state == "D" and self.allow_d), c.pilot_state
            assert c.fault == 0, c.fault
            assert r.d.rcm.level == 0
            assert r.d.lock.level == 1 and c.lock_status == Cus.LOCKED
            if not offering:
                assert c.stopping
                assert r.now - self.last_offer < STOP_GRACE_MS + self.max_dt
            else:
                assert c.offered_amps >= 6
            if not before_closed:
                assert offering, "closed in a tick without PWM offer"
                assert before_offer_since is not None, "closed in the tick the offer started"
                assert r.now - before_offer_since >= OFFER_BEFORE_CLOSE_MS, "closed before the EV saw the offer"
                assert r.diode, "closed without a diode check passing under PWM"
        if c.pilot_state == "A" or self.a_run >= 1:
            assert not closed
        if c.pilot_state in "AEF" or c.fault:
            assert not offering
        if r.d.phase_relay.level != before_relay:
            assert not before_closed and not closed
        if c.fault_latched == Err.CONTACTOR_STUCK:
            self.welded = True
        elif self.welded:
            raise AssertionError("weld latch lost without reset")


def apply(chk, a):
    r = chk.r
    c = r.ctrl
    kind = a[0]
    if kind == "ev":
        r.ev = a[1]
        chk.tick()
    elif kind == "wait":
        for _ in range(a[1]):
            chk.tick()
    elif kind == "glitch":
        chk.tick(glitch=a[1])
    elif kind == "auth":
        c.authorize(a[1])
    elif kind == "limit":
        c.set_limit(a[1], a[2], a[3])
    elif kind == "enable":
        c.enable(a[1])
    elif kind == "frc":
        c.set_force(a[1])
    elif kind == "psm":
        c.set_psm(a[1])
    elif kind == "phases":
        c.request_phases(a[1])
    elif kind == "ust":
        c.set_ust(a[1])
    elif kind == "unlock":
        c.unlock()
    elif kind == "reset":
        if c.reset_fault() is None:
            chk.welded = False
    elif kind == "heal":
        r.d.rcm.level = 0
        r.d.contactor_feedback.stuck = None
        r.d.lock_feedback.stuck = None
        r.diode = True
        r.draw = None
        r.d.temperature.celsius = 25.0
        r.d.meter.ok = True
        r.d.meter.error = None
        r.d.meter.update = FakeMeter.update.__get__(r.d.meter)
        if c.reset_fault() is None:
            chk.welded = False
        c.authorize(True)
        c.enable(True)
        c.set_force(0)
        r.ev = "C"
        chk.tick()
    elif kind == "rcm":
        r.d.rcm.level = a[1]
    elif kind == "rcm_irq":
        r.d.rcm.level = 1
        r.d.rcm.fire()
        assert r.d.contactor.level == 0
    elif kind == "weld":
        r.d.contactor_feedback.stuck = a[1]
    elif kind == "lock_stuck":
        r.d.lock_feedback.stuck = a[1]
    elif kind == "diode":
        r.diode = a[1]
    elif kind == "draw":
        r.draw = a[1]
    elif kind == "temp":
        r.d.temperature.celsius = a[1]
    elif kind == "meter":
        m = r.d.meter
        m.ok = a[1] != "fail"
        m.error = None if m.ok else "modbus timeout"
        m.update = FakeMeter.update.__get__(m) if a[1] != "raise" else _raise
    elif kind == "boom":
        boom(chk, *a[1])


def _raise(*args):
    raise RuntimeError("driver failed")


def boom(chk, name, method):
    """One tick with a driver method raising; if it was called, the tick must end safe."""
    r = chk.r
    drv = getattr(r.d, name)
    calls = []

    def failing(*args):
        calls.append(args)
        raise RuntimeError(name + " failed")

    setattr(drv, method, failing)
    try:
        chk.tick()
    finally:
        delattr(drv, method)
    if calls and name == "temperature":
        # A sensor that cannot be read is no fault: the guard limits the offer to the
        # minimum current until a reading succeeds (firmware/evse/temperature.py).
        assert not r.ctrl.offering or r.ctrl.offered_amps <= 6
        return
    if calls:
        assert r.d.contactor.level == 0, name
        assert r.d.pilot_pwm.duty_u16() == 65535
        assert not r.ctrl.offering and not r.ctrl.contactor_closed
        assert r.ctrl.fault_latched in (Err.UNKNOWN, Err.CONTACTOR_STUCK)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(action, min_size=100, max_size=400), allow_d=st.booleans(),
       seed=st.integers(0, 2 ** 32 - 1), jitter=st.booleans())
def test_safety_invariants_hold_over_random_sequences(actions, allow_d, seed, jitter):
    r = Rig({"allow_ventilation": allow_d, "phase_pause_ms": 500}, temperature=True)
    chk = Checker(r, allow_d, seed, jitter)
    # Start from a charging session so every sequence begins where it matters.
    r.ctrl.set_limit("amp", 16)
    r.ctrl.authorize(True)
    r.ev = "C"
    for _ in range(10):
        chk.tick()
    for a in actions:
        apply(chk, a)
    assert chk.ticks > 0


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from("ABCDEF"), st.integers(1, 6), st.integers(-900, 900)),
                      min_size=20, max_size=200))
def test_pilot_state_changes_only_after_debounce_samples_of_it(steps):
    levels = {"A": 12000, "B": 9000, "C": 6000, "D": 3000, "E": 0, "F": -12000}
    sm = PilotStateMachine(debounce=2)
    run_state, run_len = None, 0
    for s, n, noise in steps:
        for _ in range(n):
            before = sm.state
            sm.update(levels[s] + noise, -12000, False)
            raw = "ABCDEF".index(s)
            run_len = run_len + 1 if raw == run_state else 1
            run_state = raw
            if sm.state != before:
                # Debounced, except leaving C/D (fail-safe: counts at the first sample).
                assert sm.state == raw and (run_len >= 2 or before in (PILOT_C, PILOT_D))


@settings(max_examples=80, deadline=None)
@given(state=st.sampled_from("BCD"), noise=st.lists(st.integers(-900, 900), min_size=10, max_size=100))
def test_diode_present_never_faults_under_noise(state, noise):
    sm = PilotStateMachine()
    high, low = pilot_levels(state, True, diode=True)
    for n in noise:
        sm.update(high + n, low + n, True)
    assert not sm.diode_fault
