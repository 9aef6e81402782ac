"""OCPP DataTransfer from the central system: vendor extensions registered by
vendorId, and this firmware's own (messageId GetApiKeys)."""
import json

from firmware import jsonin, log


class DataTransfer:
    def __init__(self):
        self._vendors = {}  # lower-case vendorId -> fn(message_id, data) -> (status, data)

    def handlers(self):
        return {"DataTransfer": self.data_transfer}

    def register_vendor(self, vendor_id, fn):
        """fn(message_id, data) -> (status, data) for one vendorId."""
        self._vendors[vendor_id.lower()] = fn

    def data_transfer(self, payload):
        fn = self._vendors.get(payload["vendorId"].lower())
        if fn is None:
            return {"status": "UnknownVendorId"}
        try:
            status, data = fn(payload.get("messageId"), payload.get("data"))
        except Exception as e:  # noqa: BLE001 - a vendor extension must not end the session
            log.exception("DataTransfer " + payload["vendorId"], e)
            return {"status": "Rejected"}
        out = {"status": status}
        if data is not None:
            out["data"] = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        return out


def api_values(settings, message_id, data):
    """Vendor DataTransfer of this firmware: messageId GetApiKeys, data a JSON list
    of go-e keys -> a JSON object of their values, like /api/status?filter=."""
    if message_id != "GetApiKeys":
        return "UnknownMessageId", None
    try:
        keys = jsonin.loads(data) if data else []
    except ValueError:
        return "Rejected", None
    if not isinstance(keys, list):
        return "Rejected", None
    out = {}
    for k in keys:
        if isinstance(k, str):
            try:
                out[k] = settings.api_get(k)
            except KeyError:
                pass
    return "Accepted", out
