"""The local HTTP API, go-eCharger v2 compatible, on microdot.

`/api/status` and `/api/set` read and write the same settings registry that
OCPP uses; `/` serves the status page. A board that simulates hardware adds
`/sim/status` and `/sim/set`.

This module owns the server's limits: a request head is read through a
bounded reader (request line 4 KB -> 414, whole head 6 KB -> 431, body 16 KB
-> 413, enough for an 8 KB PEM URL-encoded in `POST /api/set`; one large body
at a time, others get 503), head and body must arrive within HEAD_TIMEOUT_MS
(slow clients are cut off), and at most MAX_CLIENTS connections are served at
once. A client beyond that waits for a free place; a client that has been
sending its request for more than SLOW_HEAD_MS gives its place up to it, so
slow clients cannot lock others out and prompt ones are all answered.

Optional protection (key `apw`, off by default like go-e): when set, /api/set
needs the password (HTTP Basic, any user name, or `Authorization: Bearer`),
cross-site requests (Origin or Referer naming another host, Sec-Fetch-Site
cross-site or same-site) are refused, a browser's Basic credentials count only
with evidence that the request comes from this charger's own pages or the
address bar (browsers send cached credentials with other sites' requests too),
and no Access-Control-Allow-Origin is sent on /api/set. With `apr` true
/api/status needs the password too.

The password in `ocppu` (`user:password@`) reads as `***`; writing the URL
back as read keeps the stored password.
"""
import asyncio
import json

from microdot import Microdot, Request, Response

from firmware import log
from firmware.compat import current_task, mem_alloc, mem_free, mem_peak, ticks_diff, ticks_ms

MAX_LINE = 4096
MAX_HEAD = 6144
MAX_BODY = 16384  # an 8 KB PEM (ocppsc, ocppcc, ocppck) URL-encoded
SMALL_BODY = 1024  # bodies larger than this are read one request at a time (heap)
HEAD_TIMEOUT_MS = 5000
SLOW_HEAD_MS = 1000  # a client still sending its request after this may lose its place
HANDLER_TIMEOUT_MS = 10000
MAX_CLIENTS = 6  # an ESP32 has few sockets; the OCPP connection needs one too
MAX_WAITING = 6  # clients waiting for a place; more are refused with 503 at once
_CHUNK = 256
_FORM = "application/x-www-form-urlencoded"

Request.max_content_length = MAX_BODY
Request.max_body_length = MAX_BODY
Request.max_readline = MAX_HEAD  # our reader enforces the real limits

_JSON = {"Content-Type": "application/json"}
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 408: "Request Timeout",
            413: "Payload Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
            431: "Request Header Fields Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}


class HeadTooLarge(Exception):
    """args[0]: the HTTP status to answer (414 or 431)."""


class BoundedReader:
    """A stream reader for microdot that refuses over-long lines and heads.

    readline() never buffers more than MAX_LINE (first line) or MAX_HEAD bytes,
    unlike a plain readline, which would keep reading a line without end.
    """

    def __init__(self, stream, server=None):
        self._s = stream
        self._server = server
        self.holds_body = False  # this request has the one place for a large body
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
        if n > SMALL_BODY and self._server is not None:
            if self._server.body_busy:
                raise HeadTooLarge(503)
            self._server.body_busy = self.holds_body = True
        out = bytearray(n)  # one buffer, no growing copies
        pos = 0
        while pos < n:
            chunk = await self.read(min(n - pos, 1024))
            if not chunk:
                raise EOFError()
            out[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        return bytes(out)


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
        self._reading = []  # [task, ticks_ms at accept] still reading their request, oldest first
        self._waiting = []  # [given way] of each client waiting for a place, oldest first
        self._freed = asyncio.Event()  # a place became free
        self.body_busy = False  # a large body is being read
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

    async def _admit(self, t0):
        """Wait for a place among MAX_CLIENTS; True when this client has one.

        A client that has been sending its request for SLOW_HEAD_MS gives its
        place up; prompt clients are waited for, never evicted.
        """
        if self.clients < MAX_CLIENTS:
            return True
        if len(self._waiting) >= MAX_WAITING:
            # The longest waiting gives way: a flood of connections cannot keep
            # a newer, prompt client out for long.
            self._waiting.pop(0)[0] = True
            self._freed.set()
        me = [False]  # [told to give way]
        self._waiting.append(me)
        evicted = False
        try:
            while True:
                self._freed.clear()
                if me[0]:
                    return False
                if self.clients < MAX_CLIENTS:
                    return True
                now = ticks_ms()
                left = HEAD_TIMEOUT_MS - ticks_diff(now, t0)
                if left <= 0:
                    return False
                wait = left
                if self._reading and not evicted:
                    age = ticks_diff(now, self._reading[0][1])
                    if age >= SLOW_HEAD_MS:
                        # One slow sender per waiting client gives its place up.
                        self._reading.pop(0)[0].cancel()
                        evicted = True
                        continue
                    wait = min(wait, SLOW_HEAD_MS - age)
                try:
                    await asyncio.wait_for(self._freed.wait(), max(wait, 10) / 1000)
                except asyncio.TimeoutError:
                    pass
        finally:
            for i in range(len(self._waiting)):
                if self._waiting[i] is me:
                    del self._waiting[i]
                    break

    async def handle_request(self, reader, writer):
        task = current_task()
        t0 = ticks_ms()
        if not await self._admit(t0):
            await self._error(writer, 503)
            try:
                await writer.aclose()
            except Exception:  # noqa: BLE001
                pass
            return
        self.clients += 1
        rd = BoundedReader(reader, self)
        entry = None
        try:
            if task is not None:
                entry = [task, ticks_ms()]
                self._reading.append(entry)
            req = None
            status = 400
            try:
                req = await asyncio.wait_for(Request.create(self, rd, writer, writer.get_extra_info("peername")),
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
                if entry in self._reading:
                    self._reading.remove(entry)
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
            if rd.holds_body:
                self.body_busy = False
            self.clients -= 1
            self._freed.set()
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
        app.route("/api/set", methods=["GET", "POST"])(self.set)
        app.route("/")(self.index)
        app.errorhandler(413)(lambda req: json_response({"error": _REASONS[413]}, 413))
        if board is not None and hasattr(board, "sim_status"):
            app.route("/sim/status")(self.sim_status)
            app.route("/sim/set")(self.sim_set)

    # -- protection ---------------------------------------------------------
    def _password(self):
        s = self.settings.find("apw")
        return s.value if s is not None else ""

    def _authorized(self, req, pw):
        """"Bearer" or "Basic" when the request carries the password that way, else None."""
        h = req.headers.get("Authorization") or ""
        if h.startswith("Bearer "):
            return "Bearer" if h[7:].strip() == pw else None
        if h.startswith("Basic "):
            raw = _b64decode(h[6:].strip())
            if raw is None:
                return None
            try:
                text = raw.decode()
            except UnicodeError:
                return None
            return "Basic" if text.partition(":")[2] == pw else None
        return None

    def _basic_trusted(self, req):
        """A browser sends cached Basic credentials with any site's request to the
        charger, so they count only with evidence of this charger's own pages or the
        address bar. Clients that are no browser send none of these headers."""
        h = req.headers
        site = h.get("Sec-Fetch-Site")
        if site == "same-origin" or site == "none":
            return True
        if h.get("Origin") or h.get("Referer"):
            return True  # naming this host: _cross_site() refused any other
        if site:
            return False
        return not (h.get("User-Agent") or "").startswith("Mozilla/")  # every browser says Mozilla/

    def _cross_site(self, req):
        site = req.headers.get("Sec-Fetch-Site")
        if site == "cross-site" or site == "same-site":
            return True  # another site (or another host of the same site) made this request
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
        how = self._authorized(req, pw)
        if how is None:
            return json_response({"error": "password required"}, 401,
                                 {"WWW-Authenticate": 'Basic realm="charger"'})
        if how == "Basic" and not self._basic_trusted(req):
            return json_response({"error": "browser request without same-origin evidence refused"}, 403)
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
        pairs = [req.args]
        if req.method == "POST" and (req.body or req.content_length):
            ctype = (req.content_type or _FORM).split(";")[0].strip().lower()
            if ctype != _FORM:
                return json_response({"error": "POST body must be " + _FORM}, 415, self._cors(False))
            try:
                req.content_type = _FORM
                pairs.append(req.form)
            except (ValueError, UnicodeError, IndexError):
                return json_response({"error": "malformed form body"}, 400, self._cors(False))
        for args in pairs:
            for k in args:
                v, err = parse_value(args.get(k))
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
