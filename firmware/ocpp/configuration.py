"""OCPP GetConfiguration and ChangeConfiguration over the settings registry,
and the keys GetConfigurationMaxKeys and NumberOfConnectors."""
from firmware.ocpp.rpc import CallError
from firmware.settings import INT, OCPP, R

NUMBER_OF_CONNECTORS = 1
GET_CONFIGURATION_MAX_KEYS = 64


def define_keys(settings):
    d = settings.define
    d("GetConfigurationMaxKeys", INT, GET_CONFIGURATION_MAX_KEYS, R | OCPP)
    d("NumberOfConnectors", INT, NUMBER_OF_CONNECTORS, R | OCPP)


class Configuration:
    def __init__(self, settings):
        self.settings = settings

    def handlers(self):
        return {"ChangeConfiguration": self.change_configuration, "GetConfiguration": self.get_configuration}

    def change_configuration(self, payload):
        return {"status": self.settings.change_configuration(payload["key"], payload["value"])}

    def get_configuration(self, payload):
        keys = payload.get("key")
        limit = self.settings.get("GetConfigurationMaxKeys")
        if keys and len(keys) > limit:
            raise CallError("OccurenceConstraintViolation",
                            "at most %d keys per request (GetConfigurationMaxKeys)" % limit)
        known, unknown = self.settings.get_configuration(keys)
        out = {"configurationKey": known}
        if unknown:
            out["unknownKey"] = unknown
        return out
