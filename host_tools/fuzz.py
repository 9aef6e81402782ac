"""Seeded regression fuzzer of the charger's two network surfaces (make fuzz).

    python -m host_tools fuzz --runtime micropython --seconds 60 --seed 7

OCPP: broken frames, schema-valid calls of every central-system action
generated from the official schemas, and schema-invalid mutations of them, sent
to a simulated charger through a real CSMS. HTTP: garbage, oversized and slow
requests and every API key with wrong values. Checked all along: every CALL
gets exactly one answer, the right one (a CALLRESULT valid against the response
schema, or a CALLERROR with the code ocpp16-notes.md decision 3 gives for what
was wrong); every frame the charger sends is valid UTF-8 and schema-valid;
every API answer is valid JSON whose status matches its content; no secret
(AuthorizationKey, ocppck, the ocppu password) shows in any answer, frame or
log line; and a normal transaction still works at the end.

A finding names the seed and the case number; the same seed replays the same
cases (timing aside).
"""
import argparse
import datetime
import json
import os
import random
import re
import socket
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import jsonschema

import ocpp

SCHEMAS = Path(ocpp.__file__).resolve().parent / "v16" / "schemas"
# Requests the charge point sends; every other request schema is the central system's.
CP_INITIATED = {"Authorize", "BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
                "Heartbeat", "MeterValues", "StartTransaction", "StatusNotification", "StopTransaction",
                "SecurityEventNotification", "SignCertificate", "LogStatusNotification",
                "SignedFirmwareStatusNotification"}
MAX_DEPTH = 20  # firmware/jsonin.py
MAX_ID = 36
MAX_MESSAGE = 16384  # firmware/ocpp/websocket.py: larger messages are refused with close code 1009
FV, OCV, TCV, PCV = ("FormationViolation", "OccurenceConstraintViolation", "TypeConstraintViolation",
                     "PropertyConstraintViolation")
# What a CALL may be answered with when nothing in it is wrong.
VALID_CALL_ERRORS = {"NotSupported"}
SECRET_KEY = "AuthorizationKey"
VENDOR = "OpenWallbox"  # firmware/ocpp/core.py: the vendor DataTransfer


def _inline(node, root):
    """The schema with each {"$ref": "#/definitions/X"} replaced by the definition (the
    security whitepaper's schemas use them)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            return _inline(root["definitions"][ref.rsplit("/", 1)[1]], root)
        return {k: _inline(v, root) for k, v in node.items() if k != "definitions"}
    if isinstance(node, list):
        return [_inline(v, root) for v in node]
    return node


def load_schemas():
    out = {}
    for p in sorted(SCHEMAS.glob("*.json")):
        root = json.loads(p.read_text())
        out[p.stem] = _inline(root, root)
    return out


_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")
FORMATS = jsonschema.FormatChecker([])


@FORMATS.checks("date-time")
def _is_date_time(v):
    """RFC 3339 date-time (the ocpp package's jsonschema has no checker of its own here)."""
    if not isinstance(v, str):
        return True
    if not _DATE_TIME.match(v):
        return False
    try:
        datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def validator(schema):
    return jsonschema.Draft4Validator(schema, format_checker=FORMATS)


def csms_actions(schemas):
    return sorted(a for a in schemas if not a.endswith("Response") and a not in CP_INITIATED)


# ---- values from schemas ------------------------------------------------------------

TEXT_PIECES = ["a", "Z", "7", " ", "-", "_", ".", "\u00e9", "\u20ac", "\u4e2d", "\U0001F697", "\U0001F600", '"',
               "\\", "/", "\t", "x" * 10]


def rand_text(rng, max_len):
    n = rng.choice([0, 1, 2, 5, max_len // 2, max_len]) if max_len else rng.randint(0, 12)
    n = max(0, min(n, max_len if max_len else 12))
    s = "".join(rng.choice(TEXT_PIECES[:11]) if rng.random() < 0.9 else rng.choice(TEXT_PIECES) for _ in range(n))
    return s[:n]


def rand_datetime(rng):
    t = datetime.datetime(2026, 12, 4, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        seconds=rng.randint(-86400 * 400, 86400 * 400))
    form = rng.randint(0, 2)
    if form == 0:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == 1:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % rng.randint(0, 999)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + rng.choice(["+01:00", "-05:30", "+00:00"])


def gen_value(s, rng, name=""):
    """A value valid against schema s (checked by the caller)."""
    if "enum" in s:
        return rng.choice(s["enum"])
    t = s.get("type")
    if t == "object":
        props = s.get("properties", {})
        req = set(s.get("required", ()))
        out = {}
        for k, ps in props.items():
            if k in req or rng.random() < 0.5:
                out[k] = gen_value(ps, rng, k)
        return out
    if t == "array":
        lo = s.get("minItems", 0)
        n = rng.randint(lo, max(lo, 3))
        return [gen_value(s.get("items", {}), rng, name) for _ in range(n)]
    if t == "string":
        if s.get("format") == "date-time":
            return rand_datetime(rng)
        if s.get("format") == "uri":
            # Nothing listens there: a download or upload fails at once.
            return "http://127.0.0.1:9/fuzz/" + rand_text(rng, 8).strip()
        return rand_text(rng, s.get("maxLength", 20))
    if t == "integer":
        lo = s.get("minimum", -5)
        hi = s.get("maximum", 2 ** 31 - 1)
        if "connector" in name.lower():
            return rng.choice([0, 1, 1, 1, 2, rng.randint(lo, min(hi, 1000))])
        return rng.choice([lo, max(lo, 0), max(lo, 1), rng.randint(lo, min(hi, 100)), rng.randint(lo, hi)])
    if t == "number":
        v = rng.choice([0, 6, 16, 32, 1.5, 11000, rng.randint(0, 400) / 2])
        return float(v) if rng.random() < 0.5 else v
    if t == "boolean":
        return rng.random() < 0.5
    return None


def valid_payload(schema, rng, action):
    v = validator(schema)
    for _ in range(20):
        p = gen_value(schema, rng, action)
        if v.is_valid(p):
            return p
    raise AssertionError("could not generate a valid %s" % action)


def _paths(schema, value, path=()):
    """(path, schema) of every value present in value, depth first."""
    yield path, schema
    t = schema.get("type")
    if t == "object" and isinstance(value, dict):
        for k, ps in schema.get("properties", {}).items():
            if k in value:
                yield from _paths(ps, value[k], path + (k,))
    elif t == "array" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(schema.get("items", {}), item, path + (i,))


def _get(value, path):
    for k in path:
        value = value[k]
    return value


def _set(value, path, new):
    for k in path[:-1]:
        value = value[k]
    value[path[-1]] = new


WRONG_TYPES = {"string": [5, True, None, [], {}], "integer": ["1", 1.5, True, None, []],
               "number": ["1", True, None, {}], "boolean": [0, "true", None], "object": [[], "x", 1, None],
               "array": [{}, "x", 1, None]}


def mutate(schema, payload, rng):
    """One schema violation: (payload, what, error codes allowed for it)."""
    p = json.loads(json.dumps(payload))
    spots = [(path, s) for path, s in _paths(schema, p)]
    for _ in range(30):
        kind = rng.randint(0, 4)
        path, s = rng.choice(spots)
        t = s.get("type")
        if kind == 0 and t == "object":
            req = [k for k in s.get("required", ()) if k in _get(p, path)]
            if req:
                k = rng.choice(req)
                del _get(p, path)[k]
                return p, "missing %s" % "/".join(map(str, path + (k,))), {OCV}
        elif kind == 1 and path and t in WRONG_TYPES:
            _set(p, path, rng.choice(WRONG_TYPES[t]))
            return p, "wrong type at %s" % "/".join(map(str, path)), {TCV}
        elif kind == 2 and path and "enum" in s:
            _set(p, path, rng.choice(["", "Bogus", s["enum"][0].lower() + "x"]))
            return p, "not in enum at %s" % "/".join(map(str, path)), {PCV}
        elif kind == 3 and path and t == "string" and "maxLength" in s:
            _set(p, path, "\U0001F697" * (s["maxLength"] + 1) if rng.random() < 0.3 else "x" * (s["maxLength"] + 1))
            return p, "too long at %s" % "/".join(map(str, path)), {PCV}
        elif kind == 4 and t == "object" and s.get("additionalProperties") is False:
            _get(p, path)["fuzzExtra"] = 1
            return p, "extra property at %s" % "/".join(map(str, path)), {FV}
        elif kind == 2 and path and t == "string" and s.get("format") == "date-time":
            _set(p, path, rng.choice(["yesterday", "2026-13-01T00:00:00Z", "2026-12-04 10:00:00"]))
            return p, "bad date-time at %s" % "/".join(map(str, path)), {PCV}
    # Nothing to break inside: the payload itself.
    return [], "payload not an object", {FV}


# ---- the reference reading of a frame -----------------------------------------------

def strict_parse(text):
    """CPython's json made RFC 8259 strict like the firmware's jsonin: ValueError otherwise."""
    def no_constant(name):
        raise ValueError(name)

    def check(v, depth):
        if isinstance(v, (list, dict)):
            if depth >= MAX_DEPTH:
                raise ValueError("too deep")
            items = list(v.items()) if isinstance(v, dict) else [(None, x) for x in v]
            for k, x in items:
                if k is not None:
                    check(k, depth + 1)
                check(x, depth + 1)
        elif isinstance(v, str):
            v.encode("utf-8")  # lone surrogates raise UnicodeEncodeError, a ValueError
    v = json.loads(text, parse_constant=no_constant)
    check(v, 0)
    return v


_SALVAGE = re.compile(r'[ \t\r\n]*\[[ \t\r\n]*2[ \t\r\n]*,[ \t\r\n]*"([^"]*)"')


def expected_answer(text):
    """What the charger must do with a frame: (answer id or None, allowed codes or None for
    'any answer of the CALL's own merits')."""
    try:
        msg = strict_parse(text)
    except (ValueError, RecursionError):
        m = _SALVAGE.match(text)
        if m and len(m.group(1)) <= MAX_ID and "\\" not in m.group(1):
            return m.group(1), {FV}
        return None, None
    if type(msg) is not list or not msg or type(msg[0]) is not int or msg[0] != 2:
        return None, None
    mid = msg[1] if len(msg) > 1 else None
    if type(mid) is int:
        mid = str(mid)
    elif type(mid) is not str:
        return None, None
    if len(msg) != 4 or type(msg[1]) is not str or type(msg[2]) is not str or type(msg[3]) is not dict:
        return mid, {FV}
    return mid, None


# ---- findings -----------------------------------------------------------------------

class Findings:
    def __init__(self, seed, runtime):
        self.seed = seed
        self.runtime = runtime
        self.items = []

    def add(self, case, what, detail=""):
        if len(detail) > 3000:
            detail = detail[:1000] + "\n...\n" + detail[-2000:]
        self.items.append("[%s seed=%d case=%s] %s %s" % (self.runtime, self.seed, case, what, detail))

    def __bool__(self):
        return bool(self.items)


# ---- OCPP ---------------------------------------------------------------------------

class OcppFuzz:
    def __init__(self, csms, sim, rng, findings, schemas, secrets):
        self.csms = csms
        self.sim = sim
        self.rng = rng
        self.findings = findings
        self.schemas = schemas
        self.actions = csms_actions(schemas)
        self.validators = {k: validator(v) for k, v in schemas.items()}
        self.secrets = secrets
        self.n = 0
        self.reservations = set()
        self.connections = len(csms.csms.connections)
        self.config_keys = []

    def cp(self):
        return self.csms.cp()

    def _send(self, text, as_bytes=False):
        cp = self.cp()
        if as_bytes:
            # A text frame whose bytes are not valid UTF-8 (the ocpp package would refuse it).
            self.csms.run(cp._connection.ws.send(text, text=True))
        else:
            self.send_raw(text)

    def send_raw(self, text):
        """A frame as given: the ocpp package would refuse to build a malformed one."""
        self.csms.run(self.cp()._connection.send(text))

    def exchange(self, text, case, as_bytes=False, timeout=30, sentinel=True, expect=None):
        """Send a frame, then a sentinel CALL; the charger answers in order, so once the
        sentinel is answered every answer to the frame is in. Returns the new answers
        (parsed) but the sentinel's; None when the connection closed (a frame over the
        charger's message size may close it with 1009, a frame that is not UTF-8 with 1007;
        anything else is a finding)."""
        cp = self.cp()
        start = len(cp.frames)
        self.n += 1
        sid = "sentinel-%d" % self.n
        size = len(text) if as_bytes else len(text.encode("utf-8", "surrogatepass"))
        err = None
        try:
            self._send(text, as_bytes)
            if sentinel:
                self.send_raw('[2,"%s","FuzzSentinel",{}]' % sid)
            self.csms.wait_for(lambda: self._answered(cp, start, sid if sentinel else None) or not cp.connected,
                               timeout)
        except Exception as e:  # noqa: BLE001 - a dropped connection, a charger that stopped answering
            err = e
        if err is None and expect is not None and cp.connected:
            # Handlers that wait for something answer from their own task, possibly after
            # the sentinel: give the expected answer its time too.
            try:
                self.csms.wait_for(lambda: self._answered(cp, start, expect) or not cp.connected, 10)
            except Exception as e:  # noqa: BLE001 - judged below as a missing answer
                err = None if self._answered(cp, start, sid) else e
        done = self._answered(cp, start, sid if sentinel else None)
        if not done and (err is not None or not cp.connected):
            code = _close_code(cp)
            if not ((size > MAX_MESSAGE and code == 1009) or (as_bytes and code == 1007)):
                recent = " | ".join("%s %s" % (d, _show(t, 120)) for d, t in list(cp.frames)[-8:])
                self.findings.add(case, "connection lost or no answer after the frame",
                                  "%r close code %s frame=%s; last frames: %s" % (err, code, _show(text), recent))
            self._recover(case)
            return None
        out = []
        for d, t in list(cp.frames)[start:]:
            if d != "<":
                continue
            m = json.loads(t)
            if m[0] in (3, 4) and m[1] != sid:
                out.append(m)
            elif m[0] == 2:
                self._check_cp_call(case, m)
        return out

    @staticmethod
    def _answered(cp, start, sid):
        """Whether the frames since start hold the answer to sid (None: any answer)."""
        for d, t in list(cp.frames)[start:]:
            if d == "<" and t[:2] in ("[3", "[4") and (sid is None or json.loads(t)[1] == sid):
                return True
        return False

    def _check_cp_call(self, case, m):
        action, payload = m[2], m[3]
        v = self.validators.get(action)
        if v is not None:
            errs = list(v.iter_errors(payload))
            if errs:
                self.findings.add(case, "charger sent an invalid %s" % action, errs[0].message)

    def _recover(self, case):
        """After a closed connection: wait until the charger is connected again and online."""
        try:
            self.csms.wait_for(lambda: len(self.csms.csms.connections) > self.connections
                               and self.cp().connected, 60)
            wait_online(self.sim, 60)
        except Exception as e:  # noqa: BLE001
            self.findings.add(case, "charger did not come back online", "%r\n%s" % (e, self.sim.log(30)))
            raise
        self.connections = len(self.csms.csms.connections)

    def check_answers(self, case, text, answers, mid, allowed, action=None, result_ok=False):
        """Exactly one answer to a CALL with id mid (none when mid is None), of the right kind:
        a CALLERROR with a code in allowed (None: any), or when result_ok a CALLRESULT valid
        against the action's response schema."""
        if answers is None:
            return
        mine = [a for a in answers if mid is not None and a[1] == mid]
        others = [a for a in answers if a not in mine]
        if others:
            self.findings.add(case, "answers with ids never sent", "%s frame=%s" % (others, _show(text)))
        if mid is None:
            return
        if len(mine) != 1:
            self.findings.add(case, "%d answers to one CALL" % len(mine), "frame=%s answers=%s" % (_show(text), mine))
            return
        a = mine[0]
        if a[0] == 4:
            if len(a) != 5 or type(a[2]) is not str or type(a[3]) is not str or type(a[4]) is not dict:
                self.findings.add(case, "malformed CALLERROR", str(a))
            elif allowed is not None and a[2] not in allowed:
                self.findings.add(case, "CALLERROR %s, expected %s" % (a[2], "/".join(sorted(allowed))),
                                  "desc=%r frame=%s" % (a[3], _show(text)))
            return
        if not result_ok:
            self.findings.add(case, "CALLRESULT where a CALLERROR %s was due" % "/".join(sorted(allowed)),
                              "frame=%s answer=%s" % (_show(text), _show(json.dumps(a))))
            return
        if action is not None:
            v = self.validators.get(action + "Response")
            if v is not None and len(a) == 3:
                errs = list(v.iter_errors(a[2]))
                if errs:
                    self.findings.add(case, "%sResponse invalid" % action,
                                      "%s: %s" % (errs[0].message, _show(json.dumps(a))))

    # -- case kinds --

    def valid_call(self, case):
        action = self.rng.choice(self.actions)
        payload = valid_payload(self.schemas[action], self.rng, action)
        self._adapt(action, payload)
        mid = "fz-%d" % case
        self.call_valid(case, json.dumps([2, mid, action, payload]), mid, action, payload)

    def call_valid(self, case, text, mid, action, payload):
        """A schema-valid CALL: a valid CALLRESULT or NotSupported."""
        ends = action == "Reset" or (action == "ChangeConfiguration"
                                     and payload["key"].lower() in ("authorizationkey", "securityprofile"))
        # An accepted Reset or new AuthorizationKey ends the connection right after the
        # answer (the charger reboots or connects anew): no sentinel then.
        answers = self.exchange(text, case, sentinel=not ends, expect=mid)
        self.check_answers(case, text, answers, mid, VALID_CALL_ERRORS, action, result_ok=True)
        if ends and answers and answers[0][0] == 3 and answers[0][2].get("status") == "Accepted":
            self._recover(case)

    def _adapt(self, action, payload):
        """Keep valid calls from ending the run: known keys for ChangeConfiguration, the
        reservations remembered for the clean-up."""
        if action == "ChangeConfiguration" and self.config_keys and self.rng.random() < 0.7:
            payload["key"] = self.rng.choice(self.config_keys)
            if payload["key"] == SECRET_KEY:
                payload["value"] = self.secrets[0]
            elif payload["key"] == "SecurityProfile":
                payload["value"] = self.rng.choice(["0", "1", "2", "3", "x"])
            else:
                payload["value"] = self.rng.choice([payload["value"], "0", "1", "30", "true", "false", "-1",
                                                    "99999999999", "1.5", "Core", payload["value"] * 3])[:500]
        if action == "ReserveNow":
            self.reservations.add(payload["reservationId"])

    def invalid_call(self, case):
        action = self.rng.choice(self.actions)
        payload = valid_payload(self.schemas[action], self.rng, action)
        bad, what, allowed = mutate(self.schemas[action], payload, self.rng)
        if self.validators[action].is_valid(bad):
            return  # the mutation happened to stay valid (e.g. an optional value)
        mid = "fz-%d" % case
        text = json.dumps([2, mid, action, bad])
        answers = self.exchange(text, case, expect=mid)
        self.check_answers(case, text, answers, mid, allowed | {"NotSupported"}, action)

    def broken_frame(self, case):
        text, as_bytes = broken_frame(self.rng, case, self.schemas, self.actions)
        if as_bytes:
            # Not a valid text frame: the charger may drop it or close with 1007; no answer is due.
            answers = self.exchange(text, case, as_bytes=True)
            if answers:
                self.findings.add(case, "answer to a frame that is not UTF-8", str(answers))
            return
        mid, allowed = expected_answer(text)
        try:
            msg = strict_parse(text)
            if allowed is None and mid is not None and type(msg[1]) is str and msg[2] in self.actions \
                    and self.validators[msg[2]].is_valid(msg[3]):
                return self.call_valid(case, text, mid, msg[2], msg[3])
        except (ValueError, RecursionError, IndexError, TypeError, KeyError):
            pass
        answers = self.exchange(text, case, expect=mid)
        if allowed is None and mid is not None:
            # A well-formed CALL: judged on its own merits.
            allowed = {FV, OCV, TCV, PCV, "NotImplemented", "NotSupported"}
            action = None
            result_ok = False
            try:
                msg = strict_parse(text)
                action = msg[2]
                if action in self.validators and action in self.actions:
                    result_ok = self.validators[action].is_valid(msg[3])
                    if result_ok:
                        allowed = VALID_CALL_ERRORS
                elif action not in self.validators:
                    allowed = {"NotImplemented"}
            except (ValueError, RecursionError, IndexError, TypeError):
                pass
            self.check_answers(case, text, answers, mid, allowed, action if isinstance(action, str) else None,
                               result_ok)
            return
        self.check_answers(case, text, answers, mid, allowed)

    def vendor_data(self, case):
        """The vendor DataTransfer that reads API keys: secrets must read as null."""
        keys = ["ocppck", "ocppu", "AuthorizationKey", "ocppcc", "amp", "fna"]
        data = self.rng.choice([json.dumps(keys), json.dumps(keys[:2]), "[" * 50 + "]" * 50, '["amp",]', "x",
                                json.dumps({"k": keys})])
        mid = "fz-%d" % case
        text = json.dumps([2, mid, "DataTransfer", {"vendorId": VENDOR, "messageId": "GetApiKeys", "data": data}])
        answers = self.exchange(text, case, expect=mid)
        self.check_answers(case, text, answers, mid, VALID_CALL_ERRORS, "DataTransfer", result_ok=True)

    def cleanup(self):
        """Undo what fuzzed calls may have left that would block a transaction."""
        c = self.csms
        for rid in sorted(self.reservations):
            _quiet(lambda: c.call("CP1", "CancelReservation", {"reservationId": rid}))
        for conn in (0, 1):
            _quiet(lambda: c.call("CP1", "ChangeAvailability", {"connectorId": conn, "type": "Operative"}))
        _quiet(lambda: c.call("CP1", "ClearChargingProfile", {}))
        tx = self.sim.status("ocppti").get("ocppti")
        if tx is not None:
            _quiet(lambda: c.call("CP1", "RemoteStopTransaction", {"transactionId": tx}))


def _close_code(cp):
    ws = cp._connection.ws
    try:
        return ws.close_code
    except AttributeError:
        return None


def wait_online(sim, timeout):
    """Until the charger's API says it is online at the CSMS (through a reboot: the API
    may refuse connections for a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if sim.status("ocppa").get("ocppa") is True:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or not sim.alive():
            raise AssertionError("charger not online")
        time.sleep(0.1)


def _quiet(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - clean-up: a refusal is fine
        return None


def _show(text, n=300):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= n else text[:n] + "...(%d chars)" % len(text)


def broken_frame(rng, case, schemas, actions):
    """A frame that is broken in one of many ways: (text or bytes, is_bytes)."""
    mid = "bf-%d" % case
    action = rng.choice(actions)
    good = json.dumps([2, mid, action, valid_payload(schemas[action], rng, action)])
    k = rng.randint(0, 21)
    if k == 0:
        return good[:rng.randint(0, len(good) - 1)], False
    if k == 1:
        i = rng.randint(0, len(good))
        return good[:i] + rng.choice([",", "]", "}", "[", "{", '"', ":", "\\", " ", "0", "\x00", "\x1f"]) + good[i:], False
    if k == 2:
        i = rng.randint(0, len(good) - 1)
        return good[:i] + good[i + 1:], False
    if k == 3:
        return good[:-1] + ",]", False
    if k == 4:
        return good.replace("}", ",}", 1) if "}" in good else good + ",", False
    if k == 5:
        d = rng.choice([MAX_DEPTH - 2, MAX_DEPTH, 100, 1000, 5000])
        return '[2,"%s","%s",{"x":%s%s}]' % (mid, action, "[" * d, "]" * d), False
    if k == 6:
        return '[2,"%s","GetConfiguration",{"key":["a\\ud800b"]}]' % mid, False
    if k == 7:
        return '[2,"%s","GetConfiguration",{"key":["%s"]}]' % (mid, "\\ud83d\\ude97" * rng.randint(1, 60)), False
    if k == 8:
        return rng.choice(["[2]", "[2,\"%s\"]" % mid, "[2,\"%s\",\"Reset\"]" % mid,
                           "[2,\"%s\",\"Reset\",{},{}]" % mid, "[2,%d,\"Reset\",{\"type\":\"Soft\"}]" % case,
                           "[2,null,\"Reset\",{}]", "[2,true,\"Reset\",{}]", "[2,1.5,\"Reset\",{}]",
                           "[2,\"%s\",5,{}]" % mid, "[2,\"%s\",\"Reset\",[]]" % mid,
                           "[2,\"%s\",\"Reset\",null]" % mid, "[]", "{}", "null", "2", "\"x\"",
                           "[7,\"%s\"]" % mid, "[3,\"%s\",{}]" % mid, "[4,\"%s\",\"x\",\"y\",{}]" % mid,
                           "[-1]", "[2,\"%s\",\"MakeCoffee\",{}]" % mid, "[2,\"%s\",\"\",{}]" % mid]), False
    if k == 9:
        return '[2,"%s","%s",%s]' % ("i" * rng.choice([36, 37, 100, 3000]), action,
                                     json.dumps(valid_payload(schemas[action], rng, action))), False
    if k == 10:
        return good.replace(":", ":NaN,\"y\":", 1), False
    if k == 11:
        return re.sub(r":(\d)", r":0\1", good, count=1) if re.search(r":\d", good) else good + " x", False
    if k == 12:
        return good.replace('"', "'"), False
    if k == 13:
        return " \t\r\n" + good + " \n", False
    if k == 14:
        return good + good, False
    if k == 15:
        return "".join(chr(rng.randint(1, 0x7F)) for _ in range(rng.randint(1, 200))), False
    if k == 16:
        i = good.rfind('"')
        return good[:i] + "\x01" + good[i:], False
    if k == 17:
        # Invalid UTF-8 in a text frame: overlong '/', an encoded surrogate, a stray byte.
        bad = rng.choice([b"\xc0\xaf", b"\xed\xa0\xbd", b"\xff", b"\xf4\x90\x80\x80"])
        return ('[2,"%s","GetConfiguration",{"key":["' % mid).encode() + bad + b'"]}]', True
    if k == 18:
        return good.replace(",", " ", 1), False
    if k == 19:
        return '[2,"%s","%s",%s]' % (mid, action, "{" + '"a":{' * 30 + "}" * 31), False
    if k == 20:
        return good[:-1] + " ]", False
    return '[2,"%s","DataTransfer",{"vendorId":"x","data":"%s"}]' % (mid, "y" * rng.choice([100, 5000, 20000])), False


# ---- HTTP ---------------------------------------------------------------------------

class HttpFuzz:
    def __init__(self, sim, rng, findings, quick):
        self.sim = sim
        self.rng = rng
        self.findings = findings
        self.quick = quick
        self.bodies = []  # every answer body, for the secret check

    def request(self, raw, timeout=15, slow=False):
        """Send raw bytes; return (status, headers text, body bytes) or None when closed unanswered."""
        s = socket.create_connection(("127.0.0.1", self.sim.http_port), timeout=timeout)
        try:
            try:
                if slow:
                    for i in range(0, len(raw), 7):
                        s.sendall(raw[i:i + 7])
                        time.sleep(0.02)
                else:
                    s.sendall(raw)
                # The request ends here: a server waiting for more sees the end at once.
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            buf = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        if not buf:
            return None
        head, _, body = buf.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        if not m:
            return -1, head, body
        return int(m.group(1)), head, body

    def check(self, case, raw, res, api=True, expect=None):
        if res is None:
            return None
        status, head, body = res
        self.bodies.append(body)
        if status < 0:
            self.findings.add(case, "answer without an HTTP status line", _show(head[:200]))
            return None
        # /api/set answers 500 with a message per key when any key failed (README).
        per_key = raw.startswith((b"GET /api/set?", b"POST /api/set ")) and status == 500
        if status >= 500 and status != 503 and not per_key:
            self.findings.add(case, "HTTP %d" % status, "request=%s body=%s" % (_show(raw[:200]), _show(body[:300])))
        if api and body:
            try:
                obj = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                self.findings.add(case, "answer body is not valid UTF-8 JSON", "%r request=%s body=%r"
                                  % (e, _show(raw[:200]), body[:200]))
                return None
            if expect is not None:
                expect(case, raw, status, obj)
            return obj
        return None

    def set_answer_matches(self, case, raw, status, obj):
        if not isinstance(obj, dict):
            self.findings.add(case, "/api/set answer is not an object", _show(json.dumps(obj)))
            return
        ok = all(v is True for v in obj.values())
        if ok != (status == 200) and "error" not in obj:
            self.findings.add(case, "/api/set status %d does not match its answer" % status,
                              "request=%s answer=%s" % (_show(raw[:200]), _show(json.dumps(obj))))

    def get(self, path):
        return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()

    def wrong_values(self, key, value):
        if isinstance(value, bool):
            cands = [1, "true", [], {}, 2.5]
        elif isinstance(value, int):
            cands = ["x", True, [1], {}, 1.5, 1e999, -1e999, 10 ** 30]
        elif isinstance(value, float):
            cands = ["x", True, [1], {}, 1e999]
        elif isinstance(value, str):
            cands = [5, True, [], {"a": 1}, "\ud800x"]
        else:
            cands = [[[[1]]], {"x": [1]}]
        return [json.dumps(c) for c in cands] + ["[1,]", "01", "NaN", "'x'", "[" * 100 + "]" * 100, "%C0%AF"]

    def keys_with_wrong_values(self, case0, status):
        cases = 0
        for key in sorted(status):
            if key in ("rst",):
                continue
            vals = self.wrong_values(key, status[key])
            if self.quick:
                vals = self.rng.sample(vals, min(2, len(vals)))
            for v in vals:
                q = urllib.parse.quote(v, safe="%") if v != "%C0%AF" else v
                raw = self.get("/api/set?%s=%s" % (urllib.parse.quote(key), q))
                obj = self.check("%s/%s" % (case0, key), raw, self.request(raw), expect=self.set_answer_matches)
                if isinstance(obj, dict) and obj.get(key) is True:
                    self.findings.add("%s/%s" % (case0, key), "a wrong value was accepted",
                                      "%s=%s (it was %s)" % (key, v, _show(json.dumps(status[key]), 80)))
                    self.request(self.get("/api/set?%s=%s" % (urllib.parse.quote(key),
                                                               urllib.parse.quote(json.dumps(status[key])))))
                cases += 1
        return cases

    def garbage(self, case):
        rng = self.rng
        k = rng.randint(0, 13)
        slow = False
        if k == 0:
            raw = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 300)))
        elif k == 1:
            raw = self.get("/api/status?filter=" + "x" * rng.choice([100, 3000, 9000]))
        elif k == 2:
            raw = b"GET /api/status HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100)
                                                          for i in range(rng.choice([10, 80, 300]))) + b"\r\n"
        elif k == 3:
            n = rng.choice([17000, 100000])
            raw = (b"POST /api/set HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                   b"Content-Length: %d\r\n\r\n" % n) + b"fna=" + b"a" * min(n, 20000)
        elif k == 4:
            body = "fna=" + urllib.parse.quote('"' + "x" * rng.choice([10, 9000, 15000]))
            raw = (("POST /api/set HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    "Content-Length: %d\r\n\r\n" % len(body)) + body).encode()
        elif k == 5:
            raw = self.get("/api/set?%ZZ=1&amp=%")
        elif k == 6:
            raw = b"GET /api/status\r\n\r\n"
        elif k == 7:
            raw = b"BREW /api/status HTTP/1.1\r\n\r\n"
        elif k == 8:
            raw = self.get("/api/status")
            slow = True
        elif k == 9:
            raw = self.get("/api/set?" + "&".join("k%d=1" % i for i in range(rng.choice([5, 200]))))
        elif k == 10:
            raw = self.get("/api/set?fna=" + urllib.parse.quote(json.dumps("\U0001F697" * rng.randint(1, 40))))
        elif k == 11:
            raw = (b"POST /api/set HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfna=1")
        elif k == 12:
            raw = b"GET /api/status HTTP/1.1\r\nContent-Length: -5\r\n\r\n"
        else:
            raw = self.get("/api/status?filter=" + urllib.parse.quote(",".join(["ocppck", "ocppu", "fna", "\U0001F697"])))
        api = raw.startswith((b"GET /api", b"POST /api"))
        expect = self.set_answer_matches if raw.startswith(b"GET /api/set?") else None
        self.check(case, raw, self.request(raw, slow=slow), api=api, expect=expect)

    def stalled(self, case):
        """A client that sends half a head and waits: others are still served, and it is
        answered 408 or let go within the head timeout (5 s) plus a margin."""
        s = socket.create_connection(("127.0.0.1", self.sim.http_port), timeout=15)
        try:
            s.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            if not self.alive(case):
                return
            t0 = time.monotonic()
            buf = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
            except OSError:
                self.findings.add(case, "a stalled request was held %.0f s" % (time.monotonic() - t0))
                return
            if buf:
                head, _, body = buf.partition(b"\r\n\r\n")
                self.check(case, b"(stalled head)", (int(head[9:12]) if head[9:12].isdigit() else -1, head, body))
        finally:
            s.close()

    def alive(self, case):
        raw = self.get("/api/status?filter=fna")
        res = self.request(raw)
        if res is None or res[0] != 200:
            self.findings.add(case, "API not answering after the fuzz cases", repr(res and res[:2]))
            return False
        return True


# ---- the run ------------------------------------------------------------------------

def make_client_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def secret_markers(secrets):
    """Strings that must never appear in anything the charger says: the secrets and,
    for the PEM key, each line of its base64 body."""
    out = []
    for s in secrets:
        if "-----BEGIN" in s:
            out += [line for line in s.splitlines() if line and not line.startswith("-----")]
        else:
            out.append(s)
    return out


def normal_transaction(csms, sim, findings):
    """Plug in, remote start with a fresh idTag, remote stop: both messages must be sent."""
    tag = "FUZZFINAL"
    try:
        sim.sim_set(ev="C")
        res = csms.call("CP1", "RemoteStartTransaction", {"connectorId": 1, "idTag": tag})
        if res.get("status") != "Accepted":
            findings.add("final", "RemoteStartTransaction after the fuzz answered", str(res))
            return
        csms.wait_for(lambda: any(p.get("idTag") == tag for p in csms.received("StartTransaction")), 30)
        st = sim.wait_status(lambda s: s["ocppti"] is not None, keys=("ocppti",), timeout=30)
        res = csms.call("CP1", "RemoteStopTransaction", {"transactionId": st["ocppti"]})
        if res.get("status") != "Accepted":
            findings.add("final", "RemoteStopTransaction after the fuzz answered", str(res))
            return
        csms.wait_for(lambda: any(p.get("transactionId") == st["ocppti"] for p in csms.received("StopTransaction")),
                      30)
        sim.sim_set(ev="A")
    except Exception as e:  # noqa: BLE001
        findings.add("final", "a normal transaction failed after the fuzz", "%r starts=%s status=%s\n%s" % (
            e, csms.received("StartTransaction")[-3:], _quiet(lambda: sim.status("car", "ocppti", "ocpps", "frc")),
            "\n".join(line for line in sim.output[-300:] if "Transaction" in line or "Status" in line)[-3000:]))


def run(runtime, seconds=None, cases=None, seed=1, state_dir=None, http_cases=None, out=print):
    """One fuzz run against a fresh simulator; returns the Findings.

    cases bounds the OCPP cases (and http_cases the HTTP ones) for the test suite;
    seconds bounds the whole run for long runs.
    """
    from host_tools.launcher import CsmsThread, Sim

    import logging
    logging.getLogger("ocpp").setLevel(logging.CRITICAL)  # the CALLERRORs are checked here
    rng = random.Random(seed)
    findings = Findings(seed, runtime)
    schemas = load_schemas()
    password = "pw%08x" % rng.getrandbits(32)
    auth_key = "fuzzkey-%016x" % rng.getrandbits(64)
    client_key = make_client_key()
    secrets = [auth_key, password, client_key]
    markers = secret_markers(secrets)
    quick = cases is not None
    deadline = time.monotonic() + seconds if seconds else None
    tmp = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="fuzz-")
        state_dir = tmp.name
    csms = CsmsThread()
    url = csms.url("CP1").replace("ws://", "ws://fz:%s@" % password)
    sim = Sim(runtime, state_dir, url=url, sets=("ocppck=%s" % json.dumps(client_key),
                                                 "%s=%s" % (SECRET_KEY, json.dumps(auth_key))))
    n_ocpp = n_http = 0
    try:
        sim.start()
        sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",), timeout=60)
        fz = OcppFuzz(csms, sim, rng, findings, schemas, secrets)
        fz.config_keys = [e["key"] for e in csms.call("CP1", "GetConfiguration", {}).get("configurationKey", [])]
        hz = HttpFuzz(sim, rng, findings, quick)
        status = sim.status()
        kinds = [fz.valid_call] * 4 + [fz.invalid_call] * 4 + [fz.broken_frame] * 4 + [fz.vendor_data]
        while True:
            if deadline is not None and time.monotonic() > deadline:
                break
            if cases is not None and n_ocpp >= cases and n_http >= (http_cases or 0):
                break
            if cases is None or n_ocpp < cases:
                n_ocpp += 1
                rng.choice(kinds)(n_ocpp)
            if http_cases is None or n_http < http_cases:
                n_http += 1
                if not quick and n_http % 100 == 0:
                    hz.stalled("h%d" % n_http)  # 5 s each: long runs only
                else:
                    hz.garbage("h%d" % n_http)
            if n_ocpp % 50 == 0 and cases is None:
                out("%s: %d OCPP and %d HTTP cases, %d findings" % (runtime, n_ocpp, n_http, len(findings.items)))
        n_http += hz.keys_with_wrong_values("keys", status)
        hz.alive("end")
        fz.cleanup()
        # A reboot ends what only lives in memory (a remote start still waiting for a car);
        # what the fuzz cases stored must not keep a normal transaction from working.
        sim.rst()
        wait_online(sim, 60)
        normal_transaction(csms, sim, findings)
        # Secrets: in no frame the charger sent, no API answer, no log line.
        said = [t for c in csms.csms.connections for d, t in c.frames if d == "<"]
        for m in markers:
            where = [w for w, texts in (("OCPP frames", said), ("log", sim.output),
                                        ("HTTP answers", [b.decode("utf-8", "replace") for b in hz.bodies]))
                     if any(m in t for t in texts)]
            if where:
                findings.add("secrets", "a secret appears in %s" % ", ".join(where), "(secret starts %s)" % m[:4])
        # The harness reads the log with errors="replace"; nothing sent here holds U+FFFD.
        for line in [line for line in sim.output if "\ufffd" in line][:3]:
            findings.add("log", "log line not valid UTF-8", line[:300])
        tb = [i for i, line in enumerate(sim.output) if line.startswith("Traceback")]
        for i in tb[:5]:
            findings.add("log", "traceback in the charger's log", "\n".join(sim.output[max(0, i - 3):i + 12]))
        for v in csms.csms.violations:
            findings.add("schema", "charger sent a frame the official schemas refuse", repr(v))
    except Exception as e:  # noqa: BLE001 - the run itself broke: that is a finding too
        findings.add("run", "fuzz run aborted", "%r\n%s" % (e, sim.log(60)))
    finally:
        sim.kill()
        csms.close()
        if tmp is not None:
            tmp.cleanup()
    out("%s seed %d: %d OCPP cases, %d HTTP cases, %d findings" % (runtime, seed, n_ocpp, n_http,
                                                                   len(findings.items)))
    return findings


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", choices=["micropython", "cpython", "both"], default="both")
    p.add_argument("--seconds", type=float, default=60, help="per runtime")
    p.add_argument("--seed", type=int, default=None, help="default: random, printed")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "big")
    print("fuzz seed %d" % seed, flush=True)
    runtimes = ["micropython", "cpython"] if args.runtime == "both" else [args.runtime]
    bad = []
    for rt in runtimes:
        f = run(rt, seconds=args.seconds, seed=seed, out=lambda s: print(s, flush=True))
        bad += f.items
    for line in bad:
        print(line)
    print("%d findings" % len(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
