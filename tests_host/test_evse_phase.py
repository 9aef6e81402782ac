from firmware.evse.phase_switch import PhaseSwitch
from tests_host.fakes import FakeOutput, Rig


def charging_rig(**kw):
    r = Rig(**kw)
    r.plug_and_charge(16)
    assert r.ctrl.phases_active == 3
    return r


def test_boots_on_installed_three_phases():
    r = Rig()
    assert r.d.phase_relay.level == 1
    assert r.ctrl.phases_active == 3


def test_psm_force_one_phase_switches_while_idle_without_pause():
    r = Rig()
    r.ctrl.set_psm(1)
    r.step()
    assert r.d.phase_relay.level == 0
    assert r.ctrl.phases_active == 1
    assert not r.ctrl.phase_switching


def test_switch_while_charging_follows_the_safe_sequence():
    r = charging_rig()
    r.draw = 16.0
    r.ctrl.request_phases(1)
    r.step()
    # 1. offer withdrawn, contactor still closed, relay untouched
    assert r.ctrl.duty_permille == 1000
    assert r.ctrl.contactor_closed and r.d.phase_relay.level == 1
    assert r.ctrl.model_status == 23
    # 2. EV pauses -> contactor opens
    r.draw = 0.0
    r.step()
    assert not r.ctrl.contactor_closed
    assert r.d.phase_relay.level == 1
    # 3. relay switches with the contactor open
    r.step()
    assert r.d.phase_relay.level == 0
    assert r.ctrl.phases_active == 1
    # 4. minimum pause without offer, then resume
    r.draw = None
    r.step(240)
    assert r.ctrl.duty_permille == 1000
    # 5. the EV, still in C, sees the offer before the contactor closes
    while not r.ctrl.offering:
        r.step()
    assert not r.ctrl.contactor_closed
    r.step(4)
    assert not r.ctrl.contactor_closed
    r.step(2)
    assert r.ctrl.offered_amps == 16
    assert r.ctrl.contactor_closed
    assert not r.ctrl.phase_switching


def test_relay_never_switches_with_contactor_closed():
    r = charging_rig()
    r.draw = 16.0  # EV ignores the withdrawal: the grace time opens it
    r.ctrl.set_psm(1)
    was_closed_at_relay_change = []
    prev = r.d.phase_relay.level
    for _ in range(400):
        closed_before = r.d.contactor.level
        r.step()
        if r.d.phase_relay.level != prev:
            was_closed_at_relay_change.append(closed_before or r.d.contactor.level)
            prev = r.d.phase_relay.level
    assert was_closed_at_relay_change == [0]


def test_switch_back_before_contactor_opened_aborts_the_sequence():
    r = charging_rig()
    toggles = r.d.phase_relay.toggles
    r.draw = 16.0
    r.ctrl.request_phases(1)
    r.step(2)
    r.ctrl.request_phases(None)
    r.step(2)
    assert r.ctrl.contactor_closed
    assert r.ctrl.offered_amps == 16
    assert r.d.phase_relay.toggles == toggles


def test_psm_force_three_overrides_requests():
    r = Rig()
    r.ctrl.request_phases(1)
    r.ctrl.set_psm(2)
    r.step()
    assert r.ctrl.phases_active == 3


def test_limit_source_phases_take_the_minimum():
    r = Rig()
    r.ctrl.set_limit("ocpp", 16, phases=1)
    r.step()
    assert r.ctrl.phases_active == 1
    r.ctrl.set_limit("ocpp", 16, phases=3)
    r.step()
    assert r.ctrl.phases_active == 3


def test_two_phases_requested_means_three_on_a_1p3p_relay():
    r = Rig()
    r.ctrl.request_phases(2)
    r.step()
    assert r.ctrl.phases_active == 3


def test_invalid_phase_requests_are_refused():
    r = Rig()
    assert r.ctrl.request_phases(4) is not None
    assert r.ctrl.request_phases(True) is not None
    assert r.ctrl.set_psm(3) is not None
    assert r.ctrl.request_phases(None) is None


def test_without_phase_relay_phases_are_fixed():
    r = Rig({"phases": 1}, phase_relay=False)
    r.ctrl.set_psm(2)
    r.step()
    assert r.ctrl.phases_active == 1
    r = Rig(phase_relay=False)
    r.ctrl.set_psm(1)
    r.step()
    assert r.ctrl.phases_active == 3


def test_meter_learns_the_phase_count():
    r = Rig()
    r.d.meter.phases = 3
    r.ctrl.set_psm(1)
    r.step()
    assert r.d.meter.phases == 1


def test_pause_applies_only_with_ev_plugged():
    relay = FakeOutput()
    ps = PhaseSwitch(relay, 3, pause_ms=5000)
    assert ps.update(0, 1, False, False) is False
    assert ps.active == 1
    assert ps.update(20, 3, False, True) is True
    assert ps.update(5019, 3, False, True) is True
    assert ps.update(5020, 3, False, True) is False


def test_relay_waits_for_the_contactor_feedback_to_read_open():
    r = charging_rig()
    r.d.contactor_feedback.stuck = 1  # welded: commanded open, still closed
    r.draw = 0.0
    r.ctrl.request_phases(1)
    for _ in range(100):
        r.step()
        assert r.d.phase_relay.level == 1
    assert not r.ctrl.contactor_closed


def test_relay_switches_once_a_slow_contactor_reads_open():
    r = charging_rig()
    r.draw = 0.0
    r.ctrl.request_phases(1)
    r.d.contactor_feedback.stuck = 1  # still opening
    r.step(3)
    assert not r.ctrl.contactor_closed and r.d.phase_relay.level == 1
    r.d.contactor_feedback.stuck = None
    r.step(2)
    assert r.d.phase_relay.level == 0
