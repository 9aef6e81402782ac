"""The connector model: maps the controller's state onto OCPP connector status
and error code, and onto the go-e `car` and `modelStatus` values.

Pure functions of a controller's read-only properties; they return constants,
so the control loop can evaluate them every tick without allocating.

OCPP status, first match wins:
  fault -> Faulted; disabled -> Unavailable; no EV -> Available (Preparing if a
  session is already authorized); session ended, EV still plugged -> Finishing;
  not authorized -> Preparing; offering: EV in B -> SuspendedEV, else Charging;
  not offering (limit, force off, phase switch, ...) -> SuspendedEVSE.
"""
from firmware.compat import const
from firmware.evse import codes
from firmware.evse.codes import PILOT_A, PILOT_B, Err, ModelStatus

# go-e `car` (only this module computes it).
_CAR_IDLE = const(1)
_CAR_CHARGING = const(2)
_CAR_WAIT = const(3)
_CAR_COMPLETE = const(4)
_CAR_ERROR = const(5)

def ocpp_status(c):
    if c.fault:
        return codes.FAULTED
    if not c.enabled:
        return codes.UNAVAILABLE
    st = c.pilot
    if st == PILOT_A:
        return codes.PREPARING if c.authorized else codes.AVAILABLE
    if c.finishing:
        return codes.FINISHING
    if not c.authorized:
        return codes.PREPARING
    if c.offering:
        return codes.SUSPENDED_EV if st == PILOT_B else codes.CHARGING
    return codes.SUSPENDED_EVSE


def ocpp_error_code(c):
    f = c.fault
    if f == Err.UNKNOWN:
        # go-e has one code for several causes; OCPP tells a crash apart. Pilot E/F
        # stop charging: Faulted, so OtherError (EVCommunicationError is only a
        # warning) with vendorErrorCode PilotE / PilotF.
        r = c.vendor_error_code
        if r == "Internal":
            return "InternalError"
        return "OtherError"
    if f:
        return codes.ocpp_error_for(f)
    if c.meter_failed:
        return "PowerMeterFailure"
    return codes.NO_ERROR


def car(c):
    if c.fault:
        return _CAR_ERROR
    st = c.pilot
    if st == PILOT_A:
        return _CAR_IDLE
    if c.contactor_closed:
        return _CAR_CHARGING
    if c.complete:
        return _CAR_COMPLETE
    return _CAR_WAIT


def model_status(c):
    f = c.fault
    if f:
        return ModelStatus.OVERTEMP if f == Err.OVERTEMP else ModelStatus.ERROR
    if not c.enabled:
        return ModelStatus.OCPP_DOESNT_WANT
    if c.force == 1:
        return ModelStatus.FORCE_OFF
    if c.phase_switching:
        return ModelStatus.PHASE_SWITCH
    if not c.authorized:
        return ModelStatus.ACCESS_CONTROL_WAIT
    if c.limit_deci_amps < 60:
        # What the limiting source said its limit means (set_limit's status).
        m = c.limit_status
        return ModelStatus.LOAD_MANAGEMENT if m is None else m
    if c.force == 2:
        return ModelStatus.FORCE_ON
    return ModelStatus.FALLBACK_DEFAULT
