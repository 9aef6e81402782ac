"""The go-e charger keys wired to the charge controller, in process: the whole
App over the simulated board, stepped with a fake clock (no sockets, no sleeps):
control ticks, the transaction rules and the energy counter as the running
charger schedules them."""
import pytest

from boards.host.board import HostBoard
from firmware.evse import local_limits
from firmware.app import App
from tests_host.certs import pem_pair


class Rig:
    def __init__(self, tmp_path):
        self.board = HostBoard()
        self.app = App(self.board, str(tmp_path / "flash"))
        self.s = self.app.settings
        self.c = self.app.controller
        self.limits = self.app.local_limits  # tcl, dwo, ocppf
        self.now = 0

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.now += 20
            self.board.step(self.now)
            self.c.tick(self.now)
            if self.now % 100 == 0:
                self.app.transactions.step(self.now)
            if self.now % 1000 == 0:
                self.app.energy.update(self.now)
                self.limits.check(self.now)

    def charge(self):
        self.board.sim_set("ev", "C")  # acs 0: a transaction starts on plug-in
        self.run(1500)
        assert self.c.contactor_closed
        return self

    @property
    def offered(self):
        return self.board.world.offered_amps()


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def test_amp_limits_the_pwm_offer(rig):
    rig.charge()
    assert rig.s.set("amp", 10) is None
    rig.run(200)
    assert rig.offered == 10


def test_amp_above_ama_is_refused_and_offer_unchanged(rig):
    rig.charge()
    rig.s.set("ama", 12)
    assert rig.s.set("amp", 14) == "amp: value 14 exceeds ama 12"
    rig.run(200)
    assert rig.offered == 12


def test_ama_limits_the_offer_below_amp(rig):
    rig.charge()
    rig.s.set("amp", 16)
    rig.s.set("ama", 8)
    rig.run(200)
    assert rig.offered == 8


def test_frc_off_stops_and_frc_neutral_resumes(rig):
    rig.charge()
    rig.s.set("frc", 1)
    rig.run(4000)
    assert not rig.c.contactor_closed and rig.offered == 0
    assert rig.s.get("modelStatus") == 4 and rig.s.get("alw") is False
    rig.s.set("frc", 0)
    rig.run(1500)
    assert rig.c.contactor_closed and rig.s.get("alw") is True


def test_tcl_limits_then_lapses_after_ten_minutes_without_refresh(rig):
    rig.charge()
    rig.limits._temporary_at = None
    rig.s.set("tcl", 7)
    rig.limits._temporary_at = rig.now  # the fake clock, not ticks_ms()
    rig.run(200)
    assert rig.offered == 7
    rig.run(local_limits.TEMPORARY_LAPSE_MS - 2000)
    assert rig.s.get("tcl") == 7
    rig.run(3000)
    assert rig.s.get("tcl") is None and rig.offered == 16


def test_dwo_stops_at_the_session_energy_limit(rig):
    rig.charge()
    rig.s.set("dwo", 5)  # 16 A x 3 x 230 V = 11 kW: 5 Wh in under 2 s
    rig.run(3000)
    assert rig.s.get("wh") >= 5
    rig.run(4000)
    assert not rig.c.contactor_closed and rig.s.get("modelStatus") == 6


def test_dwo_null_lifts_the_energy_limit(rig):
    rig.charge()
    rig.s.set("dwo", 1)
    rig.run(7000)
    assert not rig.c.contactor_closed
    rig.s.set("dwo", None)
    rig.run(2500)
    assert rig.c.contactor_closed


def test_unplug_clears_dwo_and_keeps_session_energy(rig):
    rig.charge()
    rig.run(2000)
    rig.s.set("dwo", 100000)
    rig.board.sim_set("ev", "A")
    rig.run(1000)
    assert rig.s.get("dwo") is None and rig.c.limit(local_limits.ENERGY) is None
    assert rig.s.get("wh") > 0


def test_psm_one_switches_to_single_phase(rig):
    rig.charge()
    rig.s.set("psm", 1)
    rig.run(12000)
    assert rig.board.world.phases_connected() == 1 and rig.c.contactor_closed
    assert rig.s.get("pnp") == 1 and rig.s.get("fsp") is True
    assert rig.s.get("pha")[:3] == [True, False, False]


def test_ust_always_locked_keeps_the_cable_locked_unplugged(rig):
    rig.s.set("ust", 2)
    rig.run(2000)
    assert rig.board.world.lock == 1 and rig.s.get("lck") == 2 and rig.s.get("cus") == 3


def test_ust_normal_leaves_socket_unlocked_without_car(rig):
    rig.run(2000)
    assert rig.board.world.lock == 0 and rig.s.get("cus") in (0, 1)


def test_nrg_has_sixteen_entries_while_charging(rig):
    rig.charge()
    rig.run(500)
    nrg = rig.s.get("nrg")
    assert len(nrg) == 16 and nrg[4] == 16 and nrg[11] == pytest.approx(3 * 16 * 230, rel=0.01)


def test_acu_is_the_offered_current_and_null_when_not_allowed(rig):
    assert rig.s.get("acu") is None
    rig.charge()
    assert rig.s.get("acu") == 16


def test_ocppf_applies_only_while_ocpp_enabled_and_offline(rig):
    rig.charge()
    rig.s.set("ocppf", 6)
    rig.run(1000)
    assert rig.offered == 16  # OCPP disabled: no fallback
    rig.s.set("ocppe", True)
    rig.run(1000)
    assert rig.offered == 6
    rig.s.set("ocppf", None)
    rig.run(1000)
    assert rig.offered == 16


@pytest.mark.parametrize("key,lo,hi", [("car", 0, 5), ("err", 0, 16), ("psm", 0, 2), ("ust", 0, 2), ("cus", 0, 5)])
def test_enum_keys_stay_in_documented_range(rig, key, lo, hi):
    rig.charge()
    assert lo <= rig.s.get(key) <= hi


def test_var_is_22_for_a_32_amp_three_phase_charger(rig):
    assert rig.s.get("var") == 22


def test_model_status_is_from_the_go_e_list(rig):
    rig.charge()
    assert rig.s.get("modelStatus") in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                        22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)


def test_secrets_read_as_null(rig):
    for k, v in (("ocppck", pem_pair()[1]), ("AuthorizationKey", "0123456789abcdef"), ("apw", "pw")):
        assert rig.s.set(k, v) is None
        assert rig.s.api_get(k) is None


def test_lowering_ama_below_amp_lowers_amp_with_it(rig):
    rig.charge()
    assert rig.s.set("amp", 12) is None
    assert rig.s.set("ama", 8) is None
    rig.run(200)
    assert rig.s.get("amp") == 8 and rig.offered == 8


def test_raising_ama_leaves_amp_where_it_was(rig):
    rig.s.set("amp", 12)
    rig.s.set("ama", 20)
    assert rig.s.get("amp") == 12


def test_amp_lowered_by_ama_survives_a_reboot(tmp_path):
    from firmware import log
    first = Rig(tmp_path)
    first.s.set("amp", 12)
    first.s.set("ama", 8)
    log.last_error = None
    again = Rig(tmp_path)  # the same flash: a reboot
    assert (again.s.get("ama"), again.s.get("amp")) == (8, 8)
    assert log.last_error is None
    again.charge()
    assert again.offered == 8


def test_stored_amp_above_stored_ama_is_clamped_not_reset(tmp_path):
    import json
    from firmware import log
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "settings.json").write_text(json.dumps({"ama": 8, "amp": 12}))
    log.last_error = None
    rig = Rig(tmp_path)
    assert (rig.s.get("ama"), rig.s.get("amp")) == (8, 8)
    assert log.last_error is None
    assert json.loads((flash / "settings.json").read_text())["amp"] == 8
