"""The StatusNotification machine (firmware/ocpp/status.py) over fakes and a fake clock."""
import asyncio

from firmware.clock import Clock
from firmware.evse.codes import Err
from firmware.ocpp import status as ocpp_status
from firmware.ocpp.connector_status import RESERVED, StatusHolds
from firmware.ocpp.rpc import CallTimeout
from firmware.settings import Settings


# The connector model's inputs (firmware/evse/connector.py) that give each status.
_INPUTS = {
    "Available": dict(pilot=0),
    "Preparing": dict(pilot=1),
    "Charging": dict(pilot=2, authorized=True, offering=True),
    "SuspendedEV": dict(pilot=1, authorized=True, offering=True),
    "SuspendedEVSE": dict(pilot=2, authorized=True),
    "Finishing": dict(pilot=1, finishing=True),
    "Unavailable": dict(enabled=False),
    "Faulted": dict(),
}


class FakeController:
    """The controller as the reporter reads it: a status as of its last tick and
    the connector model's inputs that give that status."""

    def __init__(self):
        self.ocpp_error_code = "NoError"
        self.vendor_error_code = None
        self.listeners = []
        self._inputs("Available", 0)

    def _inputs(self, status, fault):
        self.ocpp_status = status
        self.fault = fault or (Err.UNKNOWN if status == "Faulted" else 0)
        self.enabled, self.pilot, self.authorized, self.finishing, self.offering = True, 0, False, False, False
        for k, v in _INPUTS[status].items():
            setattr(self, k, v)
        self.plugged = self.pilot != 0

    @property
    def err(self):
        return self.fault

    def add_listener(self, fn):
        self.listeners.append(fn)

    def set(self, status, error="NoError", vendor=None, fault=0):
        self._inputs(status, fault)
        self.ocpp_error_code = error
        self.vendor_error_code = vendor
        for fn in self.listeners:
            fn("status", status)


class FakeSession:
    def __init__(self):
        self.online = asyncio.Event()
        self.sent = []
        self.fail = 0
        self._listeners = []

    def on_online(self, fn):
        self._listeners.append(fn)

    def go_online(self):
        self.online.set()
        for fn in self._listeners:
            fn()

    async def call(self, action, payload, timeout_ms=None, msg_id=None):
        if self.fail:
            self.fail -= 1
            raise CallTimeout("no answer")
        self.sent.append((action, payload))
        return {}


class FakeApp:
    def __init__(self):
        self.now = 0
        self.settings = Settings()
        self.clock = Clock(lambda: self.now)
        self.controller = FakeController()
        self.session = FakeSession()
        self.holds = StatusHolds()


def make(hold_s=0):
    app = FakeApp()
    ocpp_status.define_keys(app.settings)
    r = ocpp_status.StatusReporter(app.settings, app.clock, app.session, app.controller, app.holds,
                                   ticks=lambda: app.now)
    app.settings.set("MinimumStatusDuration", hold_s)
    return app, r


def due_after(r, app, ms):
    app.now += ms
    r.observe(app.now)
    return r.due(app.now)


def test_both_connectors_are_due_at_start():
    app, r = make()
    r.observe(0)
    assert r.due(0) == (0, 0)
    r._sent[0] = ("Available", "NoError", None)
    assert r.due(0) == (1, 0)


def test_first_report_after_coming_online_ignores_minimum_status_duration():
    app, r = make(hold_s=30)
    app.controller.set("Preparing")
    r.observe(0)
    assert r.due(10) == (0, 0)


def test_status_is_held_minimum_status_duration_before_it_is_due():
    app, r = make(hold_s=5)
    r.observe(0)
    r._sent = [("Available", "NoError", None)] * 2
    app.controller.set("Preparing")
    assert due_after(r, app, 1000) == (None, 5000)
    assert due_after(r, app, 4000) == (None, 1000)
    assert due_after(r, app, 1000) == (1, 0)


def test_status_that_flips_back_within_the_duration_is_never_due():
    app, r = make(hold_s=5)
    r.observe(0)
    r._sent = [("Available", "NoError", None)] * 2
    app.controller.set("Preparing")
    due_after(r, app, 1000)
    app.controller.set("Available")
    assert due_after(r, app, 10000) == (None, None)


def test_faulted_is_due_at_once_despite_minimum_status_duration():
    app, r = make(hold_s=60)
    r.observe(0)
    r._sent = [("Available", "NoError", None)] * 2
    app.controller.set("Faulted", "GroundFailure", "RCM", Err.FI_DC)
    assert due_after(r, app, 20) == (1, 0)


def test_faulted_payload_carries_error_code_vendor_code_and_info():
    app, r = make()
    app.controller.set("Faulted", "GroundFailure", "RCM", Err.FI_DC)
    r.observe(0)
    assert r.payload(1) == {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted",
                            "info": "err 2", "vendorErrorCode": "RCM"}


def test_timestamp_is_left_out_while_the_clock_is_unset_and_is_the_change_time_once_set():
    app, r = make()
    r.observe(0)
    assert "timestamp" not in r.payload(1)
    app.clock.set(1700000000)
    app.controller.set("Preparing")
    app.now = 3000
    r.observe(app.now)
    app.now = 9000
    assert r.payload(1)["timestamp"] == "2023-11-14T22:13:23Z"


def test_connector_0_is_unavailable_when_the_charge_point_is_inoperative():
    app, r = make()
    app.holds.hold("availability", 0, "Unavailable")  # as Availability does
    r.observe(0)
    assert r.payload(0)["status"] == "Unavailable"


def test_connector_0_is_faulted_on_an_internal_error_but_not_on_a_connector_fault():
    app, r = make()
    app.controller.set("Faulted", "GroundFailure", "RCM", Err.FI_DC)
    r.observe(0)
    assert r.payload(0)["status"] == "Available"
    app.controller.set("Faulted", "InternalError", "Internal", Err.UNKNOWN)
    r.observe(1)
    assert r.payload(0)["status"] == "Faulted" and r.payload(0)["errorCode"] == "InternalError"


def test_error_code_change_without_status_change_is_reported():
    app, r = make()
    r.observe(0)
    r._sent = [("Available", "NoError", None)] * 2
    app.controller.ocpp_error_code = "PowerMeterFailure"
    app.controller.vendor_error_code = "MeterTimeout"
    assert due_after(r, app, 1000) == (1, 0)


def test_ocppcs_is_the_go_e_index_of_the_connector_status():
    app, r = make()
    app.controller.set("SuspendedEV")
    assert app.settings.get("ocppcs") == 4
    app.controller.set("Faulted")
    assert app.settings.get("ocppcs") == 8


def _run_until(app, r, cond, steps=200):
    async def main():
        task = asyncio.create_task(r.run())
        for _ in range(steps):
            if cond():
                break
            await asyncio.sleep(0.005)
        task.cancel()
    asyncio.run(main())


def test_task_sends_nothing_before_online_then_each_connector_once():
    app, r = make()
    sent = app.session.sent

    async def main():
        task = asyncio.create_task(r.run())
        await asyncio.sleep(0.02)
        assert sent == []
        app.session.go_online()
        for _ in range(100):
            if len(sent) >= 2:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        task.cancel()
    asyncio.run(main())
    assert [p["connectorId"] for _, p in sent] == [0, 1]


def test_each_connector_is_sent_again_after_reconnect():
    app, r = make()
    sent = app.session.sent
    app.session.go_online()
    _run_until(app, r, lambda: len(sent) >= 2)
    app.session.go_online()  # a reconnect: online again
    _run_until(app, r, lambda: len(sent) >= 4)
    assert [p["connectorId"] for _, p in sent] == [0, 1, 0, 1]


def test_only_the_latest_status_goes_out_after_an_offline_spell():
    app, r = make()
    sent = app.session.sent
    app.session.go_online()
    _run_until(app, r, lambda: len(sent) >= 2)
    app.session.online.clear()
    app.controller.set("Preparing")
    app.controller.set("Charging")
    _run_until(app, r, lambda: False, steps=5)
    app.session.go_online()
    _run_until(app, r, lambda: len(sent) >= 4)
    assert [p["status"] for _, p in sent[2:]] == ["Available", "Charging"]


def test_unanswered_status_notification_is_sent_again():
    app, r = make()
    ocpp_status._RETRY_MS, old = 10, ocpp_status._RETRY_MS
    try:
        app.session.fail = 1
        app.session.go_online()
        _run_until(app, r, lambda: len(app.session.sent) >= 2)
    finally:
        ocpp_status._RETRY_MS = old
    assert [p["connectorId"] for _, p in app.session.sent] == [0, 1]


# ---- statuses held by other services ----

def test_a_held_status_replaces_the_controllers_and_release_restores_it():
    app, r = make()
    woken = []
    app.holds.on_change(lambda: woken.append(1))
    app.holds.hold("reservation", 1, RESERVED)
    assert r.state(1)[0] == "Reserved" and woken
    app.holds.release("reservation", 1)
    assert r.state(1)[0] == "Available"


def test_unavailable_outranks_reserved_and_faulted_is_never_held_over():
    app, r = make()
    app.holds.hold("reservation", 1, RESERVED)
    app.holds.hold("availability", 1, "Unavailable")
    assert r.state(1)[0] == "Unavailable"
    app.controller.set("Faulted", "GroundFailure", "RCM", Err.FI_DC)
    assert r.state(1)[0] == "Faulted"


def test_a_hold_limited_to_some_statuses_applies_only_over_them():
    app, r = make()
    app.holds.hold("plug_expired", 1, "Available", ("Preparing",))
    app.controller.set("Preparing")
    assert r.state(1)[0] == "Available"
    app.controller.set("Charging")
    assert r.state(1)[0] == "Charging"


def test_trigger_sends_the_current_status_again_at_once():
    app, r = make(hold_s=60)
    r.observe(0)
    r._sent = [r.state(0), r.state(1)]
    assert r.due(0) == (None, None)
    assert r.trigger(1) is True
    assert r.due(0) == (1, 0)
    assert r.trigger(2) is False
