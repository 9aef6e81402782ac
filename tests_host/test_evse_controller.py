import pytest

from firmware.evse.codes import Err, ModelStatus
from firmware.evse.controller import ChargeController
from firmware.evse.pilot import duty_to_u16
from tests_host.fakes import Rig, make_drivers


def charging_rig(amps=16, **kw):
    r = Rig(**kw)
    r.plug_and_charge(amps)
    assert r.ctrl.contactor_closed
    return r


# ---- start ----

def test_boot_outputs_are_safe():
    d = make_drivers()
    ChargeController(d)
    assert d.pilot_pwm.freq() == 1000
    assert d.pilot_pwm.duty_u16() == 65535
    assert d.contactor.level == 0


def test_contactor_closes_in_c_with_offer_and_authorization():
    r = charging_rig(16)
    assert r.ctrl.pilot_state == "C"
    assert r.ctrl.offered_amps == 16
    assert r.d.pilot_pwm.duty_u16() == duty_to_u16(267)
    assert r.d.contactor.level == 1


def test_offer_appears_in_b_before_the_ev_requests():
    r = Rig()
    r.ctrl.set_limit("amp", 10)
    r.ctrl.authorize(True)
    r.ev = "B"
    r.step(5)
    assert r.ctrl.duty_permille == 167
    assert not r.ctrl.contactor_closed


def test_contactor_stays_open_without_authorization():
    r = Rig()
    r.ev = "C"
    r.step(10)
    assert not r.ctrl.contactor_closed
    assert r.ctrl.duty_permille == 1000
    assert r.ctrl.ocpp_status == "Preparing"


def test_contactor_stays_open_in_b():
    r = Rig()
    r.ctrl.authorize(True)
    r.ev = "B"
    r.step(10)
    assert not r.ctrl.contactor_closed
    assert r.ctrl.ocpp_status == "SuspendedEV"


def test_no_offer_below_six_amps():
    r = Rig()
    r.ctrl.set_limit("amp", 5)
    r.ctrl.authorize(True)
    r.ev = "C"
    r.step(10)
    assert r.ctrl.duty_permille == 1000
    assert not r.ctrl.contactor_closed
    assert r.ctrl.ocpp_status == "SuspendedEVSE"


def offer_ms_before_closing(r, limit=100):
    """Steps until the contactor closes; ms from the tick the offer started to the closing tick."""
    since = r.now if r.ctrl.offering else None
    for _ in range(limit):
        offering_before = r.ctrl.offering
        r.step()
        if r.d.contactor.level:
            assert offering_before, "closed in the tick the offer started"
            return r.now - since
        if r.ctrl.offering and since is None:
            since = r.now
        elif not r.ctrl.offering:
            since = None
    raise AssertionError("never closed")


def test_ev_waiting_in_c_gets_the_offer_before_the_contactor_closes():
    r = Rig()
    r.ctrl.set_limit("amp", 16)
    r.ev = "C"
    r.step(10)
    r.ctrl.authorize(True)
    r.step()
    assert r.ctrl.offering and not r.ctrl.contactor_closed
    assert offer_ms_before_closing(r) >= 100


def test_limit_rising_back_above_six_amps_offers_before_closing():
    r = charging_rig()
    r.ctrl.set_limit("amp", 0)
    r.step(200)
    assert not r.ctrl.contactor_closed and not r.ctrl.offering
    r.ctrl.set_limit("amp", 16)
    r.step()
    assert r.ctrl.offering and not r.ctrl.contactor_closed
    assert offer_ms_before_closing(r) >= 100


def test_contactor_never_closes_when_the_first_samples_under_pwm_show_no_diode():
    r = Rig()
    r.ctrl.set_limit("amp", 16)
    r.ev = "C"
    r.diode = False
    r.step(10)
    r.ctrl.authorize(True)
    for _ in range(50):
        r.step()
        assert r.d.contactor.level == 0
    assert r.ctrl.fault == Err.DIODE


def test_pilot_sample_without_pwm_never_counts_for_closing():
    # Ticks 5 ms apart: the time alone would pass before any sample saw the PWM.
    r = Rig({"offer_before_close_ms": 0})
    r.ctrl.set_limit("amp", 16)
    r.ev = "C"
    r.step(10)
    r.ctrl.authorize(True)
    r.step()
    assert r.ctrl.offering and r.d.contactor.level == 0
    r.step()
    assert r.d.contactor.level == 1


# ---- hard stops ----

def test_contactor_opens_in_the_tick_state_a_is_detected():
    r = charging_rig()
    r.ev = "A"
    while r.ctrl.pilot_state != "A":
        r.step()
        if r.ctrl.pilot_state != "A":
            assert r.ctrl.contactor_closed  # debouncing, not yet A
    assert r.d.contactor.level == 0
    assert r.d.pilot_pwm.duty_u16() == 65535


def test_unplug_opens_in_the_tick_of_the_first_sample_showing_a():
    r = charging_rig()
    r.ev = "A"
    r.step(1)
    assert r.d.contactor.level == 0
    assert r.d.pilot_pwm.duty_u16() == 65535


@pytest.mark.parametrize("state", ["B", "E", "F"])
def test_contactor_opens_at_once_on(state):
    r = charging_rig()
    r.ev = state
    r.step(1)
    assert r.d.contactor.level == 0


def test_state_d_is_refused_without_ventilation():
    r = Rig()
    r.ctrl.authorize(True)
    r.ev = "D"
    r.step(10)
    assert not r.ctrl.contactor_closed
    assert r.ctrl.fault == Err.UNKNOWN
    assert r.ctrl.vendor_error_code == "VentilationRequired"


def test_state_d_charges_when_ventilation_configured():
    r = Rig({"allow_ventilation": True})
    r.ctrl.authorize(True)
    r.ev = "D"
    r.step(10)
    assert r.ctrl.contactor_closed
    assert r.ctrl.fault == 0


def test_pilot_e_is_a_fault_that_ends_with_the_short():
    r = charging_rig()
    r.ev = "E"
    r.step(3)
    assert r.ctrl.ocpp_status == "Faulted"
    assert r.ctrl.ocpp_error_code == "OtherError" and r.ctrl.vendor_error_code == "PilotE"
    r.ev = "C"
    r.step(10)
    assert r.ctrl.fault == 0
    assert r.ctrl.contactor_closed


# ---- normal stop ----

def test_deauthorize_withdraws_offer_before_opening():
    r = charging_rig()
    r.ev_amps = 16
    r.draw = 16.0  # the EV keeps drawing for a while
    r.ctrl.authorize(False)
    r.step()
    assert r.d.pilot_pwm.duty_u16() == 65535
    assert r.d.contactor.level == 1
    assert r.ctrl.stopping


def test_normal_stop_opens_when_ev_stops_drawing():
    r = charging_rig()
    r.draw = 16.0
    r.ctrl.authorize(False)
    r.step(5)
    assert r.ctrl.contactor_closed
    r.draw = 0.2
    r.step()
    assert not r.ctrl.contactor_closed


def test_normal_stop_opens_after_grace_time_if_ev_keeps_drawing():
    r = charging_rig()
    r.draw = 16.0
    r.ctrl.authorize(False)
    r.step()
    t0 = r.now
    while r.ctrl.contactor_closed:
        r.step()
    assert 3000 <= r.now - t0 <= 3000 + 20


def test_normal_stop_opens_at_once_when_ev_goes_to_b():
    r = charging_rig()
    r.draw = 16.0
    r.ctrl.set_force(1)
    r.step()
    assert r.ctrl.contactor_closed
    r.ev = "B"
    r.step(2)
    assert not r.ctrl.contactor_closed


def test_normal_stop_without_meter_uses_grace_time():
    r = Rig(meter=False)
    r.plug_and_charge()
    r.ctrl.enable(False)
    r.step()
    t0 = r.now
    while r.ctrl.contactor_closed:
        r.step()
    assert r.now - t0 == 3000


def test_offer_restored_during_grace_keeps_contactor_closed():
    r = charging_rig()
    r.draw = 16.0
    r.ctrl.set_force(1)
    r.step(10)
    r.ctrl.set_force(0)
    r.step(2)
    assert r.ctrl.contactor_closed and not r.ctrl.stopping
    assert r.ctrl.offered_amps == 16


def test_force_off_stops_and_reports_model_status_4():
    r = charging_rig()
    r.ctrl.set_force(1)
    r.step(200)
    assert not r.ctrl.contactor_closed
    assert r.ctrl.model_status == 4
    assert r.ctrl.ocpp_status == "SuspendedEVSE"


def test_disable_makes_connector_unavailable():
    r = charging_rig()
    r.ctrl.enable(False)
    r.step(200)
    assert not r.ctrl.contactor_closed
    assert r.ctrl.ocpp_status == "Unavailable"


# ---- limits ----

def test_offer_is_minimum_over_sources():
    r = charging_rig(32)
    r.ctrl.set_limit("ama", 20)
    r.ctrl.set_limit("ocpp", 10.5)
    r.step()
    assert r.ctrl.offered_amps == 10.5
    assert r.ctrl.limit_source == "ocpp"


def test_removing_a_source_raises_the_offer():
    r = charging_rig(32)
    r.ctrl.set_limit("ocpp", 10)
    r.step()
    r.ctrl.set_limit("ocpp", None)
    r.step()
    assert r.ctrl.offered_amps == 32


def test_offer_never_exceeds_rating():
    r = Rig({"max_amps": 16})
    r.plug_and_charge(32)
    assert r.ctrl.offered_amps == 16


@pytest.mark.parametrize("amps", [-1, "16", True, float("nan"), float("inf")])
def test_bad_limit_is_refused_with_message(amps):
    r = Rig()
    assert isinstance(r.ctrl.set_limit("amp", amps), str)


def test_limit_zero_from_ocpp_is_ocpp_doesnt_want():
    r = charging_rig()
    r.ctrl.set_limit("ocpp", 0, status=ModelStatus.OCPP_DOESNT_WANT)  # the caller says what its limit means
    r.step(200)
    assert not r.ctrl.contactor_closed
    assert r.ctrl.model_status == 28


# ---- interlocks ----

def test_rcm_input_opens_and_latches_fi_dc():
    r = charging_rig()
    r.d.rcm.level = 1
    r.step()
    assert r.d.contactor.level == 0
    assert r.ctrl.fault == Err.FI_DC
    assert r.ctrl.ocpp_error_code == "GroundFailure"
    r.d.rcm.level = 0
    r.step(10)
    assert r.ctrl.fault == Err.FI_DC
    assert not r.ctrl.contactor_closed


def test_rcm_interrupt_opens_contactor_before_next_tick():
    r = charging_rig()
    r.d.rcm.level = 1
    r.d.rcm.fire()
    assert r.d.contactor.level == 0


def test_rcm_fault_clears_on_unplug_once_input_is_quiet():
    r = charging_rig()
    r.d.rcm.level = 1
    r.step()
    r.d.rcm.level = 0
    r.ev = "A"
    r.step(3)
    assert r.ctrl.fault == 0


def test_reset_fault_refused_while_residual_current_present():
    r = charging_rig()
    r.d.rcm.level = 1
    r.step()
    assert r.ctrl.reset_fault() is not None
    r.d.rcm.level = 0
    assert r.ctrl.reset_fault() is None
    r.step(5)
    assert r.ctrl.fault == 0


def test_welded_contactor_is_latched_and_survives_unplug():
    r = charging_rig()
    r.d.contactor_feedback.stuck = 1
    r.ev = "A"
    r.step(30)
    assert r.ctrl.fault == Err.CONTACTOR_STUCK
    assert r.ctrl.ocpp_error_code == "PowerSwitchFailure"
    r.ev = "C"
    r.step(30)
    assert r.d.contactor.level == 0
    assert r.ctrl.fault == Err.CONTACTOR_STUCK


def test_weld_reset_refused_while_feedback_closed():
    r = charging_rig()
    r.d.contactor_feedback.stuck = 1
    r.ev = "B"
    r.step(30)
    assert r.ctrl.reset_fault() == "contactor still closed"
    r.d.contactor_feedback.stuck = None
    assert r.ctrl.reset_fault() is None


def test_weld_after_an_earlier_fault_is_reported_as_contactor_stuck():
    r = charging_rig()
    r.d.contactor_feedback.stuck = 1  # welded as it opens on the residual current
    r.d.rcm.level = 1
    r.step()
    assert r.ctrl.fault == Err.FI_DC
    r.d.rcm.level = 0
    r.step(30)
    assert r.ctrl.err == Err.CONTACTOR_STUCK
    assert r.ctrl.fault_latched == Err.CONTACTOR_STUCK
    assert r.ctrl.ocpp_error_code == "PowerSwitchFailure"
    assert r.ctrl.vendor_error_code == "Welded"


def test_weld_is_not_replaced_by_an_internal_error(printed):
    r = charging_rig()
    r.d.contactor_feedback.stuck = 1
    r.ev = "B"
    r.step(30)
    assert r.ctrl.fault == Err.CONTACTOR_STUCK
    r.d.pilot_adc.read = Boom().read
    r.step(3)
    assert r.ctrl.fault == Err.CONTACTOR_STUCK
    assert printed == ["adc broke"]


@pytest.mark.parametrize("cause", ["rcm", "diode"])
def test_reset_fault_refused_while_feedback_reads_closed_whatever_the_fault(cause):
    r = charging_rig()
    r.d.contactor_feedback.stuck = 1
    if cause == "rcm":
        r.d.rcm.level = 1
        r.step()
        r.d.rcm.level = 0
    else:
        r.diode = False
        r.step(3)
    assert r.ctrl.fault_latched in (Err.FI_DC, Err.DIODE)  # weld not yet past the settle time
    assert r.ctrl.reset_fault() == "contactor still closed"
    assert r.ctrl.fault


def test_unlock_refused_while_feedback_reads_closed_behind_another_fault():
    r = charging_rig()
    r.d.contactor_feedback.stuck = 1
    r.d.rcm.level = 1
    r.step()
    r.d.rcm.level = 0
    assert r.ctrl.fault_latched == Err.FI_DC
    assert r.ctrl.unlock() == "contactor still closed: the socket stays locked"
    r.ev = "A"
    r.step(50)
    assert r.d.lock.level == 1


def test_unlock_while_charging_still_stops_first():
    r = charging_rig()
    assert r.ctrl.unlock() is None


def test_contactor_missing_feedback_is_a_fault():
    r = Rig()
    r.d.contactor_feedback.stuck = 0
    r.plug_and_charge(ticks=30)
    assert r.ctrl.fault == Err.CONTACTOR_MISS
    assert not r.ctrl.contactor_closed


def test_feedback_bounce_inside_settle_time_is_no_fault():
    r = charging_rig()
    r.d.contactor_feedback.stuck = 0
    r.step(5)  # 100 ms < 300 ms settle
    r.d.contactor_feedback.stuck = None
    r.step(30)
    assert r.ctrl.fault == 0


def test_overcurrent_beyond_grace_is_a_fault():
    r = charging_rig(16)
    r.draw = 20.0  # 16 A + 2 A margin exceeded
    r.step(249)
    assert r.ctrl.fault == 0
    r.step(2)
    assert r.ctrl.fault == Err.OVERAMP
    assert not r.ctrl.contactor_closed
    assert r.ctrl.ocpp_error_code == "OverCurrentFailure"


def test_current_within_margin_is_no_overcurrent():
    r = charging_rig(16)
    r.draw = 17.9
    r.step(500)
    assert r.ctrl.fault == 0


def test_ev_gets_grace_to_follow_a_lower_offer():
    r = charging_rig(32)
    r.draw = 32.0
    r.ctrl.set_limit("ocpp", 10)
    r.step(200)  # 4 s still at 32 A
    r.draw = 10.0
    r.step(300)
    assert r.ctrl.fault == 0


def test_overcurrent_clears_on_unplug():
    r = charging_rig(16)
    r.draw = 30.0
    r.step(300)
    r.draw = None
    r.ev = "A"
    r.step(3)
    assert r.ctrl.fault == 0


def test_diode_fault_stops_charging():
    r = charging_rig()
    r.diode = False
    r.step(3)
    assert r.ctrl.fault == Err.DIODE
    assert not r.ctrl.contactor_closed
    assert r.ctrl.err == 6


# ---- temperature ----

def test_temperature_derates_offer():
    r = Rig({"max_amps": 32}, temperature=True)
    r.plug_and_charge(32)
    r.d.temperature.celsius = 70.0  # halfway between 60 and 80
    r.step(60)
    assert r.ctrl.offered_amps == 19
    assert r.ctrl.temperature_c == 70.0


def test_temperature_cutoff_opens_and_recovers_with_hysteresis():
    r = Rig(temperature=True)
    r.plug_and_charge()
    r.d.temperature.celsius = 81.0
    r.step(60)
    assert r.ctrl.fault == Err.OVERTEMP
    assert not r.ctrl.contactor_closed
    assert r.ctrl.model_status == 1
    assert r.ctrl.ocpp_error_code == "HighTemperature"
    r.d.temperature.celsius = 77.0
    r.step(60)
    assert r.ctrl.fault == Err.OVERTEMP
    r.d.temperature.celsius = 74.0
    r.step(60)
    assert r.ctrl.fault == 0


def test_temperature_sensor_raising_limits_to_minimum_current_without_a_fault():
    r = Rig(temperature=True)
    r.plug_and_charge(16)

    def broken():
        raise OSError("i2c")
    r.d.temperature.read_c = broken
    r.step(60)
    assert r.ctrl.offered_amps == 6 and r.ctrl.fault == 0 and r.ctrl.contactor_closed


def test_failed_temperature_sensor_limits_to_minimum_current():
    r = Rig(temperature=True)
    r.plug_and_charge(16)
    r.d.temperature.celsius = None
    r.step(60)
    assert r.ctrl.offered_amps == 6


# ---- robustness ----

class Boom:
    def read(self):
        raise RuntimeError("adc broke")


@pytest.fixture
def printed(monkeypatch):
    import firmware.evse.controller as mod
    out = []
    monkeypatch.setattr(mod, "print_exception", lambda e: out.append(str(e)))
    return out


def test_exception_in_tick_opens_contactor_and_latches_unknown(printed):
    r = charging_rig()
    r.d.pilot_adc.read = Boom().read
    r.ctrl.tick(r.now + 20)
    assert r.d.contactor.level == 0
    assert r.d.pilot_pwm.duty_u16() == 65535
    assert r.ctrl.fault == Err.UNKNOWN
    assert r.ctrl.ocpp_status == "Faulted"
    assert r.ctrl.ocpp_error_code == "InternalError"
    assert printed == ["adc broke"]


def test_repeated_exceptions_are_reported_once(printed):
    r = charging_rig()
    r.d.pilot_adc.read = Boom().read
    for i in range(5):
        r.ctrl.tick(r.now + 20 * (i + 1))
    assert printed == ["adc broke"]


def test_listener_exception_does_not_stop_the_loop(printed):
    r = Rig()

    def bad(event, data):
        raise ValueError("listener bug")

    r.ctrl.add_listener(bad)
    r.plug_and_charge()
    assert r.ctrl.contactor_closed
    assert r.ctrl.fault == 0
    assert "listener bug" in printed


def test_meter_failure_is_reported_but_not_a_fault():
    r = charging_rig()
    r.d.meter.ok = False
    r.d.meter.error = "modbus timeout"
    r.step(5)
    assert r.ctrl.fault == 0
    assert r.ctrl.ocpp_error_code == "PowerMeterFailure"
    assert r.ctrl.vendor_error_code == "modbus timeout"
    assert r.ctrl.contactor_closed


def test_run_loop_ticks_on_its_own():
    import asyncio
    d = make_drivers()
    c = ChargeController(d, {"tick_ms": 5})

    async def main():
        t = asyncio.create_task(c.run())
        await asyncio.sleep(0.1)
        t.cancel()

    asyncio.run(main())
    assert c.tick_count >= 5


# ---- events ----

def test_events_of_a_session_in_order():
    r = Rig()
    r.ctrl.set_limit("amp", 16)
    r.ev = "B"
    r.step(5)
    r.ctrl.authorize(True)
    r.step(2)
    r.ev = "C"
    r.step(5)
    r.ev = "B"
    r.step(5)
    r.ctrl.authorize(False)
    r.step(2)
    r.ev = "A"
    r.step(5)
    statuses = [d for e, d in r.events if e == "status"]
    assert statuses == ["Available", "Preparing", "SuspendedEV", "Charging", "SuspendedEV", "Finishing",
                        "Available"]
    names = r.event_names()
    assert names.index("plugged") < names.index("charging") < names.index("suspended_ev", 5)
    assert names[-2:] == ["unplugged", "status"]


def test_fault_and_fault_cleared_events():
    r = charging_rig()
    r.ev = "E"
    r.step(3)
    r.ev = "C"
    r.step(3)
    assert ("fault", Err.UNKNOWN) in r.events
    assert ("fault_cleared", Err.UNKNOWN) in r.events


def test_listener_may_deauthorize_on_unplug_without_status_flicker():
    r = Rig()

    def on_event(event, data):
        if event == "unplugged":
            r.ctrl.authorize(False)

    r.ctrl.add_listener(on_event)
    r.plug_and_charge()
    r.events.clear()
    r.ev = "A"
    r.step(3)
    assert [d for e, d in r.events if e == "status"] == ["Available"]


def test_a_limit_source_below_6a_reports_the_status_its_caller_gave():
    r = charging_rig()
    r.ctrl.set_limit("any-name", 0, status=ModelStatus.ENERGY_LIMIT)
    r.step(200)
    assert r.ctrl.model_status == ModelStatus.ENERGY_LIMIT
    r.ctrl.set_limit("any-name", None)
    r.ctrl.set_limit("other", 0)  # no status given: load management
    r.step(200)
    assert r.ctrl.model_status == ModelStatus.LOAD_MANAGEMENT
