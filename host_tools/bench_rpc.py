"""The charger's own cost per CSMS call, in-process, on either runtime.

Feeds prepared CALL frames to the firmware's framer (firmware/ocpp/rpc.py) with
a send callable that does nothing, so the figure is parse + validate + dispatch
+ handler + answer serialisation. Two handler sets: the bench's own small
handlers over the real settings registry (the same semantics as the ocpp
package charge point in host_tools/bench_peers.py, so the two compare), and the
handlers the application registers in its session, where they exist.

Runs on CPython and MicroPython (the runtime subset of the firmware):

    micropython -c "from host_tools.bench_rpc import main; main()"   # prints RESULT {json}
"""
import asyncio
import gc
import json

from firmware.compat import ticks_diff, ticks_us
from firmware.ocpp import session as ocpp_session
from firmware.ocpp.rpc import Rpc
from firmware.settings import Settings

# The scripted CSMS workload: calls a central system sends in daily operation,
# none of which changes stored state (ChangeConfiguration writes the current value,
# ChangeAvailability asks for the availability the connector has, RemoteStopTransaction
# names a transaction that does not exist and is Rejected).
UNKNOWN_TRANSACTION = 999999
WORKLOAD = (
    ("GetConfiguration", {"key": ["HeartbeatInterval"]}),
    ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "300"}),
    ("DataTransfer", {"vendorId": "org.openwallbox.bench", "messageId": "ping", "data": "x"}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ("ChangeAvailability", {"connectorId": 1, "type": "Operative"}),
    ("RemoteStopTransaction", {"transactionId": UNKNOWN_TRANSACTION}),
    ("GetConfiguration", {}),
)


def frames(workload=WORKLOAD):
    return [json.dumps([2, "bench-%d" % i, a, p], separators=(",", ":")) for i, (a, p) in enumerate(workload)]


def bench_settings():
    s = Settings(None)
    ocpp_session.define_keys(s)
    return s


def bench_handlers(settings):
    """Small handlers with the same semantics as bench_peers.BenchChargePoint's."""

    def get_configuration(p):
        known, unknown = settings.get_configuration(p.get("key"))
        out = {"configurationKey": known}
        if unknown:
            out["unknownKey"] = unknown
        return out

    def change_configuration(p):
        return {"status": settings.change_configuration(p["key"], p["value"])}

    def data_transfer(p):
        return {"status": "UnknownVendorId"}

    def _nothing():
        return None

    def trigger_message(p):
        return {"status": "Accepted"}, _nothing

    def change_availability(p):
        return {"status": "Accepted" if 0 <= p["connectorId"] <= 1 else "Rejected"}

    def remote_stop_transaction(p):
        return {"status": "Rejected"}  # no transaction runs

    return {"GetConfiguration": get_configuration, "ChangeConfiguration": change_configuration,
            "DataTransfer": data_transfer, "TriggerMessage": trigger_message,
            "ChangeAvailability": change_availability, "RemoteStopTransaction": remote_stop_transaction}


def app_handlers(state_dir):
    """The handlers the application registers (None when it cannot be built here)."""
    try:
        from boards.host.board import HostBoard
        from firmware import log
        from firmware.app import App
        log.frames = False
        app = App(HostBoard(state_dir), state_dir)
        return app.session.handlers
    except Exception as e:  # noqa: BLE001 - a bench reports what it can
        print("app handlers unavailable: %r" % (e,))
        return None


class _Sink:
    def __init__(self):
        self.n = 0
        self.last = None

    async def send(self, text):
        self.n += 1
        self.last = text


async def _time(handlers, texts, n):
    sink = _Sink()
    rpc = Rpc(sink.send, handlers, id_prefix="bench")
    for t in texts:  # warm up, and check every frame gets an answer
        await rpc.feed(t)
    answers = [None] * len(texts)
    for i, t in enumerate(texts):
        await rpc.feed(t)
        answers[i] = sink.last[:2] if sink.last else None
    k = len(texts)
    gc.collect()  # every variant starts with the same clean heap
    t0 = ticks_us()
    for i in range(n):
        await rpc.feed(texts[i % k])
    us = ticks_diff(ticks_us(), t0)
    await asyncio.sleep(0)  # let after-tasks finish
    return {"calls": n, "us_per_call": us / n, "answers": sink.n, "kinds": answers}


def run(n=5000, state_dir="build/bench-rpc-state"):
    texts = frames()
    out = {}
    out["bench_handlers"] = asyncio.run(_time(bench_handlers(bench_settings()), texts, n))
    handlers = app_handlers(state_dir)
    if handlers is not None:
        have = [a for a, _ in WORKLOAD if a in handlers]
        out["app_handlers_actions"] = sorted(set(have))
        out["app_handlers"] = asyncio.run(_time(handlers, texts, n))
    # The framer alone: a handler that answers at once, for the rpc layer's share.
    empty = {a: (lambda p: {"status": "Accepted"}) for a, _ in WORKLOAD}
    out["framer_only"] = asyncio.run(_time(empty, texts, n))
    return out


def main(n=5000):
    print("RESULT " + json.dumps(run(n)))


if __name__ == "__main__":
    main()
