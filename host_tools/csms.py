"""Development central system (CSMS) built on the `ocpp` package.

Accepts any charger, validates and logs every frame in both directions, answers
the charge point's requests (policies can be changed at run time), and sends any
CSMS-initiated command: from the prompt (`Action {json}`), over a small HTTP
endpoint on the same port (`GET /call/<cp id>/<Action>?payload=<json>`), or from
Python (`await csms.call(cp_id, action, payload)`).

The tests use it as the reference central system: every schema violation in a
frame from the charger is recorded in `Csms.violations`.
"""
import argparse
import asyncio
import datetime
import http
import itertools
import json
import os
import sys
import threading
import time
import urllib.parse

import websockets
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case, serialize_as_dict, remove_nones
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _as_result(action, payload):
    cls = getattr(call_result, action)
    return cls(**camel_to_snake_case(payload))


class _Conn:
    """The websocket connection, recording every frame for the logs and tests."""

    def __init__(self, ws, cp):
        self.ws = ws
        self.cp = cp

    async def recv(self):
        text = await self.ws.recv()
        self.cp.record("<", text)
        return text

    async def send(self, text):
        self.cp.record(">", text)
        await self.ws.send(text)


class CentralChargePoint(ChargePoint):
    """One connected charger as seen by the CSMS."""

    def __init__(self, cp_id, ws, csms):
        self.csms = csms
        self.frames = []  # (direction, text): "<" from the charger, ">" to it
        self.frame_times = []  # time.monotonic() of each entry in frames
        self.received = []  # (action, camelCase payload) of the charger's CALLs
        self.connected_at = time.monotonic()
        self.connected = True  # False once this connection has ended
        super().__init__(cp_id, _Conn(ws, self), response_timeout=csms.response_timeout)

    def record(self, direction, text):
        self.frame_times.append(time.monotonic())
        self.frames.append((direction, text))
        if self.csms.verbose:
            print("%s %s %s %s" % (now_iso()[11:23], self.id, direction, text), flush=True)
        self.csms.changed()

    async def _handle_call(self, msg):
        try:
            return await super()._handle_call(msg)
        except OCPPError as e:
            self.csms.violations.append((self.id, msg.action, repr(e)))
            raise

    def _answer(self, action, payload):
        self.received.append((action, payload))
        self.csms.changed()
        policy = self.csms.policies.get(action)
        result = policy(self, payload) if policy else self.csms.default_answer(self, action, payload)
        return _as_result(action, result)


    def actions(self, action):
        return [p for a, p in self.received if a == action]


# The charge point's requests: one handler each. The payload is turned back into
# wire form (camelCase) so policies and tests see what was sent.
CP_ACTIONS = ("Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
              "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction", "StatusNotification",
              "StopTransaction", "SecurityEventNotification", "SignCertificate", "LogStatusNotification",
              "SignedFirmwareStatusNotification")


def _handler(action):
    async def handler(self, **kwargs):
        return self._answer(action, snake_to_camel_case(kwargs))
    # The ocpp router finds handlers by function name on the instance.
    handler.__name__ = "on_" + action
    return on(action)(handler)


for _action in CP_ACTIONS:
    setattr(CentralChargePoint, "on_" + _action, _handler(_action))


class Csms:
    def __init__(self, host="127.0.0.1", port=9000, boot_status="Accepted", boot_interval=300,
                 verbose=True, response_timeout=30, ssl=None, cards=None):
        self.host = host
        self.port = port
        self.boot_status = boot_status
        self.boot_interval = boot_interval
        self.verbose = verbose
        self.response_timeout = response_timeout
        self.ssl = ssl  # an SSLContext: serve wss://
        self.policies = {}  # action -> fn(cp, payload) -> response payload (camelCase)
        # idTag -> idTagInfo (camelCase) for Authorize/StartTransaction/StopTransaction;
        # an idTag not listed is Accepted.
        self.cards = dict(cards or {})
        self.chargers = {}  # cp id -> CentralChargePoint (latest connection)
        self.connections = []  # every connection ever accepted, in order
        self.violations = []
        self.auth_headers = []  # Authorization header of each connection attempt
        self.tx_ids = itertools.count(1)
        self.server = None
        self._changed = None
        self.refuse = False  # answer upgrades with HTTP 503 (a CSMS that is down)

    # -- default behaviour ---------------------------------------------------
    def default_answer(self, cp, action, payload):
        if action == "BootNotification":
            return {"status": self.boot_status, "currentTime": now_iso(), "interval": self.boot_interval}
        if action == "Heartbeat":
            return {"currentTime": now_iso()}
        if action == "Authorize":
            return {"idTagInfo": self.id_tag_info(payload["idTag"])}
        if action == "StartTransaction":
            return {"transactionId": next(self.tx_ids), "idTagInfo": self.id_tag_info(payload["idTag"])}
        if action == "StopTransaction":
            return {"idTagInfo": self.id_tag_info(payload["idTag"])} if payload.get("idTag") else {}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        if action == "SignCertificate":
            return {"status": "Accepted"}
        return {}

    def id_tag_info(self, id_tag):
        return dict(self.cards.get(id_tag) or {"status": "Accepted"})

    # -- waiting (tests) -----------------------------------------------------
    def changed(self):
        if self._changed is not None:
            self._changed.set()

    async def wait_for(self, predicate, timeout=30.0):
        """Wait until predicate() is truthy (re-checked on every frame); returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("CSMS: condition not met within %.1f s" % timeout)
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    # -- CSMS-initiated commands --------------------------------------------
    async def call(self, cp_id, action, payload=None):
        """Send a command to a charger; returns the response payload (camelCase).

        Raises OCPPError when the charger answers CALLERROR.
        """
        cp = self.chargers[cp_id]
        req = getattr(call, action)(**camel_to_snake_case(payload or {}))
        res = await cp.call(req, suppress=False)
        return snake_to_camel_case(remove_nones(serialize_as_dict(res)))

    # -- server --------------------------------------------------------------
    async def _process_request(self, connection, request):
        path = urllib.parse.urlsplit(request.path)
        if path.path == "/chargers":
            body = json.dumps({k: {"connected": cp.connected} for k, cp in self.chargers.items()})
            return self._http(200, body)
        if path.path.startswith("/call/"):
            parts = path.path.split("/")
            if len(parts) != 4:
                return self._http(404, '{"error":"use /call/<cp id>/<Action>?payload=<json>"}')
            cp_id, action = urllib.parse.unquote(parts[2]), parts[3]
            q = urllib.parse.parse_qs(path.query)
            try:
                payload = json.loads(q.get("payload", ["{}"])[0])
                res = await self.call(cp_id, action, payload)
                return self._http(200, json.dumps(res))
            except KeyError:
                return self._http(404, json.dumps({"error": "no charger " + cp_id}))
            except (OCPPError, ValueError, TypeError, AttributeError, asyncio.TimeoutError) as e:
                return self._http(400, json.dumps({"error": repr(e)}))
        self.auth_headers.append(request.headers.get("Authorization"))
        if self.refuse:
            return self._http(503, "{}")
        return None

    @staticmethod
    def _http(status, body):
        return Response(status, http.HTTPStatus(status).phrase,
                        Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body.encode())))]),
                        body.encode())

    async def _on_connect(self, ws):
        proto = ws.subprotocol
        cp_id = urllib.parse.unquote(ws.request.path.rstrip("/").rsplit("/", 1)[-1])
        if proto != "ocpp1.6":
            await ws.close(1002, "subprotocol ocpp1.6 required")
            return
        cp = CentralChargePoint(cp_id, ws, self)
        self.chargers[cp_id] = cp
        self.connections.append(cp)
        if self.verbose:
            print("%s charger %s connected" % (now_iso()[11:23], cp_id), flush=True)
        self.changed()
        try:
            await cp.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            cp.connected = False
            if self.verbose:
                print("%s charger %s disconnected" % (now_iso()[11:23], cp_id), flush=True)
            self.changed()

    async def start(self):
        self._changed = asyncio.Event()
        self.server = await serve(self._on_connect, self.host, self.port, subprotocols=["ocpp1.6"],
                                  process_request=self._process_request, ping_interval=None, ssl=self.ssl)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        if self.server:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def url(self, cp_id="CP1"):
        return "%s://%s:%d/ocpp/%s" % ("wss" if self.ssl else "ws", self.host, self.port,
                                       urllib.parse.quote(cp_id, safe=""))


class StdinLines:
    """Lines typed at the prompt, read so that neither the event loop nor its
    shutdown (Ctrl-C) ever waits for the user to press Enter.

    The terminal is watched by the event loop and read only when it has data;
    where the loop cannot watch stdin (a regular file, another platform) a
    daemon thread reads it, which never holds up the interpreter's exit.
    """

    def __init__(self):
        self._loop = asyncio.get_running_loop()
        self._lines = asyncio.Queue()
        self._buf = b""
        self._fd = None
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):  # no stdin at all
            self._lines.put_nowait(None)
            return
        try:
            self._loop.add_reader(fd, self._readable)
            self._fd = fd
        except (NotImplementedError, OSError, ValueError):
            threading.Thread(target=self._read_blocking, daemon=True).start()

    def _readable(self):
        try:
            data = os.read(self._fd, 4096)  # ready: returns what is there without blocking
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            if self._buf:
                self._lines.put_nowait(self._buf.decode(errors="replace"))
            self._lines.put_nowait(None)
            return
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            self._lines.put_nowait(line.decode(errors="replace") + "\n")

    def _read_blocking(self):
        for line in iter(sys.stdin.readline, ""):
            if not self._put(line):
                return
        self._put(None)

    def _put(self, line):
        try:
            self._loop.call_soon_threadsafe(self._lines.put_nowait, line)
            return True
        except RuntimeError:  # the loop has closed: the program is ending
            return False

    async def readline(self):
        """The next line with its newline; "" at end of input."""
        line = await self._lines.get()
        if line is None:
            self._lines.put_nowait(None)
            return ""
        return line

    def close(self):
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None


async def _prompt(csms):
    """Read `Action {json}` lines (or `@cp_id Action {json}`) and send them."""
    stdin = StdinLines()
    print("csms> type: Action {json payload}, e.g. RemoteStartTransaction {\"idTag\": \"CARD1\"}", flush=True)
    try:
        await _prompt_loop(csms, stdin)
    finally:
        stdin.close()


async def _prompt_loop(csms, stdin):
    while True:
        line = await stdin.readline()
        if not line:
            return
        line = line.strip()
        if not line:
            continue
        cp_id = None
        if line.startswith("@"):
            cp_id, _, line = line[1:].partition(" ")
        action, _, rest = line.partition(" ")
        if cp_id is None:
            if not csms.chargers:
                print("csms> no charger connected", flush=True)
                continue
            cp_id = list(csms.chargers)[-1]
        try:
            payload = json.loads(rest) if rest.strip() else {}
            res = await csms.call(cp_id, action, payload)
            print("csms> %s answered %s" % (cp_id, json.dumps(res)), flush=True)
        except Exception as e:  # a typo at the prompt must not end the CSMS
            print("csms> error: %r" % (e,), flush=True)


async def run(args):
    csms = await Csms(args.host, args.port, args.boot_status, args.interval, cards=args.cards).start()
    print("CSMS listening on ws://%s:%d/<charge point id>  (commands: GET /call/<cp>/<Action>?payload=<json>)"
          % (args.host, csms.port), flush=True)
    try:
        if args.prompt:
            await _prompt(csms)  # returns at end of input; keep serving after it
        await asyncio.Future()
    finally:
        await csms.stop()


_ID_TAG_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")


def _card(text):
    """--card IDTAG[:PARENT[:STATUS]] -> (idTag, idTagInfo)."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0] or any(len(x) > 20 for x in parts[:2]):
        raise argparse.ArgumentTypeError("expected IDTAG[:PARENT[:STATUS]], idTags of at most 20 characters")
    info = {"status": parts[2] if len(parts) == 3 else "Accepted"}
    if info["status"] not in _ID_TAG_STATUSES:
        raise argparse.ArgumentTypeError("status must be one of " + ", ".join(_ID_TAG_STATUSES))
    if len(parts) > 1 and parts[1]:
        info["parentIdTag"] = parts[1]
    return parts[0], info


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools csms", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--boot-status", default="Accepted", choices=["Accepted", "Pending", "Rejected"])
    p.add_argument("--interval", type=int, default=300, help="heartbeat interval given in BootNotification")
    p.add_argument("--card", dest="cards", action="append", type=_card, default=[], metavar="IDTAG[:PARENT[:STATUS]]",
                   help="answer for this idTag: its parentIdTag (group) and status (default Accepted); repeatable")
    p.add_argument("--no-prompt", dest="prompt", action="store_false")
    args = p.parse_args(argv)
    args.cards = dict(args.cards)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
