"""Codes the evse layer reports: IEC 61851 pilot states, the go-e `car`, `err`,
`modelStatus` and `cus` values, and the OCPP 1.6 connector statuses and error codes.

Clients map go-e values through fixed tables and crash on unknown ones, so only
values from the published lists appear here. Class members are plain ints:
const() names are global to a module when compiled, and these would clash.
"""
from firmware.compat import const

# Pilot states as small ints; PILOT_NAMES gives the letter.
PILOT_A = const(0)  # +12 V: no EV
PILOT_B = const(1)  # +9 V: EV connected, not requesting
PILOT_C = const(2)  # +6 V: EV requests charge
PILOT_D = const(3)  # +3 V: EV requests charge with ventilation
PILOT_E = const(4)  # 0 V: pilot shorted to PE / no supply
PILOT_F = const(5)  # -12 V: EVSE error
PILOT_NAMES = ("A", "B", "C", "D", "E", "F")


class Err:
    """go-e `err`; the controller's `fault` uses the same numbers."""
    NONE = 0
    FI_AC = 1
    FI_DC = 2
    PHASE = 3
    OVERVOLT = 4
    OVERAMP = 5
    DIODE = 6
    PP_INVALID = 7
    GND_INVALID = 8
    CONTACTOR_STUCK = 9
    CONTACTOR_MISS = 10
    FI_UNKNOWN = 11
    UNKNOWN = 12
    OVERTEMP = 13
    NO_COMM = 14
    LOCK_STUCK_OPEN = 15
    LOCK_STUCK_LOCKED = 16


class ModelStatus:
    """The go-e `modelStatus` subset this charger reports (why it charges or not)."""
    NO_CHARGE_CTRL_DATA = 0  # not used by the controller; kept for the API's table
    OVERTEMP = 1  # temperature cut-off
    ACCESS_CONTROL_WAIT = 2  # session not authorized
    FORCE_ON = 3  # frc=2
    FORCE_OFF = 4  # frc=1
    ENERGY_LIMIT = 6  # limit source "dwo" at 0
    FALLBACK_DEFAULT = 15  # allowed to charge, nothing special
    PHASE_SWITCH = 23  # 1p/3p switch sequence running
    ERROR = 26  # a fault
    LOAD_MANAGEMENT = 27  # any other limit source below 6 A ("tcl", "lm", ...)
    OCPP_DOESNT_WANT = 28  # limit "ocpp" below 6 A, or connector made unavailable
    OCPP_FALLBACK = 35  # limit "ocppf" (offline fallback) below 6 A


class Cus:
    """go-e `cus`: cable unlock status."""
    UNKNOWN = 0
    UNLOCKED = 1
    UNLOCK_FAILED = 2
    LOCKED = 3
    LOCK_FAILED = 4
    UNLOCKED_POWER_OUT = 5


# OCPP 1.6 ChargePointStatus values this connector reports.
AVAILABLE = "Available"
PREPARING = "Preparing"
CHARGING = "Charging"
SUSPENDED_EV = "SuspendedEV"
SUSPENDED_EVSE = "SuspendedEVSE"
FINISHING = "Finishing"
FAULTED = "Faulted"
UNAVAILABLE = "Unavailable"

NO_ERROR = "NoError"

# err -> OCPP ChargePointErrorCode of a Faulted connector. EVCommunicationError
# is only a warning beside Preparing/Suspended*/Finishing (OCPP 1.6 4.9), so EV-side
# faults that stop charging are OtherError, told apart by vendorErrorCode.
_OCPP_ERROR = (
    NO_ERROR,  # 0
    "GroundFailure",  # 1 FiAc
    "GroundFailure",  # 2 FiDc
    "OtherError",  # 3 Phase
    "OverVoltage",  # 4
    "OverCurrentFailure",  # 5
    "OtherError",  # 6 Diode
    "OtherError",  # 7 PpInvalid
    "GroundFailure",  # 8 GndInvalid
    "PowerSwitchFailure",  # 9 ContactorStuck
    "PowerSwitchFailure",  # 10 ContactorMiss
    "GroundFailure",  # 11 FiUnknown
    "OtherError",  # 12 Unknown
    "HighTemperature",  # 13
    "OtherError",  # 14 NoComm
    "ConnectorLockFailure",  # 15
    "ConnectorLockFailure",  # 16
)


# go-e names of the err numbers, in order: the vendorErrorCode of an OtherError without a
# better one. One string, split when a fault is reported: a tuple would cost a name each.
_ERR_NAMES = "None FiAc FiDc Phase Overvolt Overamp Diode PpInvalid GndInvalid ContactorStuck ContactorMiss " \
             "FiUnknown Unknown Overtemp NoComm LockStuckOpen LockStuckLocked"


def err_name(err):
    names = _ERR_NAMES.split()
    if 0 <= err < len(names):
        return names[err]
    return "Err%d" % err


def ocpp_error_for(err):
    if 0 <= err < len(_OCPP_ERROR):
        return _OCPP_ERROR[err]
    return "OtherError"
