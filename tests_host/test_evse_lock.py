from firmware.evse.codes import Cus, Err
from tests_host.fakes import Rig


def test_locks_when_car_plugs_in_normal_mode():
    r = Rig()
    r.ev = "B"
    r.step(3)
    assert r.d.lock.level == 1
    assert r.ctrl.lock_status == Cus.LOCKED


def test_unlocks_when_car_leaves_in_normal_mode():
    r = Rig()
    r.ev = "B"
    r.step(3)
    r.ev = "A"
    r.step(3)
    assert r.d.lock.level == 0
    assert r.ctrl.lock_status == Cus.UNLOCKED


def test_no_offer_until_lock_confirmed():
    r = Rig()
    r.d.lock_feedback.stuck = 0
    r.plug_and_charge(ticks=20)
    assert r.ctrl.duty_permille == 1000
    assert not r.ctrl.contactor_closed


def test_lock_failure_is_a_fault_after_timeout():
    r = Rig()
    r.d.lock_feedback.stuck = 0
    r.plug_and_charge(ticks=80)
    assert r.ctrl.fault == Err.LOCK_STUCK_OPEN
    assert r.ctrl.lock_status == Cus.LOCK_FAILED
    assert r.ctrl.ocpp_error_code == "ConnectorLockFailure"


def test_lock_failure_clears_on_unplug():
    r = Rig()
    r.d.lock_feedback.stuck = 0
    r.plug_and_charge(ticks=80)
    r.d.lock_feedback.stuck = None
    r.ev = "A"
    r.step(3)
    assert r.ctrl.fault == 0


def test_unlock_stops_charging_first_then_unlocks():
    r = Rig()
    r.plug_and_charge()
    r.draw = 16.0
    assert r.ctrl.unlock() is None
    r.step()
    assert r.ctrl.contactor_closed and r.d.lock.level == 1
    assert r.ctrl.duty_permille == 1000
    r.draw = 0.0
    r.step(2)
    assert not r.ctrl.contactor_closed
    assert r.d.lock.level == 0
    assert r.ctrl.lock_status == Cus.UNLOCKED


def test_unlock_holds_until_next_plug():
    r = Rig()
    r.ev = "B"
    r.step(3)
    r.ctrl.unlock()
    r.step(3)
    assert r.d.lock.level == 0
    r.ev = "A"
    r.step(3)
    r.ev = "B"
    r.step(3)
    assert r.d.lock.level == 1


def test_unlock_failure_is_reported():
    r = Rig()
    r.ev = "B"
    r.step(3)
    r.d.lock_feedback.stuck = 1
    r.ctrl.unlock()
    r.step(80)
    assert r.ctrl.lock_status == Cus.UNLOCK_FAILED
    assert r.ctrl.fault == Err.LOCK_STUCK_LOCKED
    r.d.lock_feedback.stuck = None
    r.step(2)
    assert r.ctrl.fault == 0
    assert r.ctrl.lock_status == Cus.UNLOCKED


def test_unlock_without_lock_is_not_supported():
    r = Rig(lock=False)
    assert r.ctrl.unlock() == "no cable lock"
    assert r.ctrl.lock_status == Cus.UNKNOWN


def test_unlock_refused_with_welded_contactor():
    r = Rig()
    r.plug_and_charge()
    r.d.contactor_feedback.stuck = 1
    r.ev = "B"
    r.step(30)
    assert r.ctrl.unlock() is not None
    r.ev = "A"
    r.step(5)
    assert r.d.lock.level == 1


def test_ust_always_locked_stays_locked_without_car():
    r = Rig({"ust": 2})
    r.step(3)
    assert r.d.lock.level == 1


def test_ust_auto_unlock_releases_when_charging_is_done():
    r = Rig()
    r.ctrl.set_ust(1)
    r.plug_and_charge()
    assert r.d.lock.level == 1
    r.ev = "B"  # EV full
    r.step(3)
    assert r.ctrl.car == 4
    assert r.d.lock.level == 0


def test_ust_auto_unlock_relocks_when_ev_wants_more():
    r = Rig({"ust": 1})
    r.plug_and_charge()
    r.ev = "B"
    r.step(3)
    r.ev = "C"
    r.step(10)
    assert r.d.lock.level == 1
    assert r.ctrl.contactor_closed


def test_lock_never_opens_under_load():
    r = Rig()
    r.plug_and_charge()
    r.draw = 16.0
    r.ctrl.unlock()
    for _ in range(200):
        r.step()
        assert not (r.d.lock.level == 0 and r.d.contactor.level == 1)


def test_without_feedback_command_is_trusted():
    r = Rig(lock_feedback=False)
    r.plug_and_charge()
    assert r.ctrl.contactor_closed
    assert r.ctrl.lock_status == Cus.LOCKED


def test_invalid_ust_refused():
    r = Rig()
    assert r.ctrl.set_ust(3) is not None
    assert r.ctrl.set_ust(False) is not None


def test_held_lock_stays_locked_after_the_ev_leaves_until_released():
    r = Rig()
    r.ev = "B"
    r.step(3)
    r.ctrl.hold_lock(True)
    r.ev = "A"
    r.step(3)
    assert r.d.lock.level == 1 and r.ctrl.lock_status == Cus.LOCKED
    r.ctrl.hold_lock(False)
    r.step(3)
    assert r.d.lock.level == 0 and r.ctrl.lock_status == Cus.UNLOCKED


def test_unlock_releases_a_held_lock():
    r = Rig()
    r.ev = "B"
    r.step(3)
    r.ctrl.hold_lock(True)
    r.ev = "A"
    r.step(3)
    assert r.ctrl.unlock() is None
    r.step(3)
    assert r.d.lock.level == 0 and not r.ctrl.lock_held
    r.ev = "B"
    r.step(3)
    r.ev = "A"
    r.step(3)
    assert r.d.lock.level == 0  # the hold does not come back with the next plug


def test_held_lock_does_not_delay_opening_the_contactor_on_unplug():
    r = Rig()
    r.plug_and_charge()
    assert r.ctrl.contactor_closed
    r.ctrl.hold_lock(True)
    r.ev = "A"
    r.step(2)
    assert not r.ctrl.contactor_closed and r.d.contactor.level == 0
    assert r.d.lock.level == 1
