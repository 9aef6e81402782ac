import random

import pytest

from firmware.evse.codes import PILOT_A, PILOT_B, PILOT_C, PILOT_D, PILOT_E, PILOT_F, PILOT_NAMES
from firmware.evse.pilot import (DUTY_OFF, PilotStateMachine, amps_to_duty, duty_to_amps, duty_to_u16)

# IEC 61851-1 table A.8 (EVSE) for whole amps: duty in per mille.
DUTY_TABLE = [
    (6, 100), (8, 133), (10, 167), (13, 217), (16, 267), (20, 333), (25, 417), (30, 500),
    (32, 533), (40, 667), (48, 800), (51, 850), (52, 848), (60, 880), (63, 892), (70, 920), (80, 960),
]


@pytest.mark.parametrize("amps,duty", DUTY_TABLE)
def test_amps_to_duty_follows_iec_table(amps, duty):
    assert amps_to_duty(amps * 10) == duty


@pytest.mark.parametrize("amps,duty", [(a, d) for a, d in DUTY_TABLE if a != 52])
def test_duty_to_amps_reads_back_the_table(amps, duty):
    # 52 A is 84.8 % by the upper formula, which an EV reads with the lower one.
    assert duty_to_amps(duty) == amps * 10


def test_duty_roundtrip_never_offers_more_than_asked():
    for da in range(60, 801):
        back = duty_to_amps(amps_to_duty(da))
        assert back <= da + 1  # nearest per mille: at most 0.05 A above
        # 51..52.6 A: the standard's two formulas overlap, the EV reads up to 1.6 A less.
        assert back >= da - 16


def test_below_six_amps_offers_nothing():
    assert amps_to_duty(59) == DUTY_OFF
    assert amps_to_duty(0) == DUTY_OFF


def test_above_eighty_amps_is_capped():
    assert amps_to_duty(1000) == 960


@pytest.mark.parametrize("duty,da", [(0, 0), (50, 0), (79, 0), (80, 60), (99, 60), (100, 60),
                                     (850, 510), (960, 800), (970, 800), (971, 0), (1000, 0)])
def test_duty_edges_read_as_the_standard_says(duty, da):
    assert duty_to_amps(duty) == da


def test_duty_u16_full_is_steady_high():
    assert duty_to_u16(DUTY_OFF) == 65535
    assert duty_to_u16(0) == 0


def feed(sm, high, low=None, n=1, pwm_on=False):
    for _ in range(n):
        sm.update(high, high if low is None else low, pwm_on)
    return sm.state


@pytest.mark.parametrize("mv,state", [(12000, PILOT_A), (9000, PILOT_B), (6000, PILOT_C), (3000, PILOT_D),
                                      (0, PILOT_E), (-12000, PILOT_F)])
def test_nominal_levels_give_their_state(mv, state):
    sm = PilotStateMachine()
    assert feed(sm, mv, n=3) == state


@pytest.mark.parametrize("mv,state", [(11000, PILOT_A), (13000, PILOT_A), (8000, PILOT_B), (10000, PILOT_B),
                                      (5000, PILOT_C), (7000, PILOT_C), (2000, PILOT_D), (4000, PILOT_D),
                                      (-1000, PILOT_E), (1000, PILOT_E), (-11000, PILOT_F), (-13000, PILOT_F)])
def test_levels_at_the_tolerance_limits_give_their_state(mv, state):
    # IEC 61851-1 table A.4: each level +-1 V.
    sm = PilotStateMachine()
    assert feed(sm, mv, n=3) == state


@pytest.mark.parametrize("state", range(6))
def test_noisy_samples_keep_the_state(state):
    levels = (12000, 9000, 6000, 3000, 0, -12000)
    rnd = random.Random(state)
    sm = PilotStateMachine()
    feed(sm, levels[state], n=3)
    for _ in range(2000):
        sm.update(levels[state] + rnd.randint(-900, 900), -12000, False)
        assert sm.state == state


def test_single_outlier_sample_is_debounced():
    sm = PilotStateMachine(debounce=2)
    feed(sm, 9000, n=3)
    sm.update(12000, 12000, False)
    assert sm.state == PILOT_B
    sm.update(9000, 9000, False)
    assert sm.state == PILOT_B


def test_new_state_needs_debounce_samples_in_a_row():
    sm = PilotStateMachine(debounce=3)
    feed(sm, 9000, n=3)
    sm.update(12000, 12000, False)
    sm.update(12000, 12000, False)
    assert sm.state == PILOT_B
    sm.update(12000, 12000, False)
    assert sm.state == PILOT_A


def test_leaving_c_counts_at_the_first_sample_and_entering_c_is_debounced():
    # Fail-safe: the contactor may be closed in C, so leaving it must not wait.
    sm = PilotStateMachine(debounce=3)
    feed(sm, 6000, n=4)
    assert sm.state == PILOT_C
    sm.update(12000, 12000, False)
    assert sm.state == PILOT_A
    sm.update(6000, 6000, False)
    sm.update(6000, 6000, False)
    assert sm.state == PILOT_A
    sm.update(6000, 6000, False)
    assert sm.state == PILOT_C


def test_level_on_an_edge_does_not_flip_with_hysteresis():
    sm = PilotStateMachine(hysteresis_mv=400)
    feed(sm, 9000, n=3)  # B
    for mv in (7400, 7600, 7300, 7700, 7200) * 20:  # around the B/C edge at 7.5 V
        sm.update(mv, mv, False)
    assert sm.state == PILOT_B


def test_clear_crossing_past_hysteresis_changes_state():
    sm = PilotStateMachine(hysteresis_mv=400)
    feed(sm, 9000, n=3)
    assert feed(sm, 7000, n=2) == PILOT_C


def test_classify_edges_without_hysteresis_from_far_state():
    sm = PilotStateMachine(hysteresis_mv=400)
    feed(sm, -12000, n=3)  # F: far from the A/B edge, which is unshifted
    assert sm.classify(10500) == PILOT_A
    assert sm.classify(10499) == PILOT_B


def test_missing_diode_is_a_fault():
    sm = PilotStateMachine()
    feed(sm, 9000, n=3)
    feed(sm, 9000, low=-9000, n=3, pwm_on=True)
    assert sm.diode_fault


def test_diode_present_is_no_fault():
    sm = PilotStateMachine()
    feed(sm, 6000, low=-12000, n=50, pwm_on=True)
    assert not sm.diode_fault


def test_diode_not_checked_without_pwm():
    sm = PilotStateMachine()
    feed(sm, 9000, low=9000, n=10, pwm_on=False)
    assert not sm.diode_fault


def test_diode_not_checked_when_low_level_unknown():
    sm = PilotStateMachine()
    feed(sm, 9000, n=3)
    for _ in range(10):
        sm.update(9000, None, True)
    assert not sm.diode_fault


def test_single_bad_low_sample_is_not_a_diode_fault():
    sm = PilotStateMachine(debounce=2)
    feed(sm, 6000, low=-12000, n=3, pwm_on=True)
    sm.update(6000, -6000, True)
    sm.update(6000, -12000, True)
    assert not sm.diode_fault


def test_diode_fault_clears_on_unplug():
    sm = PilotStateMachine()
    feed(sm, 9000, low=-9000, n=5, pwm_on=True)
    assert sm.diode_fault
    feed(sm, 12000, low=-12000, n=3, pwm_on=True)
    assert sm.state == PILOT_A and not sm.diode_fault


def test_pilot_names_are_letters():
    assert "".join(PILOT_NAMES) == "ABCDEF"
