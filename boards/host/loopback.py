"""An OCPP connection in memory and a scripted central system at its other end,
in the charger's own interpreter: the OCPP session without sockets (the
WebAssembly port has none), for tests and memory benchmarks.

`Loopback.connect` is a transport for OcppSession(connect=...). The central
system answers every CALL of the charger (BootNotification Accepted with the
heartbeat interval it was given, Authorize and StartTransaction Accepted, ...),
counts them by action, and can go offline (the connection drops and new ones
are refused) and come back.
"""
import asyncio
import json

from firmware.ocpp.websocket import ConnectionClosed

TIME = "2026-01-01T12:00:00Z"


class MemoryConnection:
    """The charger's end: what OcppSession uses of a WebSocket."""

    def __init__(self, csms):
        self.csms = csms
        self.inbox = []
        self.ready = asyncio.Event()
        self.closed = False

    async def send(self, text):
        if self.closed:
            raise ConnectionClosed(1006, "closed")
        self.csms.receive(self, text)

    def push(self, text):
        self.inbox.append(text)
        self.ready.set()

    async def recv(self):
        while not self.inbox:
            if self.closed:
                raise ConnectionClosed(1006, "connection lost")
            self.ready.clear()
            await self.ready.wait()
        return self.inbox.pop(0)

    async def keepalive(self, interval_s_getter):
        while not self.closed:  # nothing to ping
            await asyncio.sleep(1)

    async def close(self, code=1000, reason=""):
        self.abort()

    def abort(self):
        self.closed = True
        self.ready.set()


class Loopback:
    """The scripted central system."""

    def __init__(self, heartbeat_s=1):
        self.heartbeat_s = heartbeat_s
        self.up = True
        self.conn = None
        self.connects = 0
        self.counts = {}
        self.changed = asyncio.Event()
        self._tx = 0

    async def connect(self, url, subprotocols=(), headers=(), ssl_ctx=None, max_message=0, timeout_ms=0):
        if not self.up:
            raise OSError(111, "connection refused")
        self.conn = MemoryConnection(self)
        self.connects += 1
        self.changed.set()
        return self.conn

    def offline(self):
        self.up = False
        if self.conn is not None:
            self.conn.abort()
            self.conn = None

    def online(self):
        self.up = True

    def count(self, action):
        return self.counts.get(action, 0)

    async def wait(self, test, timeout_s=30):
        """Until test() is true (checked on every frame and connection)."""
        async def until():
            while not test():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), timeout_s)

    def answer(self, action, payload):
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": TIME, "interval": self.heartbeat_s}
        if action == "Heartbeat":
            return {"currentTime": TIME}
        if action == "StartTransaction":
            self._tx += 1
            return {"transactionId": self._tx, "idTagInfo": {"status": "Accepted"}}
        if action in ("Authorize", "StopTransaction"):
            return {"idTagInfo": {"status": "Accepted"}}
        return {}

    def receive(self, conn, text):
        msg = json.loads(text)
        if msg[0] == 2:
            action = msg[2]
            self.counts[action] = self.counts.get(action, 0) + 1
            conn.push(json.dumps([3, msg[1], self.answer(action, msg[3])]))
            self.changed.set()


def start(app, board):
    """The application's tasks as App.main starts them, without the HTTP server."""
    tasks = [app.controller.run(), app.housekeeping(), app.energy_task(), app.session.run(), board.run()]
    tasks += [fn() for fn in app.tasks]
    return [asyncio.create_task(t) for t in tasks]


async def charge_session(app, board, lb, sample=None, offline_s=2, timeout_s=30):
    """Boot, heartbeats, a card and a transaction with meter values, an offline span
    (messages queue on flash), back online, unplug: the StopTransaction arrives.
    sample(phase) is called at each step (heap figures). Returns the CSMS's counts."""
    def step(phase):
        if sample:
            sample(phase)
    await lb.wait(lambda: lb.count("Heartbeat") >= 2, timeout_s)
    step("boot + heartbeats")
    starts, mv = lb.count("StartTransaction"), lb.count("MeterValues")
    board.sim_set("rfid", "LOOPCARD")
    board.sim_set("ev", "C")
    await lb.wait(lambda: lb.count("StartTransaction") > starts, timeout_s)
    await lb.wait(lambda: lb.count("MeterValues") >= mv + 2, timeout_s)
    step("charging")
    lb.offline()
    await asyncio.sleep(offline_s)  # metering goes on: its messages queue on flash
    step("offline")
    lb.online()
    stops = lb.count("StopTransaction")
    board.sim_set("ev", "A")
    await lb.wait(lambda: lb.count("StopTransaction") > stops, timeout_s)
    step("stopped")
    return dict(lb.counts)
