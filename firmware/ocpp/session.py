"""The OCPP connection: WebSocket with reconnect, registration (BootNotification)
and Heartbeat. Feature services register their handlers in `handlers`, call the
CSMS with `call()`, are told when the charger comes online, and register the
messages they can send on demand (`register_trigger`). Rules: README.md.
"""
import asyncio

from firmware import log
from firmware.compat import (const, create_ssl_context, sleep_ms, ssl_skip_hostname_check, ticks_add, ticks_diff,
                             ticks_ms)
from firmware.ocpp.rpc import CallError, CallTimeout, NotConnected, Rpc
from firmware.ocpp.websocket import (Backoff, ConnectionClosed, WebSocket, WebSocketError,
                                     basic_auth_header, parse_url)
from firmware.settings import BOOL, INT, OCPP, PERSIST, RW, SECRET, STR, URL_PASSWORD, W

# Retry a BootNotification after this when the CSMS gives interval 0 or never answers.
DEFAULT_BOOT_RETRY_S = 30
_MAX_MESSAGE = const(16384)
_CONNECT_TIMEOUT_MS = const(10000)
# Refused until the registration is Accepted (Pending: OCPP 1.6 section 4.2).
_ONLY_WHEN_ACCEPTED = ("RemoteStartTransaction", "RemoteStopTransaction")
_REFUSED = {"status": "Rejected"}
_PROFILE_TRIES = 3  # failed connects with a raised SecurityProfile before falling back


def _check_url(settings, v):
    if v and not (v.startswith("ws://") or v.startswith("wss://")):
        return "URL must start with ws:// or wss://"
    if v:
        try:
            parse_url(v)
        except ValueError as e:
            return str(e)
        p = settings.find("SecurityProfile")
        if p is not None and p.value >= 2 and v.startswith("ws:"):
            return "SecurityProfile %d needs wss:// (lower SecurityProfile first for ws://)" % p.value
    return None


def _check_key(v):
    if v and not 16 <= len(v) <= 40:
        return "AuthorizationKey must be 16 to 40 characters"
    return None


# Certificates and keys are checked when written: a malformed one is refused with its reason,
# instead of failing every later connection obscurely. The walker is firmware/x509.py,
# imported when a value is checked: a charger without TLS material never loads it.
def _check_ca(v):
    if v:
        from firmware import x509
        try:
            x509.load_certificates(v)
        except ValueError as e:
            return str(e)
    return None


def _check_client_pair(cert_pem, key_pem, other):
    """The client certificate and its key: each well formed, and one pair when both are set."""
    if not (cert_pem or key_pem):
        return None
    from firmware import x509
    try:
        cert = x509.load_certificates(cert_pem)[0] if cert_pem else None
        key = x509.load_private_key(key_pem) if key_pem else None
    except ValueError as e:
        return str(e)
    if cert is not None and key is not None and x509.key_matches(cert, key) is False:
        return "certificate and private key (ocppcc, ocppck) do not belong together; " \
               "to replace both, clear %s first" % other
    return None


def _value(settings, name):
    s = settings.find(name)  # None while the keys are still being defined
    return s.value if s is not None else ""


def profile_missing(settings, profile):
    """What SecurityProfile `profile` lacks to connect (whitepaper A05.FR.02-04, and wss://
    for the TLS profiles), or None."""
    if profile in (1, 2) and not settings.get("AuthorizationKey"):
        return "an AuthorizationKey"
    if profile >= 2:
        if not settings.get("ocppu").startswith("wss:"):
            return "a wss:// URL"
        if not settings.get("ocppsc"):
            return "the central system's root certificate (ocppsc)"
    if profile == 3 and not (settings.get("ocppcc") and settings.get("ocppck")):
        return "a client certificate and its key (ocppcc, ocppck)"
    return None


_ANSWER_MS = const(200)  # time for the answer to a CALL that changed the connection's settings
# Settings taken when a wss connection is made.
_TLS_KEYS = ("ocppsc", "ocppss", "ocppcn", "ocppcc", "ocppck", "ocppg")


def define_keys(settings):
    d = settings.define
    d("ocppe", BOOL, False)
    d("ocppu", STR, "", RW | PERSIST | URL_PASSWORD, hi=512, check=lambda v: _check_url(settings, v))
    d("ocppg", BOOL, True)
    d("ocppcn", BOOL, False)
    d("ocppss", BOOL, False)
    d("ocppsc", STR, "", hi=8192, check=_check_ca)
    d("ocppcc", STR, "", hi=8192,
      check=lambda v: _check_client_pair(v, _value(settings, "ocppck"), "ocppck"))
    d("ocppck", STR, "", flags=W | PERSIST | SECRET, hi=8192,
      check=lambda v: _check_client_pair(_value(settings, "ocppcc"), v, "ocppcc"))
    d("ocpprl", BOOL, False)
    d("HeartbeatInterval", INT, 300, RW | PERSIST | OCPP, 0, 86400, alias="ocpph")
    d("WebSocketPingInterval", INT, 60, RW | PERSIST | OCPP, 0, 3600)
    d("AuthorizationKey", STR, "", W | PERSIST | SECRET | OCPP, check=_check_key)
    d("SecurityProfile", INT, 0, RW | PERSIST | OCPP, 0, 3)
    st = settings.status
    for k in ("ocpps", "ocppc", "ocppca", "ocppa", "ocppaa"):
        st(k, None)  # bound by OcppSession
    st("ocpple", lambda: log.last_error)
    st("ocpplea", lambda: log.last_error_ms)


def _cp_id(path):
    """The charge point id: the URL's last path segment, percent-decoded."""
    seg = path.rstrip("/").rsplit("/", 1)[-1]
    out = bytearray()
    i = 0
    b = seg.encode()
    while i < len(b):
        if b[i] == 37 and i + 2 < len(b):  # %XX
            try:
                out.append(int(b[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(b[i])
        i += 1
    return out.decode()


class OcppSession:
    def __init__(self, settings, clock, boot_info, connect=None):
        self.settings = settings
        # The transport: connect(url, subprotocols, headers, ssl_ctx, max_message, timeout_ms)
        # returns a connection with send(text), recv(), keepalive(interval_s_getter),
        # close(code, reason) and abort(), raising ConnectionClosed when it ends. The
        # WebSocket client by default; a memory loopback in tests and benchmarks.
        self.connect = connect or WebSocket.connect
        self.clock = clock
        self.boot_info = boot_info  # BootNotification payload (vendor, model, serial, ...)
        self.handlers = {}
        self.rpc = Rpc(self._send, self.handlers, log=self._log_frame)
        self.rpc.screen = self._screen
        self.rpc.on_result = self._on_result
        self._retry_at = None  # ticks before which a Rejected registration is not retried
        self._secrets = (0, log.SECRETS)  # (number of keys defined, lower-case write-only key names)
        self.ws = None
        self.started = False
        self.connected_ms = None  # ms since boot (go-e ocppca)
        self.accepted_ms = None  # go-e ocppaa
        self.registration = None  # last BootNotification status
        self.online = asyncio.Event()  # connected and Accepted
        self.boot_count = 0
        self.heartbeats = 0
        self._accepted_boot = None  # (server generation, boot payload) last Accepted since reboot
        self._server_gen = 0  # counts URL changes: another server needs its own BootNotification
        self._wake = asyncio.Event()  # settings changed: reconnect now
        self._hb_wake = asyncio.Event()
        self._boot_wake = asyncio.Event()
        self._online_listeners = []
        self._backoff = Backoff(1000, 60000)
        settings.watch("ocppe", self._reconnect)
        settings.watch("ocppu", self._new_server)
        settings.watch("AuthorizationKey", self._reconnect)
        for k in _TLS_KEYS:
            settings.watch(k, self._tls_changed)
        settings.watch("HeartbeatInterval", lambda s: self._hb_wake.set())
        # Messages the charger sends on demand (TriggerMessage): name -> fn(connectorId or None) -> bool.
        self.triggers = {"BootNotification": self._trigger_boot, "Heartbeat": self._trigger_heartbeat}
        b = settings.bind
        b("ocpps", lambda: self.started)
        b("ocppc", lambda: self.connected)
        b("ocppca", lambda: self.connected_ms)
        b("ocppa", lambda: self.online.is_set())
        b("ocppaa", lambda: self.accepted_ms)
        self._fallback = None  # [previous SecurityProfile, failed connects] while a raised one is tried
        settings.watch("SecurityProfile", self._profile_changed)
        settings.ocpp_rule("SecurityProfile", self._raise_profile)

    # -- for the feature profiles ----------------------------------------------
    def on_online(self, fn):
        """fn() runs each time the charger is connected and Accepted."""
        self._online_listeners.append(fn)

    @property
    def connected(self):
        return self.ws is not None and self.connected_ms is not None

    async def call(self, action, payload, timeout_ms=None, msg_id=None):
        """Send a CALL and return the CALLRESULT payload.

        Raises NotConnected, CallTimeout or CallError. Waits until Accepted:
        only BootNotification goes out before that.
        """
        if action != "BootNotification":
            await self.online.wait()
        return await self.rpc.call(action, payload, timeout_ms, msg_id)

    def register_trigger(self, message, fn):
        """fn(connector_id or None) -> True when it sends message now, False when it does not apply."""
        self.triggers[message] = fn

    def trigger(self, message, connector_id=None):
        """Send one message on demand (TriggerMessage); False when it cannot be sent."""
        fn = self.triggers.get(message)
        return fn is not None and fn(connector_id)

    def _trigger_boot(self, _connector_id):
        self._boot_wake.set()  # a Pending registration retries at once
        return True

    def _trigger_heartbeat(self, _connector_id):
        if not self.online.is_set():
            return False
        asyncio.create_task(self.heartbeat())
        return True

    # -- connection loop -----------------------------------------------------
    def _new_server(self, _setting=None):
        # Another URL is another central system or identity: register anew.
        self._server_gen += 1
        self._rejected(None)
        self._reconnect()

    def _tls_changed(self, _setting=None):
        # Certificates and checks are taken at connect time: a wss session starts anew.
        if self.settings.get("ocppu").startswith("wss:"):
            self._reconnect()

    # -- SecurityProfile (security whitepaper, use case A05) ----------------------
    def _raise_profile(self, p):
        """ChangeConfiguration SecurityProfile: only upwards, and only with the new profile's
        material in place; then the charger reconnects with it, and falls back to the
        previous profile when it cannot connect. (The local API may set any value.)"""
        cur = self.settings.get("SecurityProfile")
        missing = profile_missing(self.settings, p) if p > cur else "a value above %d" % cur
        if missing:
            log.warn("ChangeConfiguration SecurityProfile %d Rejected: needs %s" % (p, missing))
            return "Rejected"
        # Saved once a connection with it succeeds: a reboot before that comes back with `cur`.
        self.settings.set("SecurityProfile", p, save=False)
        self._fallback = [cur, 0]
        return "Accepted"

    def _profile_changed(self, _setting=None):
        self._fallback = None  # a change of the local API is final (_raise_profile sets it after)
        self._reconnect()

    def _connect_failed(self):
        fb = self._fallback
        if fb is None:
            return
        fb[1] += 1
        if fb[1] >= _PROFILE_TRIES:
            log.error("SecurityProfile %d: no connection in %d tries, back to %d"
                      % (self.settings.get("SecurityProfile"), fb[1], fb[0]))
            self.settings.set("SecurityProfile", fb[0])

    def _connect_succeeded(self):
        if self._fallback is not None:
            self._fallback = None
            try:
                self.settings.save()  # the raised SecurityProfile connected: it stays
            except OSError as e:
                log.error("settings not saved: %s" % e)

    def _log_frame(self, direction, text):
        keys = self.settings.keys()
        if self._secrets[0] != len(keys):
            names = [k.name.lower() for k in keys if k.flags & SECRET]
            for k in keys:
                if k.flags & SECRET and k.alias:
                    names.append(k.alias.lower())
            self._secrets = (len(keys), names)
        log.frame(direction, text, self._secrets[1])

    def _reconnect(self, _setting=None):
        self._backoff.reset()
        self._wake.set()
        if self.ws is not None:
            asyncio.create_task(self._drop(self.ws))

    async def _drop(self, ws):
        # A change the CSMS made (ChangeConfiguration AuthorizationKey) gets its answer first.
        await sleep_ms(_ANSWER_MS)
        if self.ws is ws:
            ws.abort()

    async def _send(self, text):
        ws = self.ws
        if ws is None:
            raise NotConnected()
        await ws.send(text)

    async def _pause(self, event, ms):
        """Sleep ms, or less when event is set (also before the call). True when woken."""
        if event.is_set():
            event.clear()
            return True
        try:
            await asyncio.wait_for(event.wait(), ms / 1000)
            return True
        except asyncio.TimeoutError:
            return False

    async def run(self):
        s = self.settings
        while True:
            url = s.get("ocppu")
            if not s.get("ocppe") or not url:
                self.started = False
                await self._wake.wait()
                self._wake.clear()
                continue
            self.started = True
            self._wake.clear()
            try:
                ws = await self._connect(url)
                if self._wake.is_set():
                    # The settings changed while connecting: connect anew.
                    ws.abort()
                    continue
            except (WebSocketError, OSError, ValueError, asyncio.TimeoutError) as e:
                log.error(log.hide("OCPP connect to %s failed: %s" % (url, e), url))
                self._connect_failed()
                await self._pause(self._wake, self._backoff.next_ms())
                continue
            self._connect_succeeded()
            try:
                await self._serve(ws)
            except Exception as e:  # never let the session task die
                log.exception("OCPP session", e)
            await self._pause(self._wake, self._backoff.next_ms())

    async def _connect(self, url):
        s = self.settings
        secure, host, port, path = parse_url(url)
        profile = s.get("SecurityProfile")
        missing = profile_missing(s, profile)
        if missing:
            raise ValueError("SecurityProfile %d needs %s" % (profile, missing))
        headers = []
        key = s.get("AuthorizationKey")
        if key and profile != 3:  # profile 3 authenticates with the client certificate
            headers.append(("Authorization", basic_auth_header(_cp_id(path), key)))
        ctx = None
        if secure:
            ctx = self._tls_context(profile >= 2)
        log.info("OCPP connecting to " + log.mask_url(url))
        return await self.connect(url, ("ocpp1.6",), headers, ctx, _MAX_MESSAGE, _CONNECT_TIMEOUT_MS)

    def _tls_context(self, strict=False):
        """The TLS settings: ocppsc the CA (PEM) to trust, ocppg the default CA store
        too, ocppss no server verification, ocppcn no host name check, ocppcc/ocppck
        the client certificate and key (PEM) for mutual TLS. strict (SecurityProfile 2
        and 3): the server is always verified, its name included (whitepaper A00.FR.307-308)."""
        s = self.settings
        verify = strict or not s.get("ocppss")
        ca = s.get("ocppsc") or None
        store = s.get("ocppg")
        if verify and not ca and not store:
            raise ValueError("no CA to verify the server: set ocppsc, ocppg=true or ocppss=true")
        cert = s.get("ocppcc") or None
        key = s.get("ocppck") or None
        if key and not cert:
            raise ValueError("ocppck is set but ocppcc (client certificate) is empty")
        ctx = create_ssl_context(verify=verify, cadata=ca, default_store=store, certdata=cert, keydata=key)
        if s.get("ocppcn") and verify and not strict:
            ssl_skip_hostname_check(ctx)
        return ctx

    async def _serve(self, ws):
        self.ws = ws
        self.connected_ms = log.uptime_ms()
        log.info("OCPP connected")
        self.rpc.connected(self._send)
        reg = asyncio.create_task(self._registration())
        ka = asyncio.create_task(ws.keepalive(lambda: self.settings.get("WebSocketPingInterval")))
        try:
            while True:
                text = await ws.recv()
                if isinstance(text, str):
                    await self.rpc.feed(text)
        except ConnectionClosed as e:
            log.error("OCPP connection closed: %s" % (e,))
        finally:
            self.online.clear()
            self.ws = None
            self.connected_ms = None
            self.accepted_ms = None
            self.rpc.connection_lost()
            reg.cancel()
            ka.cancel()
            ws.abort()

    async def _registration(self):
        try:
            gen = self._server_gen
            if self._accepted_boot != (gen, self.boot_info):
                await self._boot(gen)
            self._backoff.reset()
            self.accepted_ms = log.uptime_ms()
            self.online.set()
            for fn in self._online_listeners:
                try:
                    fn()
                except Exception as e:
                    log.exception("online listener", e)
            await self._heartbeats()
        except NotConnected:
            pass

    def _screen(self, action):
        """Rpc: the answer to a CALL that its handler must not give now."""
        if action in _ONLY_WHEN_ACCEPTED and self.registration != "Accepted":
            return dict(_REFUSED)
        return None

    def _on_result(self, action, payload):
        # Taken as the answer arrives: the CSMS's next frame already meets the new registration.
        if action == "BootNotification":
            self.registration = payload.get("status")
            self.rpc.silent = self.registration == "Rejected"

    def _rejected(self, interval_s):
        """Registration Rejected for interval_s (None: no longer): answer nothing meanwhile."""
        self.rpc.silent = interval_s is not None
        self._retry_at = None if interval_s is None else ticks_add(ticks_ms(), interval_s * 1000)

    async def _boot(self, gen):
        self.registration = None  # not yet registered with this boot data or server
        if self._retry_at is not None:
            # Rejected before this connection: the interval given then still applies.
            left = ticks_diff(self._retry_at, ticks_ms())
            if left > 0:
                await sleep_ms(left)
        while True:
            payload = dict(self.boot_info)
            interval = DEFAULT_BOOT_RETRY_S
            try:
                res = await self.rpc.call("BootNotification", payload)
                self.boot_count += 1
                status = res["status"]
                self.registration = status
                self.clock.set_iso(res["currentTime"])
                given = self._boot_interval(res["interval"])
                if given:
                    interval = given
                log.info("BootNotification " + status)
                self._rejected(interval if status == "Rejected" else None)
                if status == "Accepted":
                    self._accepted_boot = (gen, payload)
                    hb = self.settings.find("HeartbeatInterval")
                    if not given and not hb.value:
                        given = hb.default  # 0 means "the charger chooses": never no heartbeat at all
                    if given:
                        err = self.settings.set("HeartbeatInterval", given)
                        if err:
                            log.error("BootNotification interval: " + err)
                    return
                if status == "Rejected":
                    log.error("BootNotification Rejected, retry in %d s" % interval)
                    self._boot_wake.clear()  # nothing cuts the wait short
            except CallTimeout:
                log.error("BootNotification: no answer")
            except CallError as e:
                log.error("BootNotification: CALLERROR %s" % (e,))
            # Pending: the CSMS may trigger a new BootNotification earlier.
            await self._pause(self._boot_wake, interval * 1000)

    def _boot_interval(self, iv):
        """The CSMS's BootNotification interval in seconds, 0 when it leaves the choice to
        the charger; clamped to what HeartbeatInterval accepts."""
        hi = self.settings.find("HeartbeatInterval").hi
        if iv <= 0:
            return 0
        if iv > hi:
            log.warn("BootNotification interval %d s above the maximum, %d s used" % (iv, hi))
            return hi
        return iv

    async def _heartbeats(self):
        while True:
            iv = self.settings.get("HeartbeatInterval")
            if iv <= 0:
                await self._hb_wake.wait()
                self._hb_wake.clear()
                continue
            if await self._pause(self._hb_wake, iv * 1000):
                continue  # interval changed: start over with the new one
            await self.heartbeat()

    async def heartbeat(self):
        try:
            res = await self.call("Heartbeat", {})
        except (CallTimeout, CallError) as e:
            log.error("Heartbeat: %s" % (e,))
            return False
        self.heartbeats += 1
        self.clock.set_iso(res["currentTime"])
        return True
