"""The local HTTP API, go-eCharger v2 compatible, on microdot.

`/api/status` and `/api/set` read and write the same settings registry that
OCPP uses; `/` serves the status page. A board that simulates hardware adds
`/sim/status` and `/sim/set`.

This module owns the server's limits: a request head is read through a
bounded reader (request line 1 KB -> 414, whole head 4 KB -> 431, body 4 KB
-> 413), must arrive within HEAD_TIMEOUT_MS (slow clients are cut off), and at
most MAX_CLIENTS connections are served at once: a new client evicts the
oldest one still sending its head, so slow clients cannot lock others out.

Optional protection (key `apw`, off by default like go-e): when set, /api/set
needs the password (HTTP Basic, any user name, or `Authorization: Bearer`),
cross-site requests (Origin or Referer naming another host) are refused, and
no Access-Control-Allow-Origin is sent on /api/set. With `apr` true
/api/status needs the password too.
"""
import asyncio
import json

from microdot import Microdot, Request, Response

from firmware import log
from firmware.compat import current_task, mem_alloc, mem_free, mem_peak

MAX_LINE = 1024
MAX_HEAD = 4096
MAX_BODY = 4096
HEAD_TIMEOUT_MS = 5000
HANDLER_TIMEOUT_MS = 10000
MAX_CLIENTS = 6  # an ESP32 has few sockets; the OCPP connection needs one too
_CHUNK = 256

Request.max_content_length = MAX_BODY
Request.max_body_length = MAX_BODY
Request.max_readline = MAX_HEAD  # our reader enforces the real limits

_JSON = {"Content-Type": "application/json"}
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 408: "Request Timeout",
            413: "Payload Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}


class HeadTooLarge(Exception):
    """args[0]: the HTTP status to answer (414 or 431)."""


class BoundedReader:
    """A stream reader for microdot that refuses over-long lines and heads.

    readline() never buffers more than MAX_LINE (first line) or MAX_HEAD bytes,
    unlike a plain readline, which would keep reading a line without end.
    """

    def __init__(self, stream):
        self._s = stream
        self._buf = b""
        self._head = 0  # head bytes handed out so far
        self._lines = 0

    async def _fill(self):
        chunk = await self._s.read(_CHUNK)
        if not chunk:
            return False
        self._buf += chunk
        return True

    async def readline(self):
        limit = MAX_LINE if self._lines == 0 else MAX_HEAD - self._head
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                n = i + 1
                break
            if len(self._buf) > limit:
                raise HeadTooLarge(414 if self._lines == 0 else 431)
            if not await self._fill():
                n = len(self._buf)
                break
        if n > limit:
            raise HeadTooLarge(414 if self._lines == 0 else 431)
        line = self._buf[:n]
        self._buf = self._buf[n:]
        self._head += n
        self._lines += 1
        return line

    async def read(self, n=-1):
        if self._buf:
            out = self._buf if n < 0 else self._buf[:n]
            self._buf = self._buf[len(out):]
            return out
        return await self._s.read(n)

    async def readexactly(self, n):
        out = b""
        while len(out) < n:
            chunk = await self.read(n - len(out))
            if not chunk:
                raise EOFError()
            out += chunk
        return out


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def json_response(obj, status=200, headers=None):
    h = _JSON
    if headers:
        h = dict(_JSON)
        h.update(headers)
    return Response(_dumps(obj), status, h, reason=_REASONS.get(status))


def parse_value(text):
    """A go-e value: JSON text. Returns (value, None) or (None, error)."""
    try:
        return json.loads(text), None
    except ValueError:
        return None, "invalid JSON value %s (strings need quotes: \"text\")" % _dumps(text[:40])


def _b64decode(s):
    try:
        import binascii
        return binascii.a2b_base64(s)
    except (ImportError, ValueError):
        return None


def _host_of(url):
    # "http://host:port/path" -> "host:port"
    i = url.find("://")
    if i < 0:
        return None
    rest = url[i + 3:]
    j = rest.find("/")
    return rest if j < 0 else rest[:j]


class Server(Microdot):
    """microdot with bounded requests, timeouts and a connection limit."""

    def __init__(self):
        Microdot.__init__(self)
        self.clients = 0
        self._reading = []  # tasks still reading their head, oldest first
        self.refused = 0  # requests answered with an error before routing (for tests and bench)

    async def _error(self, writer, status):
        self.refused += 1
        try:
            reason = _REASONS.get(status, "Error")
            body = _dumps({"error": reason})
            await writer.awrite(("HTTP/1.0 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                                 "Connection: close\r\n\r\n%s" % (status, reason, len(body), body)).encode())
        except Exception:  # noqa: BLE001 - the client may be gone already
            pass

    async def handle_request(self, reader, writer):
        task = current_task()
        self.clients += 1
        try:
            if self.clients > MAX_CLIENTS:
                if self._reading:
                    # Evict the slowest sender rather than refusing a new client.
                    self._reading.pop(0).cancel()
                elif task is not None:
                    await self._error(writer, 503)
                    return
            if task is not None:
                self._reading.append(task)
            req = None
            status = 400
            try:
                req = await asyncio.wait_for(Request.create(self, BoundedReader(reader), writer,
                                                            writer.get_extra_info("peername")),
                                             HEAD_TIMEOUT_MS / 1000)
            except HeadTooLarge as e:
                status = e.args[0]
            except asyncio.TimeoutError:
                status = 408
            except asyncio.CancelledError:
                status = 503
            except Exception:  # noqa: BLE001 - malformed request line, bad %-escape, bad utf-8
                status = 400
            finally:
                if task in self._reading:
                    self._reading.remove(task)
            if req is None:
                await self._error(writer, status)
                return
            try:
                res = await asyncio.wait_for(self.dispatch_request(req), HANDLER_TIMEOUT_MS / 1000)
                if res != Response.already_handled:
                    await asyncio.wait_for(res.write(writer), HANDLER_TIMEOUT_MS / 1000)
            except Exception:  # noqa: BLE001 - a client that stops reading, a reset
                pass
        except asyncio.CancelledError:
            pass
        finally:
            self.clients -= 1
            try:
                await writer.aclose()
            except Exception:  # noqa: BLE001
                pass


class HttpApi:
    def __init__(self, settings, board=None, page=None):
        self.settings = settings
        self.board = board
        self.app = app = Server()
        self.page = page  # callable() -> (body bytes/str, headers) of the status page
        self.heap_baseline = None  # heap in use once everything is imported and built
        app.route("/api/status")(self.status)
        app.route("/api/set")(self.set)
        app.route("/")(self.index)
        if board is not None and hasattr(board, "sim_status"):
            app.route("/sim/status")(self.sim_status)
            app.route("/sim/set")(self.sim_set)

    # -- protection ---------------------------------------------------------
    def _password(self):
        s = self.settings.find("apw")
        return s.value if s is not None else ""

    def _authorized(self, req, pw):
        h = req.headers.get("Authorization") or ""
        if h.startswith("Bearer "):
            return h[7:].strip() == pw
        if h.startswith("Basic "):
            raw = _b64decode(h[6:].strip())
            if raw is None:
                return False
            try:
                text = raw.decode()
            except UnicodeError:
                return False
            return text.partition(":")[2] == pw
        return False

    def _cross_site(self, req):
        host = req.headers.get("Host")
        for name in ("Origin", "Referer"):
            v = req.headers.get(name)
            if v and v != "null" and _host_of(v) != host:
                return True
            if v == "null":
                return True  # sandboxed or file: pages
        return False

    def _guard(self, req, reads):
        """None when the request may proceed, else the error response."""
        pw = self._password()
        if not pw or (reads and not self.settings.get("apr")):
            return None
        if self._cross_site(req):
            return json_response({"error": "cross-site request refused"}, 403)
        if not self._authorized(req, pw):
            return json_response({"error": "password required"}, 401,
                                 {"WWW-Authenticate": 'Basic realm="charger"'})
        return None

    def _cors(self, reads):
        # go-e sends ACAO * everywhere; a protected charger does not let other sites read or write.
        if self._password() and (not reads or self.settings.get("apr")):
            return None
        return {"Access-Control-Allow-Origin": "*"}

    # -- routes ---------------------------------------------------------------
    async def status(self, req):
        err = self._guard(req, True)
        if err is not None:
            return err
        s = self.settings
        flt = req.args.get("filter")
        keys = flt.split(",") if flt else s.api_keys()
        out = {}
        for k in keys:
            try:
                out[k] = s.api_get(k)
            except KeyError:
                pass  # unknown keys are left out, HTTP 200 (go-e clients rely on it)
            except Exception as e:  # noqa: BLE001 - one broken getter must not hide the rest
                log.exception("status " + k, e)
                out[k] = None
        return json_response(out, 200, self._cors(True))

    async def set(self, req):
        err = self._guard(req, False)
        if err is not None:
            return err
        out = {}
        ok = True
        for k in req.args:
            v, err = parse_value(req.args.get(k))
            if err is None:
                err = self.settings.set(k, v)
            if err is None:
                out[k] = True
            else:
                out[k] = err if err.startswith(k + ":") else k + ": " + err
                ok = False
        return json_response(out, 200 if ok else 500, self._cors(False))

    async def index(self, req):
        if self.page is None:
            return Response("openwallbox", 200, {"Content-Type": "text/plain"})
        body, headers = self.page()
        return Response(body, 200, headers)

    async def sim_status(self, req):
        if req.args.get("gc"):
            import gc
            gc.collect()  # ?gc=1: heap_used is then the live heap (benchmarks)
        d = self.board.sim_status()
        d["heap_baseline"] = self.heap_baseline
        d["heap_used"] = mem_alloc()
        store = getattr(self, "store", None)  # set by the simulator's entry
        d["store_writes"] = store.writes if store is not None else None
        d["heap_free"] = mem_free()
        d["heap_peak"] = mem_peak()
        d["http_clients"] = self.app.clients
        return json_response(d)

    async def sim_set(self, req):
        out = {}
        ok = True
        for k in req.args:
            v, err = parse_value(req.args.get(k))
            if err is None:
                err = self.board.sim_set(k, v)
            out[k] = True if err is None else err
            ok = ok and err is None
        return json_response(out, 200 if ok else 400)

    async def serve(self, host, port):
        await self.app.start_server(host=host, port=port)

    def listening(self):
        return getattr(self.app, "server", None) is not None

    def shutdown(self):
        self.app.shutdown()
