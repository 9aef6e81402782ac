"""Connector status against OCPP 1.6 section 4.9: every published transition is
in the spec's table, and every fault the firmware can raise is reported with a
status and errorCode pair the spec allows (ocpp16-notes.md decision 12)."""
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.evse import codes, connector
from firmware.evse.codes import PILOT_A, PILOT_B, PILOT_C, Err
from firmware.ocpp import status as ocpp_status
from tests_host.app_stepper import AppStepper

ROOT = Path(__file__).resolve().parent.parent

# OCPP 1.6 edition 2, 4.9: rows "from", columns "to"; x = a listed transition.
_COLS = ("Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Reserved",
         "Unavailable", "Faulted")
_TABLE = {
    # from            Av Pr Ch SEV SEVSE Fi Re Un Fa
    "Available":     "-  x  x  x   x     -  x  x  x",
    "Preparing":     "x  -  x  x   x     x  -  -  x",
    "Charging":      "x  -  -  x   x     x  -  x  x",
    "SuspendedEV":   "x  -  x  -   x     x  -  x  x",
    "SuspendedEVSE": "x  -  x  x   -     x  -  x  x",
    "Finishing":     "x  x  -  -   -     -  -  x  x",
    "Reserved":      "x  x  -  -   -     -  -  x  x",
    "Unavailable":   "x  x  x  x   x     -  -  -  x",
    "Faulted":       "x  x  x  x   x     x  x  x  -",
}
SPEC = {(a, b) for a, row in _TABLE.items() for b, m in zip(_COLS, row.split()) if m == "x"}
EV_WARNING = {"Preparing", "SuspendedEV", "SuspendedEVSE", "Finishing"}


def spec_allows(a, b):
    return a == b or (a, b) in SPEC


def pair_allowed(status, error_code, vendor_error_code):
    """4.9 and decision 12: EVCommunicationError only as a warning beside four
    statuses; Faulted with a real error code; OtherError explained by a vendor code."""
    if error_code == "EVCommunicationError" and status not in EV_WARNING:
        return False
    if status == "Faulted" and error_code == "NoError":
        return False
    if error_code == "OtherError" and not vendor_error_code:
        return False
    return True


def test_the_firmware_table_is_the_spec_table():
    for a in _COLS:
        for b in _COLS:
            assert ocpp_status.allowed(a, b) == spec_allows(a, b), (a, b)


def test_every_transition_missing_from_the_table_has_a_bridge_the_table_allows():
    for a in _COLS:
        for b in _COLS:
            if not spec_allows(a, b):
                via = ocpp_status.bridge(a, b)
                assert via is not None and spec_allows(a, via) and spec_allows(via, b), (a, b, via)


# ---- faults: status and errorCode pairs --------------------------------------------------

def _raised_reasons():
    """Every vendor reason the controller attaches to a fault, read from its source,
    so a fault added there is checked here without editing this test."""
    src = (ROOT / "firmware" / "evse" / "controller.py").read_text()
    found = set(re.findall(r'_latch\(Err\.\w+, "(\w+)"\)', src))
    found |= set(re.findall(r'reason = "(\w+)"', src))
    found |= set(re.findall(r'self\._reason = "(\w+)"', src))
    for pair in re.findall(r'"(\w+)" if \w+ == Err\.\w+ else "(\w+)"', src):
        found |= set(pair)  # _latch(f, "Welded" if f == Err.CONTACTOR_STUCK else "ContactorMissing")
    found |= set(re.findall(r'"(Pilot\w)"', src))
    return sorted(found)


ERRS = sorted(v for k, v in vars(Err).items() if not k.startswith("_") and v)


def _ctrl(fault, reason, pilot, **kw):
    base = dict(fault=fault, err=fault, enabled=True, pilot=pilot, plugged=pilot != PILOT_A, authorized=True,
                finishing=False, offering=True, meter_failed=False, vendor_error_code=reason, meter=None)
    base.update(kw)
    c = SimpleNamespace(**base)
    c.ocpp_status = connector.ocpp_status(c)
    c.ocpp_error_code = connector.ocpp_error_code(c)
    return c


def _reporter(c):
    from firmware.ocpp.connector_status import StatusHolds
    from firmware.settings import Settings
    s = Settings()
    ocpp_status.define_keys(s)
    c.add_listener = lambda fn: None
    session = SimpleNamespace(on_online=lambda fn: None)
    return ocpp_status.StatusReporter(s, None, session, c, StatusHolds())


def test_the_reason_scan_finds_the_known_faults():
    assert {"RCM", "Diode", "Welded", "ContactorMissing", "Overcurrent", "LockStuckOpen", "Overtemp", "PilotE",
            "PilotF", "VentilationRequired", "LockStuckLocked", "Internal"} <= set(_raised_reasons())


@pytest.mark.parametrize("err", ERRS)
@pytest.mark.parametrize("reason", _raised_reasons() + [None])
@pytest.mark.parametrize("pilot", [PILOT_A, PILOT_B, PILOT_C])
def test_every_fault_is_reported_with_a_status_and_error_code_the_spec_allows(err, reason, pilot):
    c = _ctrl(err, reason, pilot)
    for n in (0, 1):
        status, ec, vec = _reporter(c).state(n)
        assert pair_allowed(status, ec, vec), (n, err, reason, status, ec, vec)
        if n == 1:
            assert status == "Faulted" and ec != "NoError"


@pytest.mark.parametrize("status_kw", [dict(pilot=PILOT_B, authorized=False), dict(pilot=PILOT_C),
                                       dict(pilot=PILOT_B), dict(pilot=PILOT_C, offering=False),
                                       dict(pilot=PILOT_A, authorized=False)])
def test_a_meter_failure_is_a_warning_beside_any_status(status_kw):
    kw = dict(status_kw)
    c = _ctrl(0, None, kw.pop("pilot"), meter_failed=True, **kw)
    c.vendor_error_code = "modbus timeout"
    status, ec, vec = _reporter(c).state(1)
    assert status != "Faulted" and ec == "PowerMeterFailure" and pair_allowed(status, ec, vec)


def test_pilot_e_and_f_are_faulted_with_other_error_and_the_pilot_state_as_vendor_code():
    for reason in ("PilotE", "PilotF"):
        status, ec, vec = _reporter(_ctrl(Err.UNKNOWN, reason, PILOT_C)).state(1)
        assert (status, ec, vec) == ("Faulted", "OtherError", reason)


def test_diode_fault_is_other_error_not_ev_communication_error():
    status, ec, vec = _reporter(_ctrl(Err.DIODE, "Diode", PILOT_C)).state(1)
    assert (status, ec, vec) == ("Faulted", "OtherError", "Diode")


def test_every_goe_err_maps_to_an_error_code_a_faulted_connector_may_carry():
    for err in ERRS:
        assert pair_allowed("Faulted", codes.ocpp_error_for(err), codes.err_name(err)), err


# ---- the whole application, stepped: transitions on the wire --------------------------------

def _check_wire(sent):
    last = {}
    for n, status, ec in sent:
        if n == 0:
            assert status in ("Available", "Unavailable", "Faulted")
        if n in last:
            assert spec_allows(last[n], status), "connector %d: %s -> %s in %r" % (n, last[n], status, sent)
        assert ec != "EVCommunicationError" or status in EV_WARNING
        assert status != "Faulted" or ec != "NoError"
        last[n] = status


def _availability(app, cid, op):
    app.session.handlers["ChangeAvailability"]({"connectorId": cid, "type": "Operative" if op else "Inoperative"})


def _card(s):
    t = s.app.transactions
    if t.current is not None:
        t.stop_now("Local", t.current.id_tag)
    else:
        t.grant("CARD1")


AVAIL = st.tuples(st.just("avail"), st.tuples(st.sampled_from([0, 1]), st.booleans()))
EVENTS = st.one_of(
    st.tuples(st.just("ev"), st.sampled_from("AABBCCDEF")),
    st.tuples(st.just("card"), st.none()),
    st.tuples(st.just("remote_stop"), st.none()),
    AVAIL, AVAIL,
    st.tuples(st.just("frc"), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("rcd"), st.booleans()),
    st.tuples(st.just("hot"), st.booleans()),
    st.tuples(st.just("stop_on_unplug"), st.booleans()),
    st.tuples(st.just("online"), st.booleans()),
    st.tuples(st.just("wait"), st.integers(20, 4000)),
)


def _apply(s, what, v):
    app = s.app
    w = s.world
    if what == "ev":
        w.ev = v
    elif what == "card":
        _card(s)
    elif what == "remote_stop":
        app.transactions.stop_now("Remote")
    elif what == "avail":
        _availability(app, v[0], v[1])
    elif what == "frc":
        app.settings.set("frc", v)
    elif what == "rcd":
        w.rcd = v
        if v:
            s.board.rcm.fire()
        else:
            app.controller.reset_fault()
    elif what == "hot":
        w.temperature = 95.0 if v else 25.0
    elif what == "stop_on_unplug":
        app.settings.set("StopTransactionOnEVSideDisconnect", v)
    elif what == "online":
        if v and not s.online:
            s.go_online()
        s.online = v
    elif what == "wait":
        s.step(v)
        return
    s.step(st_gap[0])


st_gap = [60]  # ms stepped after each event: events land between ticks and rule steps


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(acs=st.sampled_from([0, 1]), hold=st.sampled_from([0, 0, 1, 3]), gap=st.sampled_from([20, 60, 100, 240]),
       events=st.lists(EVENTS, min_size=8, max_size=40))
def test_every_published_status_transition_is_in_the_table(acs, hold, gap, events):
    st_gap[0] = gap
    with tempfile.TemporaryDirectory() as d:
        s = AppStepper(d, [("acs", acs), ("MinimumStatusDuration", hold), ("ConnectionTimeOut", 5)])
        try:
            s.step(200)
            for what, v in events:
                _apply(s, what, v)
            s.step(5000)
            if not s.online:
                s.go_online()
                s.step(5000)
            _check_wire(s.sent)
            assert s.app.status_reporter.bugs == 0
        finally:
            s.shutdown()


def _run(sets, script):
    with tempfile.TemporaryDirectory() as d:
        s = AppStepper(d, sets)
        try:
            s.step(200)
            for what, v in script:
                _apply(s, what, v)
                s.step(1000)
            return [status for n, status, _ in s.sent if n == 1], s.app.status_reporter.bugs
        finally:
            s.shutdown()


def test_unplugging_during_a_charge_goes_from_charging_to_available_without_preparing():
    seen, bugs = _run([("acs", 0)], [("ev", "C"), ("ev", "A")])
    assert seen == ["Available", "Preparing", "Charging", "Available"] and bugs == 0


def test_unplugging_with_stop_on_ev_side_disconnect_false_is_suspended_ev():
    seen, bugs = _run([("acs", 0), ("StopTransactionOnEVSideDisconnect", False)], [("ev", "C"), ("ev", "A")])
    assert seen == ["Available", "Preparing", "Charging", "SuspendedEV"] and bugs == 0


def test_a_new_card_after_finishing_reports_preparing_before_charging():
    seen, bugs = _run([("acs", 1)], [("ev", "C"), ("card", None), ("card", None), ("card", None)])
    assert seen == ["Available", "Preparing", "Charging", "Finishing", "Preparing", "Charging"] and bugs == 0


def test_inoperative_while_preparing_reports_available_before_unavailable():
    seen, _ = _run([("acs", 1)], [("ev", "B"), ("avail", (1, False))])
    assert seen == ["Available", "Preparing", "Available", "Unavailable"]


def test_operative_again_after_a_transaction_ended_while_unavailable_reports_preparing_before_finishing():
    # Inoperative is Scheduled during the transaction, applies at its stop (EV plugged).
    seen, bugs = _run([("acs", 0)], [("ev", "C"), ("avail", (1, False)), ("remote_stop", None),
                                     ("avail", (1, True)), ("ev", "A")])
    assert seen == ["Available", "Preparing", "Charging", "Unavailable", "Preparing", "Finishing", "Available"]
    assert bugs == 0


def test_unplugged_transaction_made_unavailable_at_its_stop_goes_from_suspended_ev_to_unavailable():
    seen, bugs = _run([("acs", 0), ("StopTransactionOnEVSideDisconnect", False)],
                      [("ev", "C"), ("ev", "A"), ("avail", (1, False)), ("remote_stop", None), ("avail", (1, True))])
    assert seen == ["Available", "Preparing", "Charging", "SuspendedEV", "Unavailable", "Available"] and bugs == 0
