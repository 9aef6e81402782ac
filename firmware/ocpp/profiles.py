"""OCPP 1.6 feature profiles: the central-system-initiated actions each one
consists of, and SupportedFeatureProfiles derived from the handlers the
session has (a profile counts once every one of its actions is handled)."""
from firmware.compat import const
from firmware.settings import CSL, INT, OCPP, R

# In the order of the specification's section 3: "Profile:Action,Action;..". One
# string object: a tuple of names would be one heap object per name on a board
# running from ROMFS, and the table is read only when the central system asks.
PROFILES = ("Core:ChangeAvailability,ChangeConfiguration,ClearCache,DataTransfer,GetConfiguration,"
            "RemoteStartTransaction,RemoteStopTransaction,Reset,UnlockConnector;"
            "FirmwareManagement:GetDiagnostics,UpdateFirmware;"
            "LocalAuthListManagement:GetLocalListVersion,SendLocalList;"
            "Reservation:CancelReservation,ReserveNow;"
            "SmartCharging:ClearChargingProfile,GetCompositeSchedule,SetChargingProfile;"
            "RemoteTrigger:TriggerMessage")
_COUNT = const(6)


def supported(handlers):
    """The names of the profiles whose every action has a handler."""
    out = []
    for entry in PROFILES.split(";"):
        name, actions = entry.split(":")
        for a in actions.split(","):
            if a not in handlers:
                break
        else:
            out.append(name)
    return out


def define_keys(settings):
    settings.define("SupportedFeatureProfilesMaxLength", INT, _COUNT, R | OCPP)
    settings.define("SupportedFeatureProfiles", CSL, None, R | OCPP)  # getter: bind(handlers)


def bind(settings, handlers):
    settings.bind("SupportedFeatureProfiles", lambda: ",".join(supported(handlers)))
