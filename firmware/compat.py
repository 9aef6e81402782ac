"""Every difference between CPython and MicroPython lives here.

Core code imports names from this module and never checks the runtime by name:
each shim is chosen by feature detection.
"""
import asyncio
import os
import sys

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

try:
    from time import ticks_ms, ticks_us, ticks_diff, ticks_add
except ImportError:
    import time as _time

    # Wrap at 2**30 like MicroPython so wrap-around bugs show on the host too.
    _PERIOD = 1 << 30
    _MASK = _PERIOD - 1
    _HALF = _PERIOD >> 1
    # Start a minute short of the wrap so every run longer than that crosses it.
    _OFFSET_MS = _PERIOD - 60000 - int(_time.monotonic() * 1000)

    def ticks_ms():
        return (int(_time.monotonic() * 1000) + _OFFSET_MS) & _MASK

    def ticks_us():
        return (int(_time.monotonic() * 1000000) + _OFFSET_MS * 1000) & _MASK

    def ticks_add(t, delta):
        return (t + delta) & _MASK

    def ticks_diff(a, b):
        return ((a - b + _HALF) & _MASK) - _HALF

try:
    sleep_ms = asyncio.sleep_ms
except AttributeError:
    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)

try:
    current_task = asyncio.current_task
except AttributeError:  # an asyncio without task introspection
    def current_task():
        return None

try:
    from micropython import schedule
except ImportError:
    def schedule(fn, arg):
        fn(arg)

try:
    from micropython import heap_lock, heap_unlock
except ImportError:
    def heap_lock():
        return 0

    def heap_unlock():
        return 0

try:
    from micropython import mem_peak
except ImportError:
    def mem_peak():
        return -1

try:
    print_exception = sys.print_exception
except AttributeError:
    import traceback as _tb

    def print_exception(exc, file=sys.stdout):
        _tb.print_exception(type(exc), exc, exc.__traceback__, file=file)

try:
    import gc as _gc
    mem_alloc = _gc.mem_alloc
    mem_free = _gc.mem_free
except AttributeError:
    def mem_alloc():
        return -1

    def mem_free():
        return -1


if hasattr(os, "urandom"):
    urandom = os.urandom
else:  # the WebAssembly port (memory benchmarks): ids and masks only, no keys
    def urandom(n):
        import random
        return bytes(random.getrandbits(8) for _ in range(n))


def fsync_dir(path):
    """Best effort: make a rename durable where the runtime allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (AttributeError, OSError):
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    os.close(fd)


def file_exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def makedirs(path):
    """os.makedirs for both runtimes (MicroPython has only mkdir)."""
    if not path or file_exists(path):
        return
    parent = path.rsplit("/", 1)[0] if "/" in path.rstrip("/") else ""
    if parent and parent != path:
        makedirs(parent)
    try:
        os.mkdir(path)
    except OSError:
        if not file_exists(path):
            raise


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def pem_to_der(pem, kind=None):
    """The first block of a PEM text (the first whose label contains kind, e.g.
    "PRIVATE KEY", when given) as DER bytes."""
    import binascii
    if isinstance(pem, bytes):
        pem = pem.decode()
    body = []
    inside = False
    for line in pem.split("\n"):
        line = line.strip()
        if line.startswith("-----BEGIN"):
            inside = kind is None or kind in line
        elif line.startswith("-----END"):
            if inside:
                break
        elif inside and line:
            body.append(line)
    if not body:
        raise ValueError("no PEM certificate")
    return binascii.a2b_base64("".join(body))


def ssl_skip_hostname_check(ctx):
    """Accept the server certificate whatever host name it names (ocppcn); its chain is
    still verified. CPython's ssl has a switch for it. MicroPython's mbedTLS checks the
    name whenever it is given one (it is also the SNI) and refuses CERT_REQUIRED without
    one, and its verify callback cannot clear the mismatch: there the leaf certificate is
    kept during the handshake, and `ssl_other_hostname` names it for a second handshake."""
    try:
        ctx.check_hostname = False
    except AttributeError:
        pass
    inner = getattr(ctx, "_context", None)
    if inner is not None and hasattr(inner, "verify_callback"):
        leaf = []

        def keep_leaf(cert, depth):
            if depth == 0:
                leaf[:] = [bytes(cert)]  # the memoryview is only valid during the call
            return 0  # 0: leave the verdict to mbedTLS
        inner.verify_callback = keep_leaf
        ctx.leaf_seen = leaf


def ssl_other_hostname(ctx, host):
    """After a handshake with `host` failed: the host name the server's certificate gives,
    when the name check is off (ssl_skip_hostname_check) on a runtime that checks it anyway;
    connecting again with it verifies the chain as usual. None when there is nothing to retry."""
    leaf = getattr(ctx, "leaf_seen", None)
    if not leaf:
        return None
    from firmware.x509 import Certificate
    try:
        names = Certificate(leaf[0]).host_names()
    except (ValueError, IndexError, UnicodeError):
        return None
    for name in names:
        if name.startswith("*."):
            name = "x" + name[1:]  # a host the wildcard covers
        if name != host:
            return name
    return None


def create_ssl_context(verify, cadata=None, cafile=None, certfile=None, keyfile=None,
                       default_store=None, certdata=None, keydata=None):
    """A TLS client context that works on both runtimes.

    verify=False skips server verification (ocppss); cadata/cafile give the
    CA to trust (ocppsc or a CA store); default_store True adds the runtime's
    default CA store (where it has one), False never uses it, None uses it
    only when no CA is given; certfile/keyfile or certdata/keydata (PEM text)
    the client certificate for mutual TLS.
    """
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not verify:
        ssl_skip_hostname_check(ctx)
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED
        if cafile:
            ctx.load_verify_locations(cafile=cafile)
        elif cadata:
            try:
                ctx.load_verify_locations(cadata=cadata)
            except (ValueError, OSError, TypeError):
                # MicroPython's mbedtls takes DER only; certificates arrive as PEM.
                ctx.load_verify_locations(cadata=pem_to_der(cadata))
        if (default_store or (default_store is None and not (cafile or cadata))) \
                and hasattr(ctx, "load_default_certs"):
            ctx.load_default_certs()
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    elif certdata:
        _load_client_cert(ctx, certdata, keydata)
    return ctx


try:
    import tempfile as _tempfile
except ImportError:
    _tempfile = None


def _load_client_cert(ctx, cert_pem, key_pem):
    if not key_pem:
        raise ValueError("client certificate without its key")
    if _tempfile is None:
        # MicroPython's ssl takes bytes as the data itself; its mbedtls parses DER.
        ctx.load_cert_chain(pem_to_der(cert_pem, "CERTIFICATE"), pem_to_der(key_pem, "PRIVATE KEY"))
        return
    # CPython's ssl reads the chain from a file only: a private one (mode 0600), removed at once.
    fd, path = _tempfile.mkstemp(suffix=".pem")
    try:
        os.write(fd, (cert_pem.strip() + "\n" + key_pem.strip() + "\n").encode())
        os.close(fd)
        fd = None
        ctx.load_cert_chain(path)
    except OSError as e:  # ssl.SSLError: not a certificate and key that belong together
        raise ValueError("client certificate or key not usable: %s" % e)
    finally:
        if fd is not None:
            os.close(fd)
        os.remove(path)


if hasattr(getattr(asyncio, "StreamReader", None), "readinto"):  # no streams: WebAssembly port
    def stream_readinto(reader, buf):
        """Awaitable: read at most len(buf) bytes into buf -> count, 0 at EOF,
        None when nothing was ready (a TLS record still incomplete): just call again."""
        return reader.readinto(buf)  # no wrapper coroutine: this runs for every frame
else:
    async def stream_readinto(reader, buf):
        """Awaitable: read at most len(buf) bytes into buf -> count, 0 at EOF."""
        data = await reader.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n


def stream_abort(writer):
    """Close a stream's connection at once, dropping unsent data; a pending read then ends."""
    transport = getattr(writer, "transport", None)
    if transport is not None:
        transport.abort()
    else:
        # MicroPython's StreamWriter.close() does nothing; wait_closed() closes the socket.
        writer.s.close()


try:
    memoryview("")

    def text_buffer(s):
        """The UTF-8 bytes of a str, without a copy where str exposes them."""
        return memoryview(s)
except TypeError:
    def text_buffer(s):
        """The UTF-8 bytes of a str (UnicodeError for a lone surrogate)."""
        return s.encode()
