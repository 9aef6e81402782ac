"""The charger's hardened HTTP server: microdot with bounded requests, timeouts
and a connection limit, whatever routes it serves.

A request head is read through a bounded reader (request line 4 KB -> 414,
whole head 6 KB -> 431, body 16 KB -> 413, enough for an 8 KB PEM URL-encoded
in `POST /api/set`; one large body at a time, others get 503), head and body
must arrive within _HEAD_TIMEOUT_MS (slow clients are cut off), and at most
_MAX_CLIENTS connections are served at once. A client beyond that waits for a
free place; a client that has been sending its request for more than
_SLOW_HEAD_MS gives its place up to it, so slow clients cannot lock others out
and prompt ones are all answered.
"""
import asyncio
import json

from microdot import Microdot, Request, Response

from firmware.compat import const, current_task, ticks_diff, ticks_ms

_MAX_LINE = const(4096)
_MAX_HEAD = const(6144)
_MAX_BODY = const(16384)  # an 8 KB PEM (ocppsc, ocppcc, ocppck) URL-encoded
_SMALL_BODY = const(1024)  # bodies larger than this are read one request at a time (heap)
_HEAD_TIMEOUT_MS = const(5000)
_SLOW_HEAD_MS = const(1000)  # a client still sending its request after this may lose its place
_HANDLER_TIMEOUT_MS = const(10000)
_MAX_CLIENTS = const(6)  # an ESP32 has few sockets; the OCPP connection needs one too
_MAX_WAITING = const(6)  # clients waiting for a place; more are refused with 503 at once
_CHUNK = const(256)

Request.max_content_length = _MAX_BODY
Request.max_body_length = _MAX_BODY
Request.max_readline = _MAX_HEAD  # our reader enforces the real limits

_JSON = {"Content-Type": "application/json"}
# The reason phrase of each error status the API answers, "|status phrase" each: one
# string object, where a dict of phrases is a table and one object per phrase on the heap.
_REASONS = const("|400 Bad Request|401 Unauthorized|403 Forbidden|408 Request Timeout|413 Payload Too Large"
                 "|414 URI Too Long|415 Unsupported Media Type|431 Request Header Fields Too Large"
                 "|500 Internal Server Error|503 Service Unavailable|")


class HeadTooLarge(Exception):
    """args[0]: the HTTP status to answer (414 or 431)."""


class BoundedReader:
    """A stream reader for microdot that refuses over-long lines and heads.

    readline() never buffers more than _MAX_LINE (first line) or _MAX_HEAD bytes,
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
        limit = _MAX_LINE if self._lines == 0 else _MAX_HEAD - self._head
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
        if n > _SMALL_BODY and self._server is not None:
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


def reason(status, default=None):
    """The reason phrase of an error status of _REASONS, else default."""
    i = _REASONS.find("|%d " % status)
    return _REASONS[i + 5:_REASONS.find("|", i + 1)] if i >= 0 else default


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def json_response(obj, status=200, headers=None):
    h = _JSON
    if headers:
        h = dict(_JSON)
        h.update(headers)
    return Response(dumps(obj), status, h, reason=reason(status))


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
        self.errorhandler(413)(lambda req: json_response({"error": reason(413)}, 413))

    async def _error(self, writer, status):
        self.refused += 1
        try:
            phrase = reason(status, "Error")
            body = dumps({"error": phrase})
            await writer.awrite(("HTTP/1.0 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                                 "Connection: close\r\n\r\n%s" % (status, phrase, len(body), body)).encode())
        except Exception:  # noqa: BLE001 - the client may be gone already
            pass

    async def _admit(self, t0):
        """Wait for a place among _MAX_CLIENTS; True when this client has one.

        A client that has been sending its request for _SLOW_HEAD_MS gives its
        place up; prompt clients are waited for, never evicted.
        """
        if self.clients < _MAX_CLIENTS:
            return True
        if len(self._waiting) >= _MAX_WAITING:
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
                if self.clients < _MAX_CLIENTS:
                    return True
                now = ticks_ms()
                left = _HEAD_TIMEOUT_MS - ticks_diff(now, t0)
                if left <= 0:
                    return False
                wait = left
                if self._reading and not evicted:
                    age = ticks_diff(now, self._reading[0][1])
                    if age >= _SLOW_HEAD_MS:
                        # One slow sender per waiting client gives its place up.
                        self._reading.pop(0)[0].cancel()
                        evicted = True
                        continue
                    wait = min(wait, _SLOW_HEAD_MS - age)
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
                                             _HEAD_TIMEOUT_MS / 1000)
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
                res = await asyncio.wait_for(self.dispatch_request(req), _HANDLER_TIMEOUT_MS / 1000)
                if res != Response.already_handled:
                    await asyncio.wait_for(res.write(writer), _HANDLER_TIMEOUT_MS / 1000)
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
