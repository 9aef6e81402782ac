"""The hand-written WebSocket client against real `websockets` servers and raw TCP servers."""
import asyncio
import base64
import contextlib
import hashlib
import struct

import pytest

from tests_host.certs import make_cert
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed as ServerConnectionClosed

from firmware.compat import create_ssl_context
from firmware.ocpp.websocket import (
    Backoff, ConnectionClosed, WebSocket, WebSocketError, basic_auth_header, parse_url, quote,
)
from tests_host.mpy import MICROPYTHON, ROOT, mp_env

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
T = 10  # bound on every single wait


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# -- servers --

async def echo(ws):
    async for msg in ws:
        await ws.send(msg)


@contextlib.asynccontextmanager
async def ws_server(handler=echo, scheme="ws", **kw):
    kw.setdefault("subprotocols", ["ocpp1.6"])
    async with serve(handler, "127.0.0.1", 0, **kw) as server:
        port = server.sockets[0].getsockname()[1]
        yield "%s://127.0.0.1:%d/ocpp/CP1" % (scheme, port)


@contextlib.asynccontextmanager
async def raw_server(handler):
    async def handle(reader, writer):
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield "ws://127.0.0.1:%d/" % server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def raw_handshake(reader, writer, protocol="ocpp1.6", accept=None):
    key = ""
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    if accept is None:
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n" % accept)
    if protocol:
        resp += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    writer.write((resp + "\r\n").encode())
    await writer.drain()


async def read_client_frame(reader):
    """-> (first byte, mask key or None, unmasked payload)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if b1 & 0x80 else None
    data = bytearray(await reader.readexactly(n))
    if mask:
        for i in range(n):
            data[i] ^= mask[i & 3]
    return b0, mask, bytes(data)


def server_frame(op, payload, fin=True, masked=False):
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    head = bytes([b0, (0x80 if masked else 0) | n]) if n < 126 else bytes([b0, 126]) + struct.pack(">H", n)
    return head + (b"\0\0\0\0" if masked else b"") + payload


# -- handshake and messages --

def test_handshake_negotiates_ocpp16_subprotocol():
    async def main():
        async with ws_server() as url:
            ws = await WebSocket.connect(url)
            assert ws.subprotocol == "ocpp1.6"
            assert not ws.closed
            await ws.close()
    run(main())


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_message_round_trips_at_length_form_boundaries(size):
    # 0..125: 7-bit length, 126..65535: 16-bit, above: 64-bit. websockets rejects unmasked client frames.
    async def main():
        async with ws_server() as url:
            ws = await WebSocket.connect(url, max_message=100000)
            msg = "".join(chr(48 + i % 40) for i in range(size))
            await ws.send(msg)
            assert await asyncio.wait_for(ws.recv(), T) == msg
            await ws.close()
    run(main())


def test_unicode_text_round_trips():
    async def main():
        async with ws_server() as url:
            ws = await WebSocket.connect(url)
            msg = '[2,"1","DataTransfer",{"data":"Grüße ⚡ 充電 🚗"}]'
            await ws.send(msg)
            assert await asyncio.wait_for(ws.recv(), T) == msg
            await ws.close()
    run(main())


def test_binary_message_is_returned_as_bytes():
    async def main():
        async with ws_server() as url:
            ws = await WebSocket.connect(url)
            await ws.send(b"\x00\xffbin")
            assert await asyncio.wait_for(ws.recv(), T) == b"\x00\xffbin"
            await ws.close()
    run(main())


def test_extra_headers_reach_the_server():
    seen = {}

    def process_request(connection, request):
        seen["auth"] = request.headers.get("Authorization")

    async def main():
        async with ws_server(process_request=process_request) as url:
            auth = basic_auth_header("CP1", "secret")
            ws = await WebSocket.connect(url, headers=[("Authorization", auth)])
            await ws.close()
            assert seen["auth"] == auth
    run(main())


def test_client_frames_are_masked_with_a_fresh_key_each():
    frames = []

    async def handler(reader, writer):
        await raw_handshake(reader, writer)
        frames.append(await read_client_frame(reader))
        frames.append(await read_client_frame(reader))
        writer.close()

    async def main():
        async with raw_server(handler) as url:
            ws = await WebSocket.connect(url)
            await ws.send("same")
            await ws.send("same")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)
    run(main())
    (b0a, mask_a, data_a), (b0b, mask_b, data_b) = frames
    assert b0a == b0b == 0x81 and data_a == data_b == b"same"
    assert mask_a is not None and mask_b is not None and mask_a != mask_b


def test_fragmented_message_from_server_is_assembled():
    async def handler(ws):
        await ws.recv()
        await ws.send(["[2,", '"1",', '"Heartbeat",{}]'])
        await ws.wait_closed()

    async def main():
        async with ws_server(handler) as url:
            ws = await WebSocket.connect(url)
            await ws.send("go")
            assert await asyncio.wait_for(ws.recv(), T) == '[2,"1","Heartbeat",{}]'
            await ws.close()
    run(main())


# -- TLS --

def test_wss_works_with_trusted_self_signed_certificate(tmp_path):
    server_ctx, cert_pem, _ = make_cert(tmp_path, "csms")

    async def main():
        async with ws_server(scheme="wss", ssl=server_ctx) as url:
            ctx = create_ssl_context(verify=True, cadata=cert_pem.read_text())
            ws = await WebSocket.connect(url, ssl_ctx=ctx)
            await ws.send("secure")
            assert await asyncio.wait_for(ws.recv(), T) == "secure"
            await ws.close()
    run(main())


def test_wss_trusts_a_ca_file(tmp_path):
    server_ctx, cert_pem, _ = make_cert(tmp_path, "csms")

    async def main():
        async with ws_server(scheme="wss", ssl=server_ctx) as url:
            ws = await WebSocket.connect(url, ssl_ctx=create_ssl_context(verify=True, cafile=str(cert_pem)))
            assert ws.subprotocol == "ocpp1.6"
            await ws.close()
    run(main())


def test_wss_fails_against_untrusted_certificate(tmp_path):
    server_ctx, _, _ = make_cert(tmp_path, "csms")
    _, other_pem, _ = make_cert(tmp_path, "other")

    async def main():
        async with ws_server(scheme="wss", ssl=server_ctx) as url:
            ctx = create_ssl_context(verify=True, cadata=other_pem.read_text())
            with pytest.raises(WebSocketError, match="TLS error.*certificate verify failed"):
                await WebSocket.connect(url, ssl_ctx=ctx)
    run(main())


# -- handshake failures --

def test_http_404_raises_websocket_error_with_status():
    def process_request(connection, request):
        return connection.respond(404, "no such charge point\n")

    async def main():
        async with ws_server(process_request=process_request) as url:
            with pytest.raises(WebSocketError, match="404"):
                await WebSocket.connect(url)
    run(main())


def test_server_choosing_no_subprotocol_is_rejected():
    async def main():
        async with ws_server(subprotocols=None) as url:
            with pytest.raises(WebSocketError, match="server did not accept subprotocol ocpp1.6"):
                await WebSocket.connect(url)
    run(main())


def test_wrong_accept_key_is_rejected():
    async def handler(reader, writer):
        await raw_handshake(reader, writer, accept="bm90IHRoZSByaWdodCBrZXk=")
        await reader.read()

    async def main():
        async with raw_server(handler) as url:
            with pytest.raises(WebSocketError, match="Accept"):
                await WebSocket.connect(url)
    run(main())


def test_handshake_is_bounded_by_timeout():
    async def handler(reader, writer):
        await reader.read()  # never answers

    async def main():
        async with raw_server(handler) as url:
            with pytest.raises(WebSocketError, match="timed out"):
                await WebSocket.connect(url, timeout_ms=300)
    run(main())


# -- broken and hostile servers --

def endless_handshake(line_end):
    """A server whose handshake response never ends: one endless header line
    (line_end=b"") or endless short header lines (line_end=b"\r\n")."""
    chunk = (b"a" * 98 + line_end + (b"X-Flood: " if line_end else b"")) * 40

    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Flood: ")
        try:
            for _ in range(4096):  # 16 MB at most: far beyond any charger's heap
                writer.write(chunk)
                await writer.drain()
            await reader.read()
        except OSError:
            pass
    return handler


@pytest.mark.parametrize("line_end, error", [(b"", "handshake response line longer than 2048 bytes"),
                                             (b"\r\n", "more than 64 handshake headers")])
def test_endless_handshake_response_fails_with_a_clear_error(line_end, error):
    async def main():
        async with raw_server(endless_handshake(line_end)) as url:
            with pytest.raises(WebSocketError) as e:
                await WebSocket.connect(url, timeout_ms=T * 1000)
            assert str(e.value) == error
    run(main())


@pytest.mark.micropython
@pytest.mark.parametrize("line_end, error", [(b"", "handshake response line longer than 2048 bytes"),
                                             (b"\r\n", "more than 64 handshake headers")])
def test_endless_handshake_response_fails_on_micropython(line_end, error):
    code = r"""
import asyncio
from firmware.ocpp.websocket import WebSocket, WebSocketError
async def main():
    try:
        await WebSocket.connect(%r, timeout_ms=10000)
    except WebSocketError as e:
        print("refused", e)
asyncio.run(main())
"""

    async def main():
        async with raw_server(endless_handshake(line_end)) as url:
            return await run_micropython(code % url)
    assert run(main(), 90)[0] == "refused " + error


def test_half_frame_then_drop_raises_connection_closed():
    async def handler(reader, writer):
        await raw_handshake(reader, writer)
        writer.write(server_frame(1, b"0123456789")[:6])
        await writer.drain()
        writer.close()

    async def main():
        async with raw_server(handler) as url:
            ws = await WebSocket.connect(url)
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), T)
            assert e.value.code is None and e.value.reason == "connection lost"
            assert ws.closed
    run(main())


def test_oversized_message_closes_with_1009():
    seen = {}

    async def handler(ws):
        await ws.recv()
        await ws.send("x" * 1_000_000)
        await ws.wait_closed()
        seen["code"] = ws.close_code

    async def main():
        async with ws_server(handler) as url:
            ws = await WebSocket.connect(url, max_message=16384)
            await ws.send("send big")
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), T)
            assert e.value.code == 1009
    run(main())
    assert seen["code"] == 1009


def test_oversized_fragmented_message_closes_with_1009():
    got = []

    async def handler(reader, writer):
        await raw_handshake(reader, writer)
        writer.write(server_frame(1, b"a" * 100, fin=False))
        writer.write(server_frame(0, b"b" * 100, fin=False))
        await writer.drain()
        got.append(await read_client_frame(reader))
        writer.close()

    async def main():
        async with raw_server(handler) as url:
            ws = await WebSocket.connect(url, max_message=150)
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), T)
            assert e.value.code == 1009
    run(main())
    b0, _, payload = got[0]
    assert b0 == 0x88 and struct.unpack(">H", payload[:2])[0] == 1009


@pytest.mark.parametrize("frame", [
    server_frame(1, b"hi", masked=True),
    bytes([0xC1, 2]) + b"hi",  # RSV1 set
    server_frame(3, b"hi"),  # reserved data opcode
    server_frame(9, b"hi", fin=False),  # fragmented control frame
    server_frame(0, b"hi"),  # continuation without a start
], ids=["masked", "reserved-bit", "unknown-opcode", "fragmented-ping", "stray-continuation"])
def test_protocol_violation_closes_with_1002(frame):
    got = []

    async def handler(reader, writer):
        await raw_handshake(reader, writer)
        writer.write(frame)
        await writer.drain()
        got.append(await read_client_frame(reader))
        writer.close()

    async def main():
        async with raw_server(handler) as url:
            ws = await WebSocket.connect(url)
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), T)
            assert e.value.code == 1002
    run(main())
    assert got[0][0] == 0x88 and struct.unpack(">H", got[0][2][:2])[0] == 1002


# -- ping, pong, keepalive --

def test_server_ping_is_answered_with_pong():
    pong = {}

    async def handler(ws):
        await ws.recv()
        waiter = await ws.ping(b"are you there")
        pong["latency"] = await asyncio.wait_for(waiter, T)
        await ws.send("done")
        await ws.wait_closed()

    async def main():
        async with ws_server(handler) as url:
            ws = await WebSocket.connect(url)
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), T) == "done"
            await ws.close()
    run(main())
    assert "latency" in pong


def test_client_ping_reaches_server_with_payload():
    got = []

    async def handler(reader, writer):
        await raw_handshake(reader, writer)
        got.append(await read_client_frame(reader))
        writer.close()

    async def main():
        async with raw_server(handler) as url:
            ws = await WebSocket.connect(url)
            await ws.ping(b"abc")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)
    run(main())
    assert got[0][0] == 0x89 and got[0][2] == b"abc"


def test_keepalive_aborts_a_connection_that_never_answers():
    async def handler(reader, writer):
        await raw_handshake(reader, writer)
        await reader.read()  # swallows pings, answers nothing

    async def main():
        async with raw_server(handler) as url:
            ws = await WebSocket.connect(url)
            ka = asyncio.create_task(ws.keepalive(lambda: 1))
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), T)
            assert e.value.reason == "keepalive timeout"
            await asyncio.wait_for(ka, T)
    run(main())


def test_keepalive_keeps_an_answering_connection_open():
    pings = []

    async def main():
        done = asyncio.Event()

        async def handler(reader, writer):
            await raw_handshake(reader, writer)
            while len(pings) < 8:  # 8 pings at 0.3 s outlast 2 intervals + grace
                b0, _, payload = await read_client_frame(reader)
                if b0 == 0x89:
                    pings.append(payload)
                    writer.write(server_frame(10, payload))
            done.set()
            await reader.read()

        async with raw_server(handler) as url:
            ws = await WebSocket.connect(url)
            rx = asyncio.create_task(ws.recv())
            ka = asyncio.create_task(ws.keepalive(lambda: 0.3))
            await asyncio.wait_for(done.wait(), T)
            assert not ws.closed and not rx.done()
            ws.abort()
            await asyncio.wait_for(ka, T)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(rx, T)
    run(main())


def test_keepalive_applies_an_interval_change():
    interval = [0]

    async def main():
        pinged = asyncio.Event()

        async def handler(reader, writer):
            await raw_handshake(reader, writer)
            b0, _, _ = await read_client_frame(reader)
            if b0 == 0x89:
                pinged.set()
            await reader.read()

        async with raw_server(handler) as url:
            ws = await WebSocket.connect(url)
            ka = asyncio.create_task(ws.keepalive(lambda: interval[0]))
            await asyncio.sleep(0)
            interval[0] = 0.2  # e.g. WebSocketPingInterval changed by the CSMS
            await asyncio.wait_for(pinged.wait(), T)
            ws.abort()
            await asyncio.wait_for(ka, T)
    run(main())


def test_keepalive_disabled_returns_when_closed():
    async def main():
        async with ws_server() as url:
            ws = await WebSocket.connect(url)
            ka = asyncio.create_task(ws.keepalive(lambda: 0))
            await ws.close()
            await asyncio.wait_for(ka, 3)
    run(main())


# -- closing --

def test_client_close_sends_1000_to_server():
    seen = {}

    async def handler(ws):
        await ws.wait_closed()
        seen["code"] = ws.close_code

    async def main():
        async with ws_server(handler) as url:
            ws = await WebSocket.connect(url)
            await asyncio.wait_for(ws.close(), T)
            assert ws.closed
    run(main())
    assert seen["code"] == 1000


def test_client_close_while_another_task_receives():
    async def main():
        async with ws_server() as url:
            ws = await WebSocket.connect(url)
            rx = asyncio.create_task(ws.recv())
            await asyncio.sleep(0)
            await asyncio.wait_for(ws.close(), T)
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(rx, T)
            assert e.value.code == 1000
    run(main())


def test_server_close_raises_connection_closed_with_code():
    async def handler(ws):
        await ws.close(4001, "bye")

    async def main():
        async with ws_server(handler) as url:
            ws = await WebSocket.connect(url)
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), T)
            assert (e.value.code, e.value.reason) == (4001, "bye")
            assert ws.closed
    run(main())


def test_close_is_idempotent_and_send_after_close_raises():
    async def main():
        async with ws_server() as url:
            ws = await WebSocket.connect(url)
            await ws.close()
            await ws.close()
            with pytest.raises(ConnectionClosed):
                await ws.send("late")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    run(main())


def test_concurrent_sends_never_interleave():
    async def main():
        async with ws_server() as url:
            ws = await WebSocket.connect(url, max_message=100000)
            msgs = ["a" * 10, "b" * 300, "c" * 70000, "d" * 5]
            async with ws._lock:  # a send in progress: the others queue up behind it
                sends = [asyncio.create_task(ws.send(m)) for m in msgs]
                await asyncio.sleep(0)
            await asyncio.wait_for(asyncio.gather(*sends), T)
            got = [await asyncio.wait_for(ws.recv(), T) for _ in msgs]
            assert sorted(got) == sorted(msgs)
            await ws.close()
    run(main())


# -- helpers --

@pytest.mark.parametrize("url,expected", [
    ("ws://csms.example.com/ocpp/CP1", (False, "csms.example.com", 80, "/ocpp/CP1")),
    ("wss://csms.example.com/ocpp/CP1", (True, "csms.example.com", 443, "/ocpp/CP1")),
    ("WSS://csms.example.com:8443", (True, "csms.example.com", 8443, "/")),
    ("ws://10.0.0.2:9000?token=a", (False, "10.0.0.2", 9000, "/?token=a")),
    ("ws://[::1]:9000/x", (False, "::1", 9000, "/x")),
    ("ws://h/ocpp/CONTRACT CHECK", (False, "h", 80, "/ocpp/CONTRACT%20CHECK")),
    ("ws://h/ocpp/CP%201/ü", (False, "h", 80, "/ocpp/CP%201/%C3%BC")),
    ("ws://h/a%zz", (False, "h", 80, "/a%25zz")),
])
def test_parse_url(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["http://h/", "h:80/x", "ws://:80/", "ws://h:port/", "ws://h:70000/", "ws://[::1/"])
def test_parse_url_rejects_bad_urls(url):
    with pytest.raises(ValueError):
        parse_url(url)


def test_quote_encodes_all_but_unreserved():
    assert quote("CONTRACT CHECK") == "CONTRACT%20CHECK"
    assert quote("a/b?c%d") == "a%2Fb%3Fc%25d"
    assert quote("Ab-9._~") == "Ab-9._~"
    assert quote("ü") == "%C3%BC"


def test_basic_auth_uses_decoded_bytes_for_hex_key():
    key = "0123456789abcdef0123456789ABCDEF01234567"  # 40 hex digits
    expected = base64.b64encode(b"CP1:" + bytes.fromhex(key)).decode()
    assert basic_auth_header("CP1", key) == "Basic " + expected


def test_basic_auth_uses_plain_text_for_other_keys():
    assert basic_auth_header("CP1", "s3cret pässword") == \
        "Basic " + base64.b64encode("CP1:s3cret pässword".encode()).decode()
    short_hex = "0123456789abcdef"  # 16 hex digits: too short to be an AuthorizationKey
    assert basic_auth_header("CP1", short_hex) == "Basic " + base64.b64encode(b"CP1:" + short_hex.encode()).decode()


def test_backoff_grows_exponentially_within_jitter():
    b = Backoff(base_ms=1000, max_ms=60000)
    for n in range(5):
        d = b.next_ms()
        nominal = 1000 << n
        assert 0.75 * nominal <= d <= 1.25 * nominal


def test_backoff_is_capped_and_resets():
    b = Backoff(base_ms=1000, max_ms=8000)
    delays = [b.next_ms() for _ in range(30)]
    assert all(d <= 8000 for d in delays)
    assert all(d >= 6000 for d in delays[4:])
    b.reset()
    assert 750 <= b.next_ms() <= 1250


def test_backoff_jitter_varies():
    delays = set()
    for _ in range(20):
        b = Backoff(base_ms=10000, max_ms=60000)
        delays.add(b.next_ms())
    assert len(delays) > 1 and all(7500 <= d <= 12500 for d in delays)


# -- the same client on MicroPython --

MP_CLIENT = r"""
import asyncio
from firmware.compat import create_ssl_context
from firmware.ocpp.websocket import WebSocket, ConnectionClosed
URL = %r
CA = %r
async def main():
    ctx = None
    if CA:
        ctx = create_ssl_context(verify=True, cadata=open(CA, "rb").read())
    ws = await WebSocket.connect(URL, ssl_ctx=ctx, max_message=80000)
    print("proto", ws.subprotocol)
    await ws.send("hello")
    print("echo", await ws.recv())
    big = "x" * 70000
    await ws.send(big)
    print("big", await ws.recv() == big)
    await ws.send("fragments")
    print("frag", await ws.recv())
    await ws.close()
    ws = await WebSocket.connect(URL, ssl_ctx=ctx)
    await ws.send("oversize")
    try:
        await ws.recv()
    except ConnectionClosed as e:
        print("closed", e.code)
    ws = await WebSocket.connect(URL, ssl_ctx=ctx)
    rx = asyncio.create_task(ws.recv())
    await asyncio.sleep(0)
    ws.abort()  # as keepalive does: the pending recv must end
    try:
        await asyncio.wait_for(rx, 5)
    except ConnectionClosed as e:
        print("aborted", e.code, e.reason)
asyncio.run(main())
"""


def mp_handler(seen):
    async def handler(ws):
        try:
            async for msg in ws:
                if msg == "fragments":
                    await ws.send(["frag", "men", "ted"])
                elif msg == "oversize":
                    await ws.send("y" * 100000)
                else:
                    await ws.send(msg)
        except ServerConnectionClosed:
            pass
        seen.append(ws.close_code)
    return handler


async def run_micropython(code):
    proc = await asyncio.create_subprocess_exec(
        MICROPYTHON, "-X", "heapsize=512K", "-c", code, env=mp_env(), cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except asyncio.TimeoutError:
        proc.kill()
        raise
    assert proc.returncode == 0, out.decode() + err.decode()
    return out.decode().split("\n")


EXPECTED_MP_OUTPUT = ["proto ocpp1.6", "echo hello", "big True", "frag fragmented", "closed 1009",
                      "aborted None aborted", ""]


@pytest.mark.micropython
def test_micropython_client_talks_to_websockets_server():
    seen = []

    async def main():
        async with ws_server(mp_handler(seen)) as url:
            return await run_micropython(MP_CLIENT % (url, None))
    assert run(main(), 90) == EXPECTED_MP_OUTPUT
    assert seen == [1000, 1009, 1006]


@pytest.mark.micropython
def test_micropython_client_verifies_wss_server_with_der_ca(tmp_path):
    # This unix port's mbedtls parses only DER CA data (PEM gives "invalid cert"); CPython takes DER too.
    server_ctx, _, der = make_cert(tmp_path, "csms")
    seen = []

    async def main():
        async with ws_server(mp_handler(seen), scheme="wss", ssl=server_ctx) as url:
            return await run_micropython(MP_CLIENT % (url, str(der)))
    assert run(main(), 90) == EXPECTED_MP_OUTPUT
    assert seen == [1000, 1009, 1006]


@pytest.mark.micropython
def test_micropython_client_rejects_untrusted_wss_server(tmp_path):
    server_ctx, _, _ = make_cert(tmp_path, "csms")
    _, _, other_der = make_cert(tmp_path, "other")
    code = r"""
import asyncio
from firmware.compat import create_ssl_context
from firmware.ocpp.websocket import WebSocket, WebSocketError
async def main():
    ctx = create_ssl_context(verify=True, cadata=open(%r, "rb").read())
    try:
        await WebSocket.connect(%r, ssl_ctx=ctx)
    except WebSocketError as e:
        print("refused", e)
asyncio.run(main())
"""

    async def main():
        async with ws_server(scheme="wss", ssl=server_ctx) as url:
            return await run_micropython(code % (str(other_der), url))
    out = run(main(), 90)
    assert out[0].startswith("refused TLS error") and "not correctly signed" in out[0]
