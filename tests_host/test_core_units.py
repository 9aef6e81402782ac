"""Core profile handlers and keys (availability, configuration, profiles, phase
rotation, LED keys, DataTransfer, Reset in firmware/ocpp/) over recording fakes."""
import asyncio
import json

import pytest

from firmware.evse import codes
from firmware.evse.led import StatusLed
from firmware import keys
from firmware.ocpp import configuration, profiles
from firmware.ocpp.availability import Availability
from firmware.ocpp.configuration import Configuration
from firmware.ocpp.connector_status import StatusHolds
from firmware.ocpp.data_transfer import DataTransfer, api_values
from firmware.ocpp.led_keys import LedKeys
from firmware.ocpp.phase_rotation import PhaseRotation
from firmware.ocpp.reset import Reset
from firmware.ocpp.rpc import CallError
from firmware.settings import INT, OCPP, PERSIST, REBOOT, RW, Settings
from firmware.store import Store
from tests_host.fakes import FakeOutput


class FakeController:
    def __init__(self):
        self.enabled = True
        self.led = StatusLed(FakeOutput())

    def enable(self, on):
        self.enabled = on


class FakeSession:
    def __init__(self):
        self.handlers = {}
        self.boot_info = {"chargePointVendor": "OpenWallbox"}


class FakeTransactions:
    def __init__(self, active=False, fail=0):
        self.active = active
        self.stops = []
        self.fail = fail  # this many stop() calls raise first
        self._on_stop = []

    def on_stop(self, fn):
        self._on_stop.append(fn)

    async def stop(self, reason):
        self.stops.append(reason)
        if self.fail:
            self.fail -= 1
            raise OSError("flash full")
        self.end()

    def end(self):
        self.active = False
        for fn in self._on_stop:
            fn(object())


class FakeQueue:
    def __init__(self):
        self.waits = []

    async def wait_empty(self, timeout_ms):
        self.waits.append(timeout_ms)
        return True


class FakeApp:
    """The Core services wired as firmware/app.py wires them, over fakes."""

    def __init__(self, path, transactions=None, tx_queue=None):
        self.store = Store(str(path))
        s = self.settings = Settings(self.store)
        s.load()
        keys.define_keys(s)
        self.controller = FakeController()
        self.session = FakeSession()
        self.reboots = []
        self.holds = StatusHolds()
        h = self.session.handlers
        self.availability = Availability(self.store, self.controller, transactions, self.holds)
        self.data_transfer = DataTransfer()
        self.data_transfer.register_vendor("OpenWallbox", lambda mid, data: api_values(s, mid, data))
        for svc in (self.availability, Configuration(s), self.data_transfer,
                    Reset(s, transactions, tx_queue, self.request_reboot)):
            h.update(svc.handlers())
        self.phase_rotation = PhaseRotation(s)
        LedKeys(s, self.controller.led)
        profiles.bind(s, h)
        self.availability.load()

    def request_reboot(self, hard=False):
        self.reboots.append(hard)


def make(tmp_path, **kw):
    return FakeApp(tmp_path, **kw)


def call(app, action, payload):
    return app.session.handlers[action](payload)


# ---- ChangeAvailability ----

def test_change_availability_of_connector_2_is_rejected(tmp_path):
    app = make(tmp_path)
    assert call(app, "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}) == {"status": "Rejected"}
    assert app.controller.enabled


def test_inoperative_connector_disables_the_controller(tmp_path):
    app = make(tmp_path)
    assert call(app, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == {"status": "Accepted"}
    assert app.controller.enabled is False
    assert app.availability.operative(0) and not app.availability.operative(1)


def test_inoperative_connector_0_makes_charge_point_and_connector_unavailable(tmp_path):
    app = make(tmp_path)
    assert call(app, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}) == {"status": "Accepted"}
    assert not app.availability.operative(0) and not app.availability.operative(1)
    assert app.controller.enabled is False
    call(app, "ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    assert app.availability.operative(1) and app.controller.enabled


def test_availability_survives_a_restart(tmp_path):
    app = make(tmp_path)
    call(app, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    again = make(tmp_path)
    assert again.controller.enabled is False and not again.availability.operative(1)


def test_corrupt_availability_file_falls_back_to_operative(tmp_path):
    (tmp_path / "availability.json").write_text("[tru")
    app = make(tmp_path)
    assert app.availability.operative(1) and app.controller.enabled


def test_inoperative_while_transaction_runs_is_scheduled_until_it_stops(tmp_path):
    tx = FakeTransactions(active=True)
    app = make(tmp_path, transactions=tx)
    assert call(app, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == {"status": "Scheduled"}
    assert app.controller.enabled and app.availability.scheduled(1)
    tx.end()
    assert app.controller.enabled is False and not app.availability.scheduled(1)


def test_operative_cancels_a_scheduled_inoperative(tmp_path):
    tx = FakeTransactions(active=True)
    app = make(tmp_path, transactions=tx)
    call(app, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    assert call(app, "ChangeAvailability", {"connectorId": 0, "type": "Operative"}) == {"status": "Accepted"}
    tx.end()
    assert app.controller.enabled and app.availability.operative(0)


def test_scheduled_change_is_persisted_and_applies_at_next_boot(tmp_path):
    app = make(tmp_path, transactions=FakeTransactions(active=True))
    call(app, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    again = make(tmp_path)
    assert not again.availability.operative(1)


def test_availability_listener_runs_on_each_applied_change(tmp_path):
    app = make(tmp_path)
    seen = []
    app.availability.on_availability(lambda: seen.append(app.availability.operative(1)))
    call(app, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    call(app, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    assert seen == [False, True]


# ---- ChangeConfiguration / GetConfiguration ----

@pytest.mark.parametrize("key,value,status", [
    ("BlinkRepeat", "5", "Accepted"),
    ("NumberOfConnectors", "2", "Rejected"),
    ("NoSuchKey", "1", "NotSupported"),
    ("LightIntensity", "bright", "Rejected"),
    ("LightIntensity", "101", "Rejected"),
    ("ConnectorPhaseRotation", "1.XYZ", "Rejected"),
    ("SupportedFeatureProfiles", "Core", "Rejected"),
])
def test_change_configuration_outcome(tmp_path, key, value, status):
    app = make(tmp_path)
    assert call(app, "ChangeConfiguration", {"key": key, "value": value}) == {"status": status}


def test_get_configuration_lists_requested_and_unknown_keys(tmp_path):
    app = make(tmp_path)
    res = call(app, "GetConfiguration", {"key": ["numberofconnectors", "Nope"]})
    assert res == {"configurationKey": [{"key": "NumberOfConnectors", "readonly": True, "value": "1"}],
                   "unknownKey": ["Nope"]}


def test_get_configuration_without_keys_returns_all_ocpp_keys(tmp_path):
    app = make(tmp_path)
    keys = [e["key"] for e in call(app, "GetConfiguration", {})["configurationKey"]]
    assert "GetConfigurationMaxKeys" in keys and "LocalAuthListEnabled" in keys
    assert "ocppr" not in keys
    assert "unknownKey" not in call(app, "GetConfiguration", {})


def test_get_configuration_with_more_keys_than_the_maximum_is_a_callerror(tmp_path):
    app = make(tmp_path)
    keys = ["K%d" % i for i in range(configuration.GET_CONFIGURATION_MAX_KEYS + 1)]
    with pytest.raises(CallError) as e:
        call(app, "GetConfiguration", {"key": keys})
    assert e.value.code == "OccurenceConstraintViolation"


def _handle(app, *actions):
    for a in actions:
        app.session.handlers[a] = lambda payload: {}


_CORE_ELSEWHERE = ("ClearCache", "RemoteStartTransaction", "RemoteStopTransaction", "UnlockConnector")


def test_supported_feature_profiles_is_core_once_every_core_action_is_handled(tmp_path):
    app = make(tmp_path)
    assert app.settings.get("SupportedFeatureProfiles") == ""  # auth and transactions are not wired here
    _handle(app, *_CORE_ELSEWHERE)
    assert app.settings.get("SupportedFeatureProfiles") == "Core"


def test_supported_feature_profiles_lists_a_profile_whose_actions_are_registered(tmp_path):
    app = make(tmp_path)
    _handle(app, *_CORE_ELSEWHERE)
    _handle(app, "SetChargingProfile", "ClearChargingProfile")
    assert app.settings.get("SupportedFeatureProfiles") == "Core"  # GetCompositeSchedule missing: not yet
    _handle(app, "GetCompositeSchedule", "TriggerMessage")
    assert app.settings.get("SupportedFeatureProfiles") == "Core,SmartCharging,RemoteTrigger"


def test_supported_feature_profiles_of_the_application_is_core(tmp_path):
    from boards.host.board import HostBoard
    from firmware.app import App
    app = App(HostBoard(str(tmp_path)), str(tmp_path))
    assert app.settings.get("SupportedFeatureProfiles") == "Core"


# ---- phase rotation ----

def test_ocppr_true_writes_connector_phase_rotation(tmp_path):
    app = make(tmp_path)
    assert app.settings.set("ocppr", True) is None
    assert app.settings.get("ConnectorPhaseRotation") == "0.STR,1.STR"
    assert app.phase_rotation.grid_phases(1) == ("L2", "L3", "L1")


def test_connector_phase_rotation_change_shows_in_ocppr(tmp_path):
    app = make(tmp_path)
    assert call(app, "ChangeConfiguration", {"key": "ConnectorPhaseRotation", "value": "1.TRS"}) == \
        {"status": "Accepted"}
    assert app.settings.get("ocppr") is True
    assert app.phase_rotation.rotation(0) == "Unknown"
    call(app, "ChangeConfiguration", {"key": "ConnectorPhaseRotation", "value": "0.RST,1.RST"})
    assert app.settings.get("ocppr") is False


def test_connector_phase_rotation_is_limited_by_its_max_length(tmp_path):
    app = make(tmp_path)
    res = call(app, "ChangeConfiguration", {"key": "ConnectorPhaseRotation", "value": "0.RST,1.RST,1.RTS"})
    assert res == {"status": "Rejected"}


def test_connector_phase_rotation_rejects_a_connector_given_twice(tmp_path):
    app = make(tmp_path)
    assert app.settings.set("ConnectorPhaseRotation", "1.RST,1.RTS") is not None


# ---- LED keys ----

def _led_on_ms(led, pin, start, ms):
    on = 0
    for t in range(start, start + ms):
        led.update(t)
        on += pin.level
    return on


def test_light_intensity_zero_keeps_the_led_dark(tmp_path):
    app = make(tmp_path)
    led = app.controller.led
    led.show(codes.AVAILABLE)
    call(app, "ChangeConfiguration", {"key": "LightIntensity", "value": "0"})
    assert _led_on_ms(led, led._pin, 0, 100) == 0
    call(app, "ChangeConfiguration", {"key": "LightIntensity", "value": "40"})
    assert _led_on_ms(led, led._pin, 100, 100) == 100


def test_light_intensity_sets_the_duty_of_a_pwm_led(tmp_path):
    from tests_host.fakes import FakePWM
    led = StatusLed(FakePWM())
    led.show(codes.AVAILABLE)
    led.set_intensity(50)
    led.update(0)
    assert led._pin.duty_u16() == 65535 * 50 // 100


def test_blink_repeat_sets_the_number_of_fault_flashes_per_group(tmp_path):
    app = make(tmp_path)
    led = app.controller.led
    led.show(codes.FAULTED)
    call(app, "ChangeConfiguration", {"key": "BlinkRepeat", "value": "2"})
    pin = led._pin
    pin.changes.clear()
    for t in range(0, 2 * 250 + 1000):  # one group: 2 flashes, then the pause
        led.update(t)
    assert pin.changes.count(1) == 2


# ---- DataTransfer ----

def test_data_transfer_to_an_unknown_vendor(tmp_path):
    app = make(tmp_path)
    assert call(app, "DataTransfer", {"vendorId": "com.example"}) == {"status": "UnknownVendorId"}


def test_data_transfer_reaches_a_registered_vendor_handler(tmp_path):
    app = make(tmp_path)
    got = []

    def handler(mid, data):
        got.append((mid, data))
        return "Accepted", {"echo": data}

    app.data_transfer.register_vendor("com.Example", handler)
    res = call(app, "DataTransfer", {"vendorId": "COM.EXAMPLE", "messageId": "Echo", "data": "x"})
    assert got == [("Echo", "x")]
    assert res == {"status": "Accepted", "data": '{"echo":"x"}'}


def test_data_transfer_handler_error_answers_rejected(tmp_path):
    app = make(tmp_path)
    app.data_transfer.register_vendor("v", lambda mid, data: 1 / 0)
    assert call(app, "DataTransfer", {"vendorId": "v"}) == {"status": "Rejected"}


def test_own_vendor_answers_unknown_message_id(tmp_path):
    app = make(tmp_path)
    res = call(app, "DataTransfer", {"vendorId": "OpenWallbox", "messageId": "Nope"})
    assert res == {"status": "UnknownMessageId"}


def test_own_vendor_get_api_keys_returns_values(tmp_path):
    app = make(tmp_path)
    res = call(app, "DataTransfer", {"vendorId": "OpenWallbox", "messageId": "GetApiKeys",
                                     "data": '["NumberOfConnectors","nope"]'})
    assert res["status"] == "Accepted" and json.loads(res["data"]) == {"NumberOfConnectors": 1}


# ---- Reset ----

def run_reset(app, kind):
    res, after = call(app, "Reset", {"type": kind})
    assert res == {"status": "Accepted"}
    asyncio.run(after())


def test_soft_reset_stops_the_transaction_then_reboots_soft(tmp_path):
    tx = FakeTransactions(active=True)
    q = FakeQueue()
    app = make(tmp_path, transactions=tx, tx_queue=q)
    run_reset(app, "Soft")
    assert tx.stops == ["SoftReset"] and len(q.waits) == 1 and app.reboots == [False]


def test_hard_reset_stops_with_hardreset_and_reboots_hard(tmp_path):
    tx = FakeTransactions(active=True)
    app = make(tmp_path, transactions=tx, tx_queue=FakeQueue())
    run_reset(app, "Hard")
    assert tx.stops == ["HardReset"] and app.reboots == [True]


def test_reset_without_transactions_module_reboots(tmp_path):
    app = make(tmp_path)
    run_reset(app, "Soft")
    assert app.reboots == [False]


def test_failed_reset_is_retried_reset_retries_times_then_reboots_hard(tmp_path):
    tx = FakeTransactions(active=True, fail=5)
    app = make(tmp_path, transactions=tx)
    app.settings.set("ResetRetries", 2)
    run_reset(app, "Soft")
    assert tx.stops == ["SoftReset"] * 3 and app.reboots == [True]


def test_failed_reset_attempt_followed_by_success_reboots_as_asked(tmp_path):
    tx = FakeTransactions(active=True, fail=1)
    app = make(tmp_path, transactions=tx)
    run_reset(app, "Soft")
    assert tx.stops == ["SoftReset"] * 2 and app.reboots == [False]


def test_second_reset_while_one_runs_starts_no_second_sequence(tmp_path):
    app = make(tmp_path)
    _, after = call(app, "Reset", {"type": "Soft"})
    running = after()  # the answer is out: the reset is on its way
    assert call(app, "Reset", {"type": "Hard"}) == {"status": "Accepted"}
    running.close()


def test_reset_whose_answer_never_left_is_carried_out_when_asked_again(tmp_path):
    from firmware.ocpp.rpc import Rpc
    app = make(tmp_path)
    sent = []
    link_down = [True]

    async def send(text):
        if link_down[0]:
            raise OSError("connection reset")
        sent.append(json.loads(text))
    rpc = Rpc(send, app.session.handlers)

    async def go():
        await rpc.feed('[2,"r1","Reset",{"type":"Soft"}]')  # its answer is lost: nothing was promised
        link_down[0] = False
        await rpc.feed('[2,"r2","Reset",{"type":"Soft"}]')
        for _ in range(20):
            if app.reboots:
                break
            await asyncio.sleep(0)  # the reset task runs
    asyncio.run(go())
    assert sent == [[3, "r2", {"status": "Accepted"}]] and app.reboots == [False]


def test_change_availability_that_cannot_be_saved_is_rejected_and_not_applied(tmp_path):
    app = make(tmp_path)

    def full(name, obj):
        raise OSError(28, "no space left")
    app.store.write_json = full
    assert call(app, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == {"status": "Rejected"}
    assert app.controller.enabled and app.availability.operative(1)


def test_change_configuration_that_cannot_be_saved_is_rejected_and_not_applied(tmp_path):
    app = make(tmp_path)
    s = app.settings
    s.define("RebootKey", INT, 0, RW | PERSIST | OCPP | REBOOT, 0, 9)

    def full(name, obj):
        raise OSError(28, "no space left")
    app.store.write_json = full
    for key in ("BlinkRepeat", "RebootKey"):
        before = s.get(key)
        assert call(app, "ChangeConfiguration", {"key": key, "value": "5"}) == {"status": "Rejected"}
        assert s.get(key) == before
    assert "not saved" in s.set("BlinkRepeat", 7)


def test_supported_feature_profiles_max_length_counts_every_profile_of_the_table():
    from firmware.ocpp import profiles
    from firmware.settings import Settings
    s = Settings()
    profiles.define_keys(s)
    assert s.get("SupportedFeatureProfilesMaxLength") == len(profiles.PROFILES.split(";")) == 6
