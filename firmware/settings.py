"""One registry for every setting: OCPP configuration keys and HTTP API keys.

Each feature module defines its own keys here. An OCPP key can carry a go-e API
alias (`HeartbeatInterval` = `ocpph`): both names reach the same value through
the same validator. Live status values (read-only, computed) are registered
with a getter. Persisted values live in one JSON file written atomically; a
corrupt file or a stored value that no longer validates falls back to the
default and is reported, never raised.
"""
from firmware.compat import const
from firmware.jsonin import text_error

# Kinds of value.
BOOL = const(0)
INT = const(1)
FLOAT = const(2)
STR = const(3)
CSL = const(4)  # OCPP comma separated list, items from a fixed set
JSON = const(5)  # any JSON value (arrays, objects), checked by a custom check

# Flags.
R = const(1)
W = const(2)
RW = const(3)
PERSIST = const(4)
REBOOT = const(8)  # the change takes effect after a reboot (OCPP RebootRequired)
SECRET = const(16)  # write-only: reads never reveal it
NULL = const(32)  # None is a valid value
OCPP = const(64)  # listed in OCPP GetConfiguration
URL_PASSWORD = const(128)  # a URL whose user:password@ password reads masked; written back masked, it is kept

_FILE = "settings.json"


class Setting:
    # What most keys leave unset stays here, on the class: on MicroPython each
    # attribute set on an instance is a slot in its own table (no __slots__ there).
    kind = JSON
    flags = RW | PERSIST
    alias = None
    lo = None
    hi = None
    default = None
    value = None
    getter = None
    check = None

    def __init__(self, name, kind, default, flags, lo, hi, alias, getter, check):
        self.name = name
        if kind != JSON:
            self.kind = kind
        if flags != RW | PERSIST:
            self.flags = flags
        if alias is not None:
            self.alias = alias
        if lo is not None:
            self.lo = lo
        if hi is not None:
            self.hi = hi
        if default is not None:
            self.default = default
            self.value = default
        if getter is not None:
            self.getter = getter
        if check is not None:
            self.check = check

    def api_name(self):
        return self.alias or self.name


class _Status(Setting):
    """A read-only live value: a name and its getter."""
    flags = R

    def __init__(self, name, getter):
        self.name = name
        self.getter = getter


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v):
    """False for inf, -inf and NaN (inf - inf is NaN, and NaN equals nothing)."""
    return v - v == 0


def _fmt(v):
    if isinstance(v, float) and _finite(v) and v == int(v):
        return str(int(v))
    return str(v)


class Settings:
    def __init__(self, store=None, report=None):
        self._store = store
        self._report = report  # callable(msg): the charger's last-error report (ocpple)
        self._by_name = {}
        self._order = []
        self._watchers = {}
        self._ocpp_rules = {}
        self._stored = {}
        self.save_count = 0

    # -- definition -------------------------------------------------------
    def define(self, name, kind, default=None, flags=RW | PERSIST, lo=None, hi=None,
               alias=None, getter=None, check=None):
        """Declare a setting. `name` is the OCPP key for OCPP settings, else the API key.

        lo/hi: range for INT/FLOAT, (min, max) length for STR, allowed items and
        maximum count for CSL. check(value) -> error text or None for extra rules.
        """
        return self._add(Setting(name, kind, default, flags, lo, hi, alias, getter, check))

    def _add(self, s):
        name = s.name
        alias = s.alias
        self._by_name[name] = s
        if alias:
            self._by_name[alias] = s
        self._order.append(s)
        if name in self._stored:
            self._restore(s, self._stored[name])
        return s

    def status(self, key, getter):
        """A read-only live value for the API (`ocppc`, `car`, ...)."""
        return self._add(_Status(key, getter))

    def bind(self, name, getter=None, check=None):
        """Attach what a key needs from a running service: the getter of a status key,
        or a check that reads that service's state. Keys are defined without services."""
        s = self.find(name)
        if getter is not None:
            s.getter = getter
        if check is not None:
            s.check = check
        return s

    def find(self, name):
        s = self._by_name.get(name)
        if s is None:
            s = self._ocpp_key(name)
        return s

    def _ocpp_key(self, name):
        """The OCPP key of that name in any case (CiString), or None. No lower-case
        copy of every name is kept: only an inexact name pays for a scan."""
        s = self._by_name.get(name)
        if s is not None and s.flags & OCPP and s.name == name:
            return s
        n = len(name)
        low = None
        order = self._order
        for i in range(len(order) - 1, -1, -1):  # the latest definition wins, as in _by_name
            s = order[i]
            if s.flags & OCPP and len(s.name) == n:
                if low is None:
                    low = name.lower()
                if s.name.lower() == low:
                    return s
        return None

    def keys(self):
        return self._order

    def watch(self, name, fn):
        """fn(setting) runs after every accepted change of the named setting."""
        s = self.find(name)
        lst = self._watchers.get(s.name)
        if lst is None:
            self._watchers[s.name] = lst = []
        lst.append(fn)

    def ocpp_rule(self, name, fn):
        """ChangeConfiguration of this key answers fn(valid value) -> OCPP status, and fn
        applies the value itself: for keys the central system may change less freely
        than the local API (SecurityProfile)."""
        self._ocpp_rules[self.find(name).name] = fn

    # -- load and save ----------------------------------------------------
    def load(self):
        if self._store is None:
            return
        data, err = self._store.read_json(_FILE)
        if err:
            self._error(err)
        if not isinstance(data, dict):
            if data is not None:
                self._error(_FILE + " is not an object, defaults used")
            data = {}
        self._stored = data
        for s in self._order:
            if s.name in data:
                self._restore(s, data[s.name])

    def _restore(self, s, v):
        v2, err = self.validate(s, v)
        if err:
            self._error("stored " + err + ", default used")
            return
        s.value = v2

    def save(self):
        if self._store is None:
            return
        data = {}
        for s in self._order:
            if s.flags & PERSIST and s.value != s.default:
                data[s.name] = s.value
        # Keys of modules not loaded in this build survive a save.
        for k in self._stored:
            if k not in self._by_name:
                data[k] = self._stored[k]
        self._store.write_json(_FILE, data)
        self._stored = data
        self.save_count += 1

    def _error(self, msg):
        if self._report:
            self._report(msg)
        else:
            print("settings:", msg)

    # -- values -----------------------------------------------------------
    def get(self, name):
        s = self.find(name)
        if s is None:
            raise KeyError(name)
        if s.getter is not None:
            return s.getter()
        return s.value

    def validate(self, s, v):
        """Returns (value, None) or (None, 'key: message')."""
        n = s.api_name()
        if v is None:
            if s.flags & NULL:
                return None, None
            return None, n + ": null not allowed"
        k = s.kind
        if k == BOOL:
            if not isinstance(v, bool):
                return None, n + ": expected boolean"
        elif k == INT:
            if isinstance(v, float):
                if not _finite(v):
                    return None, n + ": expected integer, got " + _fmt(v)
                if v != int(v):
                    return None, n + ": expected integer, got fraction " + _fmt(v)
                v = int(v)
            if not _is_int(v):
                return None, n + ": expected integer"
            if (s.lo is not None and v < s.lo) or (s.hi is not None and v > s.hi):
                return None, "%s: value %d out of range %s..%s" % (n, v, _fmt(s.lo), _fmt(s.hi))
        elif k == FLOAT:
            if not (_is_int(v) or isinstance(v, float)):
                return None, n + ": expected number"
            if isinstance(v, float) and not _finite(v):
                return None, n + ": expected a finite number, got " + _fmt(v)
            if (s.lo is not None and v < s.lo) or (s.hi is not None and v > s.hi):
                return None, "%s: value %s out of range %s..%s" % (n, _fmt(v), _fmt(s.lo), _fmt(s.hi))
        elif k == STR or k == CSL:
            if not isinstance(v, str):
                return None, n + ": expected string"
            err = text_error(v)  # a lone surrogate from the REPL, a stored file or a lax decoder
            if err is not None:
                return None, n + ": " + err
            if k == STR:
                if s.hi is not None and len(v) > s.hi:
                    return None, "%s: longer than %d characters" % (n, s.hi)
                if s.lo is not None and len(v) < s.lo:
                    return None, "%s: shorter than %d characters" % (n, s.lo)
            else:
                items = [i.strip() for i in v.split(",")] if v.strip() else []
                limit = s.hi
                if isinstance(limit, str):
                    limit = self.get(limit)
                if limit is not None and len(items) > limit:
                    return None, "%s: more than %d items" % (n, limit)
                for i in items:
                    if s.lo is not None and i not in s.lo:
                        return None, "%s: unsupported item %s" % (n, i)
                v = ",".join(items)
        if s.check is not None:
            err = s.check(v)
            if err:
                return None, n + ": " + err
        return v, None

    def set(self, name, value, save=True):
        """Validate and apply one value. Returns None or an error message.

        Nothing changes unless the whole value is valid.
        """
        s = self.find(name)
        if s is None:
            return name + ": unknown key"
        if not s.flags & W or s.getter is not None:
            return s.api_name() + ": read-only key"
        if s.flags & URL_PASSWORD and isinstance(value, str):
            from firmware.log import unmask_url
            value, err = unmask_url(value, s.value)
            if err:
                return s.api_name() + ": " + err
        v, err = self.validate(s, value)
        if err:
            return err
        changed = v != s.value
        old = s.value
        s.value = v
        if changed and save and s.flags & PERSIST:
            try:
                self.save()
            except OSError as e:
                # Kept in RAM only it would be lost at the next reboot, and a key that
                # applies at the reboot would never apply: refuse the change.
                s.value = old
                self._error("settings not saved: %s" % e)
                return s.api_name() + ": not saved (%s)" % e
        for fn in self._watchers.get(s.name, ()):
            fn(s)
        return None

    # -- OCPP view ----------------------------------------------------------
    def ocpp_text(self, s):
        v = self.get(s.name)
        if v is None:
            return ""
        if s.kind == BOOL:
            return "true" if v else "false"
        if s.kind == FLOAT:
            return _fmt(v)
        return str(v)

    def get_configuration(self, keys=None):
        """OCPP GetConfiguration: (configurationKey list, unknownKey list)."""
        known = []
        unknown = []
        if keys:
            sel = []
            for k in keys:
                s = self._ocpp_key(k)
                if s is None:
                    unknown.append(k)
                elif s not in sel:
                    sel.append(s)
        else:
            sel = [s for s in self._order if s.flags & OCPP]
        for s in sel:
            e = {"key": s.name, "readonly": not s.flags & W or s.getter is not None}
            if not s.flags & SECRET:
                e["value"] = self.ocpp_text(s)
            known.append(e)
        return known, unknown

    def change_configuration(self, key, text):
        """OCPP ChangeConfiguration: Accepted / Rejected / RebootRequired / NotSupported."""
        s = self._ocpp_key(key)
        if s is None:
            return "NotSupported"
        if not s.flags & W or s.getter is not None:
            return "Rejected"
        v = text
        k = s.kind
        t = text.strip()
        if k == BOOL:
            tl = t.lower()
            if tl == "true":
                v = True
            elif tl == "false":
                v = False
            else:
                return "Rejected"
        elif k == INT or k == FLOAT:
            try:
                v = int(t)
            except ValueError:
                if k == INT:
                    return "Rejected"
                try:
                    v = float(t)
                except ValueError:
                    return "Rejected"
        rule = self._ocpp_rules.get(s.name)
        if rule is not None:
            v, err = self.validate(s, v)
            return "Rejected" if err else rule(v)
        if self.set(s.name, v) is not None:
            return "Rejected"
        return "RebootRequired" if s.flags & REBOOT else "Accepted"

    # -- go-e API view --------------------------------------------------------
    def api_get(self, key):
        s = self._by_name.get(key)
        if s is None:
            raise KeyError(key)
        if s.flags & SECRET or not s.flags & R:
            return None
        v = self.get(s.name)
        if s.flags & URL_PASSWORD and v:
            from firmware.log import mask_url
            v = mask_url(v)
        return v

    def api_keys(self):
        """Every key readable over the API, in definition order."""
        out = []
        for s in self._order:
            if s.flags & R or s.flags & SECRET:
                out.append(s.api_name())
        return out
