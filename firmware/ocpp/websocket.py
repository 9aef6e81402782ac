# Hand-written: the device needs a small client, and CPython WebSocket libraries do not run on MicroPython.
"""WebSocket client transport for the OCPP-J connection: URL and auth helpers,
the opening handshake, framing, ping/pong keepalive, the close handshake and
reconnect backoff. It knows nothing of OCPP message meaning."""
import asyncio
import binascii
import hashlib
import struct

from firmware import jsonin
from firmware.compat import const, ticks_ms, ticks_diff, sleep_ms, urandom, create_ssl_context, ssl_other_hostname
from firmware.compat import stream_readinto, stream_abort

_OP_CONT = const(0)
_OP_TEXT = const(1)
_OP_BINARY = const(2)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)

_RXBUF_SIZE = const(1024)  # messages up to this size are received without a new buffer
_CLOSE_WAIT_MS = const(2000)  # bound on waiting for the server's close frame / TCP close
_MAX_HEADER_LINES = const(64)
_MAX_LINE = const(2048)  # longest handshake response line accepted (a hostile server cannot fill the heap)
_KEEPALIVE_GRACE_MS = const(1000)
_TOO_BIG = const(0x3FFFFFFF)  # stands for any 64-bit length beyond a small int

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_HANDSHAKE_HEADERS = ("upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol")
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_PATH_SAFE = _UNRESERVED + "!$&'()*+,;=:@/?"
_HEX = "0123456789abcdefABCDEF"


class WebSocketError(Exception):
    pass


class ConnectionClosed(WebSocketError):
    def __init__(self, code=None, reason=""):
        super().__init__("connection closed: %s %s" % (code, reason))
        self.code = code
        self.reason = reason


def _pct(s, safe, keep_escapes):
    b = s.encode()
    n = len(b)
    out = []
    for i in range(n):
        c = b[i]
        if c < 128 and chr(c) in safe:
            out.append(chr(c))
        elif keep_escapes and c == 37 and i + 2 < n and chr(b[i + 1]) in _HEX and chr(b[i + 2]) in _HEX:
            out.append("%")  # an existing escape: never double-encode
        else:
            out.append("%%%02X" % c)
    return "".join(out)


def quote(s):
    """Percent-encode everything but unreserved characters (e.g. a charge point id)."""
    return _pct(s, _UNRESERVED, False)


def parse_url(url):
    """ws[s]://host[:port][/path][?query] -> (secure, host, port, path)."""
    i = url.find("://")
    scheme = url[:i].lower() if i > 0 else ""
    if scheme not in ("ws", "wss"):
        raise ValueError("not a ws:// or wss:// URL: " + url)
    secure = scheme == "wss"
    rest = url[i + 3:].split("#")[0]
    end = len(rest)
    for sep in "/?":
        j = rest.find(sep)
        if 0 <= j < end:
            end = j
    hostport, path = rest[:end], rest[end:]
    hostport = hostport[hostport.rfind("@") + 1:]  # credentials in the URL are ignored
    j = hostport.find("]") + 1 if hostport.startswith("[") else 0  # IPv6 literal
    j = hostport.find(":", j)
    host, port = (hostport, "") if j < 0 else (hostport[:j], hostport[j + 1:])
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError("bad host in URL: " + url)
        host = host[1:-1]
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("bad port in URL: " + url)
        port = int(port)
    else:
        port = 443 if secure else 80
    if not host:
        raise ValueError("no host in URL: " + url)
    if not path.startswith("/"):
        path = "/" + path
    return secure, host, port, _pct(path, _PATH_SAFE, True)


def basic_auth_header(user, key):
    """HTTP Basic value; an OCPP AuthorizationKey of 32..40 hex digits is sent as its bytes."""
    if 32 <= len(key) <= 40 and not len(key) & 1 and all(c in _HEX for c in key):
        key = binascii.unhexlify(key)
    else:
        key = key.encode()
    return "Basic " + binascii.b2a_base64(user.encode() + b":" + key).decode().strip()


class Backoff:
    """Reconnect delays: base * 2**n capped at max_ms, +-25% jitter, never above max_ms."""

    def __init__(self, base_ms=1000, max_ms=60000):
        self.base_ms = base_ms
        self.max_ms = max_ms
        self._delay = 0

    def next_ms(self):
        d = self._delay = min(self.max_ms, self._delay * 2 if self._delay else self.base_ms)
        r = urandom(2)
        d += d * ((r[0] << 8 | r[1]) - 32768) // 131072
        return min(self.max_ms, max(0, d))

    def reset(self):
        self._delay = 0


class WebSocket:
    def __init__(self, max_message):
        self.max_message = max_message
        self.subprotocol = None
        self.closed = False
        self.last_rx_ms = ticks_ms()
        self._r = self._w = None
        self._lock = asyncio.Lock()  # one frame at a time on the wire
        self._closed_evt = asyncio.Event()
        self._close_sent = False
        self._reading = False  # a task is inside recv()
        self._draining = False  # close() itself reads until the server's close
        self._code = None
        self._reason = ""
        self._txhdr = bytearray(14)
        self._rxhdr = bytearray(8)
        self._rxhmv = memoryview(self._rxhdr)
        self._rxbuf = bytearray(_RXBUF_SIZE)  # small messages, control payloads, skipped data
        self._rxmv = memoryview(self._rxbuf)

    @staticmethod
    async def connect(url, subprotocols=("ocpp1.6",), headers=(), ssl_ctx=None,
                      max_message=16384, timeout_ms=10000):
        """Connect and do the opening handshake; raises WebSocketError, or OSError for network errors."""
        secure, host, port, path = parse_url(url)
        if secure and ssl_ctx is None:
            ssl_ctx = create_ssl_context(verify=True)
        sni = host
        while True:
            ws = WebSocket(max_message)
            try:
                await asyncio.wait_for(ws._handshake(secure, host, port, path, subprotocols, headers, ssl_ctx, sni),
                                       timeout_ms / 1000)
            except asyncio.TimeoutError:
                ws._abort("handshake timed out")
                raise WebSocketError("handshake timed out")
            except UnicodeError:
                ws._abort("handshake failed")
                raise WebSocketError("bad handshake response")
            except ValueError as e:  # a failed certificate check (ssl.SSLCertVerificationError on CPython)
                ws._abort("handshake failed")
                other = ssl_other_hostname(ssl_ctx, host) if secure and sni == host else None
                if other:
                    sni = other  # the name check is off but the runtime made it: once more, under its name
                    continue
                raise WebSocketError("TLS error: %s" % str(e).strip())
            except BaseException:
                ws._abort("handshake failed")
                raise
            ws.last_rx_ms = ticks_ms()
            return ws

    async def _handshake(self, secure, host, port, path, subprotocols, headers, ssl_ctx, sni):
        if secure:
            self._r, self._w = await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=sni)
        else:
            self._r, self._w = await asyncio.open_connection(host, port)
        key = binascii.b2a_base64(urandom(16)).strip()
        hosthdr = "[%s]" % host if ":" in host else host
        if port != (443 if secure else 80):
            hosthdr += ":%d" % port
        req = ["GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, hosthdr, key.decode())]
        if subprotocols:
            req.append("Sec-WebSocket-Protocol: %s\r\n" % ", ".join(subprotocols))
        for name, value in headers:
            req.append("%s: %s\r\n" % (name, value))
        req.append("\r\n")
        self._w.write("".join(req).encode())
        await self._w.drain()

        parts = (await self._readline()).decode().split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise WebSocketError("bad handshake response")
        if parts[1] != "101":
            raise WebSocketError("HTTP %s %s" % (parts[1], parts[2].strip() if len(parts) > 2 else ""))
        got = {}
        for _ in range(_MAX_HEADER_LINES):
            line = (await self._readline()).decode()
            if not line:
                raise WebSocketError("connection closed during handshake")
            if not line.strip():
                break
            i = line.find(":")
            name = line[:i].strip().lower() if i > 0 else ""
            if name in _HANDSHAKE_HEADERS:  # keep only what is checked
                got[name] = line[i + 1:].strip()
        else:
            raise WebSocketError("more than %d handshake headers" % _MAX_HEADER_LINES)
        if got.get("upgrade", "").lower() != "websocket":
            raise WebSocketError("missing Upgrade: websocket header")
        if "upgrade" not in [t.strip() for t in got.get("connection", "").lower().split(",")]:
            raise WebSocketError("missing Connection: Upgrade header")
        accept = binascii.b2a_base64(hashlib.sha1(key + _GUID).digest()).strip().decode()
        if got.get("sec-websocket-accept") != accept:
            raise WebSocketError("bad Sec-WebSocket-Accept")
        proto = got.get("sec-websocket-protocol")
        if subprotocols and proto not in subprotocols:
            raise WebSocketError("server did not accept subprotocol " + ", ".join(subprotocols))
        if proto and not subprotocols:
            raise WebSocketError("server chose unoffered subprotocol " + proto)
        self.subprotocol = proto

    async def _readline(self):
        """One handshake response line (b"" at end of stream), at most _MAX_LINE bytes.

        Read a byte at a time, so nothing after the handshake is consumed."""
        line = bytearray()
        one = self._rxmv[:1]
        while len(line) < _MAX_LINE:
            try:
                await self._fill(one)
            except EOFError:
                return line
            line.append(self._rxbuf[0])
            if self._rxbuf[0] == 10:
                return line
        raise WebSocketError("handshake response line longer than %d bytes" % _MAX_LINE)

    # -- receiving --

    async def _fill(self, mv):
        got = 0
        while got < len(mv):
            n = await stream_readinto(self._r, mv[got:])
            if n is None:
                continue
            if not n:
                raise EOFError
            got += n

    async def _read_header(self):
        """One frame header -> (first byte, masked, payload length)."""
        h = self._rxhdr
        await self._fill(self._rxhmv[:2])
        self.last_rx_ms = ticks_ms()
        b0, masked, n = h[0], h[1] & 0x80, h[1] & 0x7F
        if n == 126:
            await self._fill(self._rxhmv[:2])
            n = h[0] << 8 | h[1]
        elif n == 127:
            await self._fill(self._rxhmv)
            hi, n = struct.unpack(">II", h)
            if hi or n > _TOO_BIG:
                n = _TOO_BIG
        return b0, masked, n

    async def _read_close(self, n):
        """Read a close frame's payload; record the peer's code and reason."""
        await self._fill(self._rxmv[:n])
        self._code, self._reason = None, ""
        if n >= 2:
            self._code = self._rxbuf[0] << 8 | self._rxbuf[1]
            try:
                self._reason = str(self._rxmv[2:n], "utf-8")
            except UnicodeError:
                pass

    async def _drain(self, skip):
        """After our close frame: discard data (first `skip` bytes) until the server's close."""
        while True:
            while skip:
                k = min(skip, _RXBUF_SIZE)
                await self._fill(self._rxmv[:k])
                skip -= k
            b0, masked, skip = await self._read_header()
            if masked:
                return
            if b0 & 0x0F == _OP_CLOSE and skip <= 125:
                return await self._read_close(skip)

    async def _fail(self, code, reason, skip=-1):
        """Send close `code`, drop the connection and raise. skip >= 0: the stream is still
        in sync, so skip the current payload and wait (bounded) for the server's close."""
        if not self._close_sent:
            try:
                await self._send_close(code, reason)
            except WebSocketError:
                pass
        if skip >= 0 and not self.closed:
            try:
                await asyncio.wait_for(self._drain(skip), _CLOSE_WAIT_MS / 1000)
            except (asyncio.TimeoutError, OSError, EOFError):
                pass
        self._code, self._reason = code, reason
        await self._finish()
        raise ConnectionClosed(code, reason)

    async def recv(self):
        """Next complete message: str for text, bytes for binary. Raises ConnectionClosed."""
        if self._draining:
            await self._closed_evt.wait()
        if self.closed:
            raise ConnectionClosed(self._code, self._reason)
        self._reading = True
        try:
            return await self._recv()
        except (OSError, EOFError):
            self._abort("connection lost")
            raise ConnectionClosed(self._code, self._reason)
        finally:
            self._reading = False

    async def _recv(self):
        frag = None  # bytearray while a fragmented message is being assembled
        frag_op = 0
        while True:
            b0, masked, n = await self._read_header()
            op = b0 & 0x0F
            if masked or b0 & 0x70:
                await self._fail(1002, "masked frame" if masked else "reserved bits set")
            if op >= _OP_CLOSE:
                if not b0 & 0x80 or n > 125 or (op == _OP_CLOSE and n == 1):
                    await self._fail(1002, "bad control frame")
                if op == _OP_CLOSE:
                    await self._read_close(n)
                    code, reason = self._code, self._reason
                    if not self._close_sent:
                        try:
                            await self._send_close(code, "")
                        except WebSocketError:
                            pass
                    self._code, self._reason = code, reason
                    await self._finish()
                    raise ConnectionClosed(code, reason)
                await self._fill(self._rxmv[:n])
                if op == _OP_PING:
                    if not self._close_sent:
                        await self._write_frame(_OP_PONG, bytearray(self._rxmv[:n]))
                elif op != _OP_PONG:
                    await self._fail(1002, "unknown opcode %d" % op)
                continue
            if op > _OP_BINARY:
                await self._fail(1002, "unknown opcode %d" % op)
            if (op == _OP_CONT) != (frag is not None):
                await self._fail(1002, "bad continuation")
            # Check the size before reading: an oversized message is never allocated.
            if (len(frag) if frag is not None else 0) + n > self.max_message:
                await self._fail(1009, "message too big", n)
            if frag is None and b0 & 0x80:
                mv = self._rxmv[:n] if n <= _RXBUF_SIZE else memoryview(bytearray(n))
                await self._fill(mv)
                return await self._message(op, mv)
            if frag is None:
                frag, frag_op = bytearray(), op
            while n:
                k = min(n, _RXBUF_SIZE)
                await self._fill(self._rxmv[:k])
                frag += self._rxmv[:k]
                n -= k
            if b0 & 0x80:
                return await self._message(frag_op, frag)

    async def _message(self, op, data):
        if op == _OP_BINARY:
            return bytes(data)
        try:
            return jsonin.decode(data)  # strict: MicroPython's own decoder lets overlong forms through
        except ValueError:  # UnicodeError is one
            await self._fail(1007, "invalid utf-8")

    # -- sending --

    async def _write_frame(self, op, buf):
        """One masked frame; buf is a fresh bytearray, masked in place."""
        n = len(buf)
        mask = urandom(4)
        for i in range(n):
            buf[i] ^= mask[i & 3]
        async with self._lock:
            if self.closed:
                raise ConnectionClosed(self._code, self._reason)
            h = self._txhdr
            h[0] = 0x80 | op
            if n < 126:
                h[1], hl = 0x80 | n, 6
            elif n < 65536:
                h[1], hl = 0x80 | 126, 8
                struct.pack_into(">H", h, 2, n)
            else:
                h[1], hl = 0x80 | 127, 14
                struct.pack_into(">II", h, 2, 0, n)
            h[hl - 4:hl] = mask
            try:
                # One write of a fresh buffer (CPython >= 3.12 transports keep written ones): a
                # header sent alone makes Nagle hold the payload until the peer's delayed ACK,
                # ~40 ms per message on MicroPython.
                self._w.write(bytes(h[:hl]) + buf)
                await self._w.drain()
            except OSError:
                self._abort("connection lost")
                raise ConnectionClosed(self._code, self._reason)

    async def send(self, text):
        """Send one text message (bytes: one binary message)."""
        if self._close_sent or self.closed:
            raise ConnectionClosed(self._code, self._reason or "closing")
        if isinstance(text, str):
            await self._write_frame(_OP_TEXT, bytearray(text, "utf-8"))
        else:
            await self._write_frame(_OP_BINARY, bytearray(text))

    async def ping(self, data=b""):
        if self._close_sent or self.closed:
            raise ConnectionClosed(self._code, self._reason or "closing")
        await self._write_frame(_OP_PING, bytearray(data))

    async def _send_close(self, code, reason):
        buf = bytearray()  # the peer's close had no code: answer likewise
        if code is not None:
            buf = bytearray(struct.pack(">H", code) + reason.encode()[:123])
        self._close_sent = True
        self._code, self._reason = code, reason
        await self._write_frame(_OP_CLOSE, buf)

    async def close(self, code=1000, reason=""):
        """Close handshake (the server's answer awaited at most _CLOSE_WAIT_MS), then the transport."""
        if self.closed:
            return
        if not self._close_sent:
            try:
                await self._send_close(code, reason)
            except WebSocketError:
                return
        if self._reading or self._draining:  # the reading task will see the server's close
            try:
                await asyncio.wait_for(self._closed_evt.wait(), _CLOSE_WAIT_MS / 1000)
            except asyncio.TimeoutError:
                pass
        else:
            self._draining = True
            try:
                await asyncio.wait_for(self._drain(0), _CLOSE_WAIT_MS / 1000)
            except (asyncio.TimeoutError, OSError, EOFError):
                pass
        await self._finish()

    async def _finish(self):
        """Close the transport politely (bounded), then for sure."""
        if self.closed:
            return
        self.closed = True
        try:
            self._w.close()
            await asyncio.wait_for(self._w.wait_closed(), _CLOSE_WAIT_MS / 1000)
        except Exception:
            pass
        self._abort(self._reason)

    def abort(self):
        """Drop the connection at once, without a close handshake."""
        self._abort("aborted")

    def _abort(self, reason):
        if not self.closed:
            self.closed = True
            self._code, self._reason = None, reason
        if self._w is not None:
            try:
                stream_abort(self._w)
            except Exception:
                pass
        self._closed_evt.set()

    async def keepalive(self, interval_s_getter):
        """Ping every interval; abort when nothing arrived for two intervals (+ grace)."""
        since = last_ping = ticks_ms()
        while not self.closed and not self._close_sent:
            iv = interval_s_getter() or 0
            if iv <= 0:
                await sleep_ms(1000)
                since = last_ping = ticks_ms()
                continue
            iv = int(iv * 1000)
            now = ticks_ms()
            # `since`: silence while disabled must not count once re-enabled
            if min(ticks_diff(now, self.last_rx_ms), ticks_diff(now, since)) > 2 * iv + _KEEPALIVE_GRACE_MS:
                self._abort("keepalive timeout")
                return
            wait = iv - ticks_diff(now, last_ping)
            if wait > 0:
                await sleep_ms(min(wait, 1000))
                continue
            last_ping = now
            try:
                await self.ping()
            except WebSocketError:
                return
