from types import SimpleNamespace

import pytest

from firmware.evse import connector
from firmware.evse.codes import PILOT_A, PILOT_B, PILOT_C, Err, ocpp_error_for
from tests_host.fakes import Rig

GOE_ERR = {0: "none", 1: "FiAc", 2: "FiDc", 3: "Phase", 4: "Overvolt", 5: "Overamp", 6: "Diode", 7: "PpInvalid",
           8: "GndInvalid", 9: "ContactorStuck", 10: "ContactorMiss", 11: "FiUnknown", 12: "Unknown",
           13: "Overtemp", 14: "NoComm", 15: "LockStuckOpen", 16: "LockStuckLocked"}
OCPP_ERRORS = {"ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature",
               "InternalError", "LocalListConflict", "NoError", "OtherError", "OverCurrentFailure",
               "OverVoltage", "PowerMeterFailure", "PowerSwitchFailure", "ReaderFailure", "ResetFailure",
               "UnderVoltage", "WeakSignal"}
GOE_MODEL_STATUS = set(range(0, 21)) | set(range(22, 25)) | set(range(26, 36))


def state(**kw):
    base = dict(fault=0, enabled=True, pilot=PILOT_A, authorized=False, finishing=False, offering=False,
                contactor_closed=False, complete=False, force=0, phase_switching=False, limit_deci_amps=160,
                limit_status=None, meter_failed=False, vendor_error_code=None, meter=None)
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.mark.parametrize("kw,status", [
    (dict(), "Available"),
    (dict(authorized=True), "Preparing"),
    (dict(pilot=PILOT_B), "Preparing"),
    (dict(pilot=PILOT_B, authorized=True, offering=True), "SuspendedEV"),
    (dict(pilot=PILOT_C, authorized=True, offering=True, contactor_closed=True), "Charging"),
    (dict(pilot=PILOT_C, authorized=True), "SuspendedEVSE"),
    (dict(pilot=PILOT_B, finishing=True), "Finishing"),
    (dict(enabled=False), "Unavailable"),
    (dict(enabled=False, fault=Err.DIODE), "Faulted"),
    (dict(pilot=PILOT_C, authorized=True, offering=True, fault=Err.OVERAMP), "Faulted"),
])
def test_ocpp_status_mapping(kw, status):
    assert connector.ocpp_status(state(**kw)) == status


@pytest.mark.parametrize("kw,car", [
    (dict(), 1),
    (dict(pilot=PILOT_B), 3),
    (dict(pilot=PILOT_C, contactor_closed=True), 2),
    (dict(pilot=PILOT_B, complete=True), 4),
    (dict(fault=Err.FI_DC), 5),
])
def test_goe_car_mapping(kw, car):
    assert connector.car(state(**kw)) == car


@pytest.mark.parametrize("kw,ms", [
    (dict(authorized=True), 15),
    (dict(authorized=True, force=2), 3),
    (dict(authorized=True, force=1), 4),
    (dict(), 2),
    (dict(fault=Err.DIODE), 26),
    (dict(fault=Err.OVERTEMP), 1),
    (dict(authorized=True, phase_switching=True), 23),
    # A limit below 6 A reports what its source said it means (set_limit's status).
    (dict(authorized=True, limit_deci_amps=0, limit_status=28), 28),
    (dict(authorized=True, limit_deci_amps=0, limit_status=35), 35),
    (dict(authorized=True, limit_deci_amps=0, limit_status=6), 6),
    (dict(authorized=True, limit_deci_amps=0, limit_status=None), 27),
    (dict(enabled=False), 28),
])
def test_goe_model_status_mapping(kw, ms):
    assert connector.model_status(state(**kw)) == ms
    assert ms in GOE_MODEL_STATUS


@pytest.mark.parametrize("err", sorted(GOE_ERR))
def test_every_goe_err_maps_to_an_ocpp_error_code(err):
    code = ocpp_error_for(err)
    assert code in OCPP_ERRORS
    assert (code == "NoError") == (err == 0)


@pytest.mark.parametrize("reason,code", [("PilotE", "OtherError"), ("PilotF", "OtherError"),
                                         ("Internal", "InternalError"), ("VentilationRequired", "OtherError")])
def test_unknown_err_is_told_apart_for_ocpp(reason, code):
    assert connector.ocpp_error_code(state(fault=Err.UNKNOWN, vendor_error_code=reason)) == code


def test_meter_failure_is_an_ocpp_error_without_fault():
    assert connector.ocpp_error_code(state(meter_failed=True)) == "PowerMeterFailure"


def test_controller_values_stay_inside_goe_tables_over_a_session():
    r = Rig(temperature=True)
    seen = set()
    script = [("ev", "B"), ("auth", True), ("ev", "C"), ("ev", "E"), ("ev", "C"), ("frc", 1), ("frc", 2),
              ("ev", "B"), ("auth", False), ("ev", "A")]
    for what, v in script:
        if what == "ev":
            r.ev = v
        elif what == "auth":
            r.ctrl.authorize(v)
        else:
            r.ctrl.set_force(v)
        for _ in range(20):
            r.step()
            c = r.ctrl
            seen.add(c.model_status)
            assert c.car in (1, 2, 3, 4, 5)
            assert c.err in GOE_ERR
            assert c.lock_status in range(6)
            assert c.ocpp_error_code in OCPP_ERRORS
    assert seen <= GOE_MODEL_STATUS


def test_zero_amp_transaction_profile_limit_is_ocpp_doesnt_want(tmp_path):
    from tests_host.fakes import Rig
    from firmware.ocpp.transactions import Transactions
    from firmware.settings import Settings
    from firmware.store import Store
    from firmware import keys
    from firmware.clock import Clock

    class Queue:
        def max_ref(self):
            return 0

        def on_answer(self, fn):
            pass

    class Energy:
        total_wh = 0

        def flush(self):
            pass

    r = Rig()
    r.plug_and_charge()
    r.ctrl.authorize(False)
    s = Settings()
    keys.define_keys(s)
    t = Transactions(s, r.ctrl, Energy(), Clock(), Store(str(tmp_path)), Queue())
    t.grant("TAG", limit=(0, None))  # a RemoteStartTransaction TxProfile of 0 A
    r.step()
    assert r.ctrl.model_status == 28
