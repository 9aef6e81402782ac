"""OCPP-J 1.6 RPC framing: CALL / CALLRESULT / CALLERROR, independent of payload meaning.

Rpc owns the message ids, the one outstanding outgoing CALL, schema validation
of what arrives, and the CALLERROR answers to malformed frames (OCPP-J 1.6
section 4, decisions in ocpp16-notes.md item 3). Profiles register handlers by
action name; the transport hands in each received text frame with feed() and
gives Rpc a send coroutine.

A plain handler runs inside feed(), that is inside the transport's reader.
A coroutine handler runs as its own task, so it may await call() (the reader
stays free to read that call's answer) before it decides its answer. Work to do
once the answer is out goes in the `after` callable of a (response, after)
result, which runs as its own task once the CALLRESULT is out.

The session may hold back answers (registration, OCPP 1.6 section 4.2):
`silent` drops every frame of the peer but answers to our own CALLs, unanswered;
`screen(action)` may return the answer to a valid CALL instead of its handler;
`on_result(action, payload)` sees each answer to our CALLs as it arrives, so
such a decision applies from the very next frame.
"""
import asyncio
import json

from firmware import jsonin, log
from firmware.compat import const, print_exception, urandom
from firmware.ocpp.validate import is_action, known, validate

CALL = const(2)
CALLRESULT = const(3)
CALLERROR = const(4)

_MAX_ID = const(36)  # OCPP-J: a unique id is at most 36 characters


class CallError(Exception):
    """A CALLERROR: raised by a handler to answer one, raised by call() when the peer sent one."""

    def __init__(self, code, description="", details=None):
        super().__init__(code, description)
        self.code = code
        self.description = description
        self.details = details

    def __str__(self):
        return "%s: %s" % (self.code, self.description)


class CallTimeout(Exception):
    """No CALLRESULT/CALLERROR arrived within the call timeout."""


class NotConnected(Exception):
    """The transport is down: the call was not sent, or its answer can no longer arrive."""


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


async def _run_after(aw):
    try:
        await aw
    except (NotConnected, CallTimeout) as e:
        # The connection went away under the work (a triggered message, ...): one line.
        log.warn("OCPP: %s" % (e,))
    except Exception as e:  # noqa: BLE001 - an after-task must never kill the loop
        print_exception(e)


class Rpc:
    def __init__(self, send, handlers=None, call_timeout_ms=30000,
                 id_prefix=None, validate_incoming=True, log=None):
        self._send = send
        self.handlers = handlers if handlers is not None else {}
        self.call_timeout_ms = call_timeout_ms
        if id_prefix is None:
            # Random per boot so ids never repeat across reboots (the CSMS may
            # still remember ids of the previous session).
            id_prefix = "%08x" % int.from_bytes(urandom(4), "big")
        self._prefix = id_prefix[:16]
        self._seq = 0
        self.validate_incoming = validate_incoming
        self._log = log
        self.silent = False  # answer nothing the peer sends (registration Rejected)
        self.screen = None  # fn(action) -> None (the handler answers) or the answer to give
        self.on_result = None  # fn(action, payload) of each valid CALLRESULT, before the next frame is read
        self._connected = True
        self._lock = asyncio.Lock()
        self._event = asyncio.Event()
        # The outstanding CALL: its id and action, and its outcome once known
        # (a response dict, or an exception instance to raise in the caller).
        self._pending_id = None
        self._pending_action = None
        self._outcome = None

    # ---- ids, connection state -------------------------------------------------

    def new_id(self):
        self._seq += 1
        return "%s-%d" % (self._prefix, self._seq)

    def connection_lost(self):
        """Fail the outstanding call; later calls raise NotConnected until connected()."""
        self._connected = False
        if self._pending_id is not None and self._outcome is None:
            self._outcome = NotConnected("connection lost")
            self._event.set()

    def connected(self, send):
        self._send = send
        self._connected = True

    # ---- outgoing --------------------------------------------------------------

    def _emit_log(self, direction, text):
        if self._log is not None:
            try:
                self._log(direction, text)
            except Exception as e:  # noqa: BLE001 - logging must not break the protocol
                print_exception(e)

    async def _write(self, text):
        self._emit_log("out", text)
        await self._send(text)

    async def call(self, action, payload, timeout_ms=None, msg_id=None):
        """Send a CALL and return the CALLRESULT payload.

        Raises CallError (peer answered CALLERROR, or its CALLRESULT failed
        validation), CallTimeout, or NotConnected.
        """
        if not self._connected:
            raise NotConnected("not connected")
        async with self._lock:
            # The connection may have dropped while this call queued for the lock.
            if not self._connected:
                raise NotConnected("not connected")
            mid = msg_id if msg_id is not None else self.new_id()
            self._pending_id = mid
            self._pending_action = action
            self._outcome = None
            self._event.clear()
            try:
                try:
                    await self._write(_dumps([CALL, mid, action, payload]))
                except Exception as e:  # noqa: BLE001 - any transport failure
                    raise NotConnected("send failed: %r" % (e,))
                if self._outcome is None:
                    ms = self.call_timeout_ms if timeout_ms is None else timeout_ms
                    try:
                        await asyncio.wait_for(self._event.wait(), ms / 1000)
                    except asyncio.TimeoutError:
                        raise CallTimeout("%s %s: no answer within %d ms" % (action, mid, ms))
                outcome = self._outcome
            finally:
                self._pending_id = None
                self._pending_action = None
                self._outcome = None
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

    def _resolve(self, outcome):
        self._outcome = outcome
        self._event.set()

    # ---- incoming --------------------------------------------------------------

    async def feed(self, text):
        """Handle one received frame. Never raises."""
        try:
            if type(text) is not str:
                # Transports may hand over the raw bytes of a text frame.
                try:
                    text = jsonin.decode(bytes(text))
                except ValueError:
                    self._emit_log("drop", "frame is not UTF-8")
                    return
            self._emit_log("in", text)
            await self._feed(text)
        except Exception as e:  # noqa: BLE001 - a bad frame or handler must not end the session
            print_exception(e)

    def _drop(self, why, text):
        self._emit_log("drop", why + ": " + text[:80])

    async def _error(self, mid, code, description, details=None):
        if type(details) is not dict:
            details = {}
        await self._send_answer(_dumps([CALLERROR, mid, code, description, details]))

    async def _send_answer(self, text):
        """Send an answer; True when it went out. A connection that closed meanwhile
        is one log line: the transport reports the loss itself."""
        try:
            await self._write(text)
            return True
        except Exception as e:  # noqa: BLE001 - any transport failure
            log.warn("OCPP answer not sent: %s" % (e,))
            return False

    async def _feed(self, text):
        try:
            # Strict on both runtimes, nesting bounded (a deep payload would end in a
            # RecursionError in whatever walks it), surrogate pairs decoded.
            msg = jsonin.loads(text)
        except ValueError as e:
            mid = _salvage_call_id(text)
            if mid is None or self.silent:
                self._drop("not JSON, id unreadable" if mid is None else "not answered", text)
            else:
                await self._error(mid, "FormationViolation", "frame is not valid JSON: %s" % e)
            return
        if type(msg) is not list:
            # No id to answer with: this would be a ProtocolError nobody can receive.
            self._drop("not an array", text)
            return
        if not msg or type(msg[0]) is not int:
            self._drop("no message type id", text)
            return
        kind = msg[0]
        if kind == CALL:
            if self.silent:
                self._drop("not answered", text)
                return
            await self._on_call(msg, text)
        elif kind == CALLRESULT or kind == CALLERROR:
            self._on_answer(kind, msg, text)
        else:
            # OCPP-J: an unknown message type is ignored; the connection stays up.
            self._drop("unknown message type %d" % kind, text)

    async def _on_call(self, msg, text):
        mid = msg[1] if len(msg) > 1 else None
        if type(mid) is int:
            # A numeric id can still be echoed back so the peer learns what went wrong.
            mid = str(mid)
        elif type(mid) is not str:
            self._drop("CALL id unreadable", text)
            return
        if len(msg) != 4:
            await self._error(mid, "FormationViolation", "CALL must have 4 elements, got %d" % len(msg))
            return
        if type(msg[1]) is not str:
            await self._error(mid, "FormationViolation", "message id must be a string")
            return
        action = msg[2]
        payload = msg[3]
        if type(action) is not str:
            await self._error(mid, "FormationViolation", "action must be a string")
            return
        if type(payload) is not dict:
            await self._error(mid, "FormationViolation", "payload must be a JSON object")
            return
        handler = self.handlers.get(action)
        if handler is None:
            if is_action(action):
                await self._error(mid, "NotSupported", "%s is not supported" % action)
            else:
                await self._error(mid, "NotImplemented", "unknown action %s" % action[:40])
            return
        try:
            if self.validate_incoming and known(action):
                err = validate(action, payload)
                if err is not None:
                    raise CallError(err[0], err[1])
            result = self.screen(action) if self.screen is not None else None
            if result is None:
                result = handler(payload)
        except CallError as e:
            await self._error(mid, e.code, e.description, e.details)
            return
        except Exception as e:  # noqa: BLE001 - any handler bug becomes InternalError
            print_exception(e)
            await self._error(mid, "InternalError", "%s: %s" % (type(e).__name__, e))
            return
        if hasattr(result, "send"):  # a coroutine (a generator on MicroPython)
            # Its own task: the handler may await a call() whose answer this reader has to read.
            asyncio.create_task(self._answer_later(mid, action, result))
        else:
            await self._answer(mid, action, result)

    async def _answer_later(self, mid, action, aw):
        try:
            result = await aw
        except CallError as e:
            await self._error(mid, e.code, e.description, e.details)
            return
        except Exception as e:  # noqa: BLE001 - any handler bug becomes InternalError
            print_exception(e)
            await self._error(mid, "InternalError", "%s: %s" % (type(e).__name__, e))
            return
        if self.silent:  # the registration was Rejected meanwhile
            self._emit_log("drop", "answer to %s not sent" % mid)
            return
        await self._answer(mid, action, result)

    async def _answer(self, mid, action, result):
        after = None
        if type(result) is tuple and len(result) == 2:
            result, after = result
        if type(result) is not dict:
            await self._error(mid, "InternalError", "%s handler returned %s, not a dict"
                              % (action, type(result).__name__))
            return
        try:
            text = _dumps([CALLRESULT, mid, result])
        except Exception as e:  # noqa: BLE001 - a handler bug: a result that is not JSON
            print_exception(e)
            await self._error(mid, "InternalError", "%s: %s" % (type(e).__name__, e))
            return
        if not await self._send_answer(text):
            return  # connection gone: the after-work is moot
        if after is not None:
            try:
                aw = after()
            except Exception as e:  # noqa: BLE001
                print_exception(e)
                return
            if aw is not None:
                # Its own task: `after` usually sends a CALL, whose answer this
                # reader has to be free to read.
                asyncio.create_task(_run_after(aw))

    def _on_answer(self, kind, msg, text):
        mid = msg[1] if len(msg) > 1 else None
        if mid is None or mid != self._pending_id or self._outcome is not None:
            self._drop("no outstanding call with this id", text)
            return
        if kind == CALLRESULT:
            if len(msg) != 3 or type(msg[2]) is not dict:
                self._resolve(CallError("FormationViolation", "malformed CALLRESULT"))
                return
            payload = msg[2]
            name = self._pending_action + "Response"
            if self.validate_incoming and known(name):
                err = validate(name, payload)
                if err is not None:
                    self._resolve(CallError(err[0], err[1]))
                    return
            if self.on_result is not None:
                try:
                    self.on_result(self._pending_action, payload)
                except Exception as e:  # noqa: BLE001 - the caller still gets its answer
                    print_exception(e)
            self._resolve(payload)
            return
        if len(msg) != 5 or type(msg[2]) is not str or type(msg[3]) is not str:
            self._resolve(CallError("FormationViolation", "malformed CALLERROR"))
            return
        self._resolve(CallError(msg[2], msg[3], msg[4] if type(msg[4]) is dict else {}))


def _salvage_call_id(text):
    """The id of a CALL frame that is not valid JSON, if its start can still be read.

    Reads `[ 2 , "id"` and nothing more; returns None for anything else, since
    only a CALL may be answered with a CALLERROR.
    """
    n = len(text)
    i = 0
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i >= n or text[i] != "[":
        return None
    i += 1
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i >= n or text[i] != "2":
        return None
    i += 1
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i >= n or text[i] != ",":
        return None
    i += 1
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i >= n or text[i] != '"':
        return None
    j = text.find('"', i + 1)
    if j < 0 or j - i - 1 > _MAX_ID:
        return None
    mid = text[i + 1:j]
    if "\\" in mid or jsonin.text_error(mid) is not None:
        return None
    return mid
