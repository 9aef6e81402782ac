"""The OCPP session over an in-memory transport (boards/host/loopback.py): the
whole charger, without sockets, against a scripted central system, on both
runtimes. The WebAssembly memory benchmark runs the same session."""
import asyncio
import json

from host_tools.runtime import device_lib
from host_tools.sim import SIM_HEAP
from tests_host.mpy import run_mp

SESSION = """
import asyncio, json
from boards.host.board import HostBoard
from boards.host.loopback import Loopback, charge_session, start
from firmware.app import App

async def main(state):
    board = HostBoard(state)
    app = App(board, state, [("ocppu", "ws://csms.invalid/ocpp/LOOP1"), ("ocppe", True),
                             ("MeterValueSampleInterval", 1), ("ClockAlignedDataInterval", 0)])
    lb = Loopback(heartbeat_s=1)
    app.session.connect = lb.connect
    tasks = start(app, board)
    try:
        counts = await charge_session(app, board, lb, offline_s=2)
    finally:
        for t in tasks:
            t.cancel()
    return {"counts": counts, "connects": lb.connects, "registration": app.session.registration}
"""


def _check(res):
    c = res["counts"]
    assert res["registration"] == "Accepted"
    assert c["BootNotification"] == 1  # the reconnect after the offline span does not boot again
    assert c["Heartbeat"] >= 2
    assert c["StartTransaction"] == 1 and c["StopTransaction"] == 1
    assert c["MeterValues"] >= 2
    assert res["connects"] == 2  # the connection dropped while offline and came back


def test_session_over_memory_transport_cpython(tmp_path):
    ns = {}
    exec(SESSION, ns)
    _check(asyncio.run(asyncio.wait_for(ns["main"](str(tmp_path)), 60)))


def test_session_over_memory_transport_micropython(tmp_path):
    # From source, like the simulator: compiling costs heap the .mpy bundle does not (the
    # bundle's 512K budget is the heap benchmark's, checked in test_bench.py).
    out = run_mp(SESSION + "\nprint('RESULT ' + json.dumps(asyncio.run(main(%r))))\n" % str(tmp_path), timeout=90,
                 extra_paths=[device_lib()], heapsize=SIM_HEAP)
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][0]
    _check(json.loads(line[7:]))


def test_websocket_stays_the_default_transport():
    from firmware.clock import Clock
    from firmware.ocpp.session import OcppSession
    from firmware.ocpp.websocket import WebSocket
    from firmware.settings import Settings
    from firmware.store import Store
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        s = Settings(Store(d))
        from firmware.ocpp import session as m
        m.define_keys(s)
        assert OcppSession(s, Clock(), {}).connect == WebSocket.connect
