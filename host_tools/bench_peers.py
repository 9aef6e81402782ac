"""The charge points the benchmarks compare the firmware with (CPython only).

- BenchChargePoint: a charge point built on the `ocpp` package's ChargePoint,
  with handlers of the same semantics as bench_rpc.bench_handlers (over the
  same settings registry), so only the framework differs. Over WebSockets it
  serves the whole application's registry, so a GetConfiguration without keys
  answers the same keys as the simulated charger does.
- the do-nothing charge point: answers every CALL with a canned CALLRESULT,
  reading no more of the frame than its id and action (the ceiling of what the
  CSMS and the loopback allow).

    python -m host_tools.bench_peers ocpp|canned URL
"""
import asyncio
import sys

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call_result

from host_tools.bench_rpc import bench_settings

# Valid answers for the workload actions (the CSMS validates what it receives).
CANNED = {
    "GetConfiguration": '{"configurationKey":[{"key":"HeartbeatInterval","readonly":false,"value":"300"}]}',
    "ChangeConfiguration": '{"status":"Accepted"}',
    "DataTransfer": '{"status":"UnknownVendorId"}',
    "TriggerMessage": '{"status":"Accepted"}',
    "ChangeAvailability": '{"status":"Accepted"}',
    "RemoteStopTransaction": '{"status":"Rejected"}',
}


class BenchChargePoint(ChargePoint):
    def __init__(self, cp_id, connection, settings=None):
        super().__init__(cp_id, connection)
        self.settings = settings if settings is not None else bench_settings()

    @on("GetConfiguration")
    def on_get_configuration(self, key=None, **_):
        known, unknown = self.settings.get_configuration(key)
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key, value, **_):
        return call_result.ChangeConfiguration(status=self.settings.change_configuration(key, value))

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id, **_):
        return call_result.DataTransfer(status="UnknownVendorId")

    @on("TriggerMessage")
    def on_trigger_message(self, requested_message, **_):
        return call_result.TriggerMessage(status="Accepted")

    @after("TriggerMessage")
    def after_trigger_message(self, requested_message, **_):
        return None

    @on("ChangeAvailability")
    def on_change_availability(self, connector_id, type, **_):
        return call_result.ChangeAvailability(status="Accepted" if 0 <= connector_id <= 1 else "Rejected")

    @on("RemoteStopTransaction")
    def on_remote_stop_transaction(self, transaction_id, **_):
        return call_result.RemoteStopTransaction(status="Rejected")  # no transaction runs


class NullConnection:
    """A connection whose send does nothing (in-process cost of route_message)."""

    async def send(self, text):
        pass

    async def recv(self):
        await asyncio.Event().wait()


def canned_answer(text):
    # [2,"id","Action",{...}]: the id and the action are the first two strings.
    a = text.index('"')
    b = text.index('"', a + 1)
    c = text.index('"', b + 1)
    d = text.index('"', c + 1)
    return '[3,"%s",%s]' % (text[a + 1:b], CANNED.get(text[c + 1:d], "{}"))


async def run_canned(url):
    async with websockets.connect(url, subprotocols=["ocpp1.6"], ping_interval=None) as ws:
        print("READY", flush=True)
        async for text in ws:
            await ws.send(canned_answer(text))


def app_settings(state_dir):
    """The application's settings registry (every key it reports), or the bench's small one."""
    try:
        from boards.host.board import HostBoard
        from firmware import log
        from firmware.app import App
        log.verbose = log.frames = False
        return App(HostBoard(state_dir), state_dir).settings
    except Exception as e:  # noqa: BLE001 - a bench reports what it can
        print("application settings unavailable: %r" % (e,), flush=True)
        return bench_settings()


async def run_ocpp(url):
    import tempfile
    state = tempfile.TemporaryDirectory()
    settings = app_settings(state.name)
    async with websockets.connect(url, subprotocols=["ocpp1.6"], ping_interval=None) as ws:
        cp = BenchChargePoint(url.rsplit("/", 1)[-1], ws, settings)
        print("READY", flush=True)
        try:
            await cp.start()
        except websockets.ConnectionClosed:
            pass


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    kind, url = argv
    try:
        asyncio.run(run_canned(url) if kind == "canned" else run_ocpp(url))
    except (KeyboardInterrupt, websockets.ConnectionClosed):
        pass


if __name__ == "__main__":
    main()
