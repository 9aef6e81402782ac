"""OCPP Core profile, the charge point's own part: ChangeAvailability,
ChangeConfiguration, GetConfiguration, DataTransfer and Reset, and the Core
configuration keys no other module owns (BlinkRepeat, LightIntensity,
ConnectorPhaseRotation, GetConfigurationMaxKeys, NumberOfConnectors,
ResetRetries, SupportedFeatureProfiles, LocalAuthListEnabled) with go-e
`ocppr` and `ocppla`.

Decisions (where the spec leaves room):
- Availability is kept per connector (0 = the charge point, 1) and persisted in
  availability.json. Connector 0 sets both. Connector 1 is usable only while
  both are Operative. An Inoperative change while a transaction runs answers
  Scheduled and applies when the transaction stops; a later Operative cancels it.
- GetConfiguration with more keys than GetConfigurationMaxKeys is answered with
  CALLERROR OccurenceConstraintViolation: answering only some would let the
  central system take the missing ones for unknown. The limit bounds requests;
  GetConfiguration without keys returns every key.
- A reset attempt fails when stopping the running transaction raises or does
  not finish within its bound. It is tried 1 + ResetRetries times; then the
  charger reboots anyway, hard, since the central system asked for a reboot.
  Messages still queued need not be delivered first: the queue is on flash.
"""
import asyncio
import json

from firmware import log
from firmware.ocpp.rpc import CallError
from firmware.settings import BOOL, CSL, INT, OCPP, PERSIST, R, RW

_AVAIL_FILE = "availability.json"
NUMBER_OF_CONNECTORS = 1
GET_CONFIGURATION_MAX_KEYS = 64
PROFILES_MAX = 6  # Core, FirmwareManagement, LocalAuthListManagement, Reservation, SmartCharging, RemoteTrigger
ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
# go-e ocppr (phases rotated on the charger): L1 of the charger on grid L2, and so on.
_ROTATED = "STR"
_STOP_MS = 10000  # bound for stopping a transaction before a reset
_QUEUE_MS = {False: 10000, True: 2000}  # soft / hard: time given to deliver queued messages


def _parse_rotation(text):
    """'0.RST,1.STR' -> {0: 'RST', 1: 'STR'}, or an error text."""
    out = {}
    if not text:
        return out
    for item in text.split(","):
        parts = item.split(".", 1)
        try:
            n = int(parts[0])
            rot = parts[1]
        except (ValueError, IndexError):
            return "item %s: expected <connector>.<rotation>" % item
        if not 0 <= n <= NUMBER_OF_CONNECTORS:
            return "item %s: no connector %d" % (item, n)
        if rot not in ROTATIONS:
            return "item %s: rotation must be one of %s" % (item, ", ".join(ROTATIONS))
        if n in out:
            return "connector %d given twice" % n
        out[n] = rot
    return out


def _check_rotation(v):
    r = _parse_rotation(v)
    return r if isinstance(r, str) else None


class Core:
    def __init__(self, app):
        self.app = app
        self.settings = app.settings
        self.profiles = ["Core"]
        self._vendors = {}  # lower-case vendorId -> fn(message_id, data) -> (status, data)
        self._target = [True, True]  # availability asked for, per connector (persisted)
        self._applied = [True, True]  # availability in force (differs while Scheduled)
        self._stop_hooked = False
        self.resetting = False
        self._status_listeners = []

    # ---- for other modules ------------------------------------------------

    def add_profile(self, name):
        """A feature profile module announces itself (SupportedFeatureProfiles)."""
        if name not in self.profiles:
            self.profiles.append(name)

    def register_vendor(self, vendor_id, fn):
        """DataTransfer: fn(message_id, data) -> (status, data) for one vendorId."""
        self._vendors[vendor_id.lower()] = fn

    def operative(self, connector=1):
        """True when the connector (0: the charge point) is available for charging."""
        if connector == 0:
            return self._applied[0]
        return self._applied[0] and self._applied[1]

    def scheduled(self, connector=1):
        """True while an availability change waits for the transaction to end."""
        return self._target[connector] != self._applied[connector]

    def on_availability(self, fn):
        """fn() after each change of the availability in force."""
        self._status_listeners.append(fn)

    def rotation(self, connector=1):
        """Phase rotation of a connector ('RST', ..., 'Unknown')."""
        r = _parse_rotation(self.settings.get("ConnectorPhaseRotation"))
        if isinstance(r, str):
            return "Unknown"
        return r.get(connector, "Unknown")

    def grid_phases(self, connector=1):
        """Grid phase names of the charger's L1, L2, L3 by the connector's rotation;
        (L1, L2, L3) when the rotation is unknown."""
        rot = self.rotation(connector)
        if len(rot) != 3:
            return ("L1", "L2", "L3")
        return tuple("L%d" % ("RST".index(ch) + 1) for ch in rot)

    # ---- availability -------------------------------------------------------

    def load_availability(self):
        data, err = self.app.store.read_json(_AVAIL_FILE)
        if err:
            log.error(err)
        if isinstance(data, list) and len(data) == 2 and all(isinstance(x, bool) for x in data):
            self._target = list(data)
        self._apply()

    def _save_availability(self):
        try:
            self.app.store.write_json(_AVAIL_FILE, self._target)
        except OSError as e:
            log.error("availability not saved: %s" % e)
            return False
        return True

    def _apply(self):
        self._applied = list(self._target)
        self.app.controller.enable(self.operative(1))
        for fn in self._status_listeners:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - a listener must not block availability
                log.exception("availability listener", e)

    def _on_tx_stop(self, _tx):
        if self._target != self._applied:
            log.info("scheduled availability change applied")
            self._apply()

    def change_availability(self, payload):
        cid = payload["connectorId"]
        if isinstance(cid, bool) or not 0 <= cid <= NUMBER_OF_CONNECTORS:
            return {"status": "Rejected"}
        op = payload["type"] == "Operative"
        target = list(self._target)
        for c in range(cid, NUMBER_OF_CONNECTORS + 1) if cid == 0 else (cid,):
            target[c] = op
        if target != self._target:
            old = self._target
            self._target = target
            if not self._save_availability():
                # It would not survive a reboot (the spec asks that it does): refuse it.
                self._target = old
                return {"status": "Rejected"}
        tx = getattr(self.app, "transactions", None)
        if tx is not None and tx.active and self.operative(1) and not (target[0] and target[1]):
            # Taking the connector away mid-transaction waits for the transaction's end.
            if not self._stop_hooked:
                tx.on_stop(self._on_tx_stop)
                self._stop_hooked = True
            return {"status": "Accepted" if op else "Scheduled"}
        if self._applied != self._target:
            self._apply()
        return {"status": "Accepted"}

    # ---- configuration --------------------------------------------------------

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

    def _on_rotation(self, s):
        # ocppr mirrors connector 1's rotation; set directly, not through set(), to avoid a loop.
        self.settings.find("ocppr").value = self.rotation(1) not in ("RST", "Unknown", "NotApplicable")

    def _on_ocppr(self, s):
        rot = _ROTATED if s.value else "RST"
        r = _parse_rotation(self.settings.get("ConnectorPhaseRotation"))
        if isinstance(r, str):
            r = {}
        if r.get(0) == rot and r.get(1) == rot:
            return
        r[0] = r[1] = rot
        text = ",".join("%d.%s" % (c, r[c]) for c in sorted(r))
        err = self.settings.set("ConnectorPhaseRotation", text)
        if err:
            log.error(err)

    def _on_led(self, s):
        led = getattr(self.app.controller, "_led", None)
        if led is None:
            return
        led.set_intensity(self.settings.get("LightIntensity"))
        led.set_blink_repeat(self.settings.get("BlinkRepeat"))

    # ---- data transfer --------------------------------------------------------

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

    # ---- reset -------------------------------------------------------------

    def reset(self, payload):
        hard = payload["type"] == "Hard"
        if self.resetting:
            return {"status": "Accepted"}  # the reboot is already on its way
        # Resetting from when the answer is out: a Reset whose answer was lost is no promise.
        return {"status": "Accepted"}, lambda: self._begin_reset(hard)

    def _begin_reset(self, hard):
        self.resetting = True
        return self.run_reset(hard)

    async def _prepare_reset(self, reason, hard):
        tx = getattr(self.app, "transactions", None)
        if tx is not None and tx.active:
            try:
                await asyncio.wait_for(tx.stop(reason), _STOP_MS / 1000)
            except Exception as e:  # noqa: BLE001 - a failed attempt is retried, then overridden
                log.error("%s: stopping the transaction failed: %r" % (reason, e))
                return False
        q = getattr(self.app, "tx_queue", None)
        if q is not None:
            # Bounded: undelivered messages stay on flash and go out after the reboot.
            await q.wait_empty(_QUEUE_MS[hard])
        return True

    async def run_reset(self, hard):
        reason = "HardReset" if hard else "SoftReset"
        log.info("Reset " + reason)
        tries = 1 + self.settings.get("ResetRetries")
        ok = False
        for _ in range(tries):
            ok = await self._prepare_reset(reason, hard)
            if ok:
                break
        if not ok:
            log.error("%s: failed %d times, rebooting hard" % (reason, tries))
            hard = True
        self.app.request_reboot(hard)


def _api_values(settings, message_id, data):
    """Vendor DataTransfer of this firmware: messageId GetApiKeys, data a JSON list
    of go-e keys -> a JSON object of their values, like /api/status?filter=."""
    if message_id != "GetApiKeys":
        return "UnknownMessageId", None
    try:
        keys = json.loads(data) if data else []
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


def define_keys(settings, core):
    d = settings.define
    d("BlinkRepeat", INT, 3, RW | PERSIST | OCPP, 0, 20)
    d("LightIntensity", INT, 100, RW | PERSIST | OCPP, 0, 100)
    d("ConnectorPhaseRotationMaxLength", INT, NUMBER_OF_CONNECTORS + 1, R | OCPP)
    d("ConnectorPhaseRotation", CSL, "0.RST,1.RST", RW | PERSIST | OCPP, None, "ConnectorPhaseRotationMaxLength",
      check=_check_rotation)
    d("ocppr", BOOL, False, RW)
    d("GetConfigurationMaxKeys", INT, GET_CONFIGURATION_MAX_KEYS, R | OCPP)
    d("NumberOfConnectors", INT, NUMBER_OF_CONNECTORS, R | OCPP)
    d("ResetRetries", INT, 1, RW | PERSIST | OCPP, 0, 10)
    d("SupportedFeatureProfilesMaxLength", INT, PROFILES_MAX, R | OCPP)
    d("SupportedFeatureProfiles", CSL, None, R | OCPP, getter=lambda: ",".join(core.profiles))
    # The local list itself is the Local Auth List Management profile's; this is its switch.
    d("LocalAuthListEnabled", BOOL, True, RW | PERSIST | OCPP, alias="ocppla")


def setup(app):
    s = app.settings
    core = Core(app)
    define_keys(s, core)
    s.watch("ConnectorPhaseRotation", core._on_rotation)
    s.watch("ocppr", core._on_ocppr)
    s.watch("LightIntensity", core._on_led)
    s.watch("BlinkRepeat", core._on_led)
    core._on_rotation(None)
    core._on_led(None)
    core.register_vendor(_vendor_id(app), lambda mid, data: _api_values(s, mid, data))
    h = app.session.handlers
    h["ChangeAvailability"] = core.change_availability
    h["ChangeConfiguration"] = core.change_configuration
    h["GetConfiguration"] = core.get_configuration
    h["DataTransfer"] = core.data_transfer
    h["Reset"] = core.reset
    app.core = core
    core.load_availability()
    return core


def _vendor_id(app):
    return app.session.boot_info.get("chargePointVendor", "OpenWallbox")
