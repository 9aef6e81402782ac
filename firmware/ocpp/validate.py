"""Validates OCPP 1.6 payloads against the generated tables in schemas.py.

The tables are one string in the format described in host_tools/gen_schemas.py;
the walker reads it in place, so a valid payload is checked without heap
allocation and only the error path builds strings.

Error codes (OCPP-J 1.6 section 4.2.3, decisions in ocpp16-notes.md item 3):
- payload not an object, unknown property -> FormationViolation: OCPP-J defines
  it as "not conform the PDU structure for Action", and a property the PDU does
  not have is exactly that (the `ocpp` package agrees);
- missing required property, too few array items -> OccurenceConstraintViolation;
- wrong JSON type -> TypeConstraintViolation. Integer fields take JSON integers
  only: true/false are booleans, and 5.0 is rejected as draft-04 (the schemas'
  own dialect) does, so floats never leak into ids and counters;
- enum, maxLength, minimum/maximum, multipleOf, date-time format ->
  PropertyConstraintViolation.
date-time is checked loosely: YYYY-MM-DDTHH:MM:SS, optional fraction, optional
Z or +HH:MM/+HHMM/+HH offset (a missing offset is accepted: some central systems
send one). "uri" format is left to the code that uses the URL.
"""
from firmware.ocpp import schemas

FORMATION = "FormationViolation"
OCCURENCE = "OccurenceConstraintViolation"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"

_ACTIONS = schemas.ACTIONS
_TABLES = schemas.TABLES
_OFFSETS = schemas.OFFSETS
_ENUMS = schemas.ENUMS
_ENUM_OFFSETS = schemas.ENUM_OFFSETS
# Relative tolerance for multipleOf: the ESP32 port has single-precision floats,
# where 21.4 / 0.1 is 213.99998; a double gets a tolerance near its own epsilon.
_EPS = 8 * (2.3e-16 if (1.0 + 1e-15) != 1.0 else 1.2e-7)


def _u16(b, k):
    return (b[2 * k] << 8) | b[2 * k + 1]


def _table(name):
    """The table number of a schema name: 2k for the request of the k-th action in
    ACTIONS, 2k + 1 for its response; -1 for any other name.

    Searches ACTIONS in place: nothing is allocated, and no getattr, which would
    intern a name arriving from the network in the qstr pool for ever.
    """
    if type(name) is not str or not name or "|" in name:
        return -1
    end = len(name)
    p = _ACTIONS.find(name)
    while p > 0:
        if _ACTIONS.startswith("|", p - 1):
            if _ACTIONS.startswith("|", p + end):
                return 2 * _ACTIONS.count("|", 0, p) - 1
            if _ACTIONS.startswith("Response|", p + end):
                return 2 * _ACTIONS.count("|", 0, p) - 2
        p = _ACTIONS.find(name, p + 1)
    return -1


def _start(name):
    """Where the table for a schema name starts in TABLES, or -1."""
    t = _table(name)
    return _u16(_OFFSETS, t) if t >= 0 else -1


def is_action(name):
    """True if `name` is an OCPP 1.6 action (a request name, not "...Response")."""
    t = _table(name)
    return t >= 0 and not t & 1


def known(name):
    """True if a schema (request "Action" or response "ActionResponse") exists."""
    return _start(name) >= 0


def validate(name, payload):
    """None if payload is valid for schema `name`, else (error_code, description)."""
    i = _start(name)
    if i < 0:
        return ("NotImplemented", "no schema for %s" % name)
    if type(payload) is not dict:
        return (FORMATION, "payload must be a JSON object")
    r = _node(_TABLES, i, payload)
    if type(r) is tuple:
        if r[1]:
            return (r[0], r[1] + ": " + r[2])
        return (r[0], r[2])
    return None


# Internal errors are (code, path, message); the path is built while unwinding,
# so it costs nothing on the valid path.
def _at(key, err):
    path = err[1]
    if type(key) is int:
        key = "[%d]" % key
    if path and path[0] != "[":
        path = key + "." + path
    else:
        path = key + path
    return (err[0], path, err[2])


def _skip(s, i):
    """Index of the "," or "}" that ends the node starting at i."""
    depth = 0
    while True:
        c = s[i]
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i
            depth -= 1
        elif c == "," and depth == 0:
            return i
        i += 1


# Two scans instead of one returning (value, end): a tuple would be a heap
# allocation on every string field.
def _int_at(s, i):
    """The decimal number at s[i], or -1 when there is none."""
    n = -1
    c = s[i]
    while "0" <= c <= "9":
        n = (0 if n < 0 else n * 10) + ord(c) - 48
        i += 1
        c = s[i]
    return n


def _int_end(s, i):
    while "0" <= s[i] <= "9":
        i += 1
    return i


def _number_end(s, i):
    c = s[i]
    while ("0" <= c <= "9") or c == "-" or c == "+" or c == "." or c == "e" or c == "E":
        i += 1
        c = s[i]
    return i


def _literal(text):
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


def _limits(s, i, v):
    """Check the >min <max %multipleOf modifiers at i; returns end index or error."""
    c = s[i]
    while c == ">" or c == "<" or c == "%":
        j = _number_end(s, i + 1)
        x = _literal(s[i + 1:j])
        if c == ">":
            if v < x:
                return (PROPERTY, "", "%r below minimum %r" % (v, x))
        elif c == "<":
            if v > x:
                return (PROPERTY, "", "%r above maximum %r" % (v, x))
        else:
            q = v / x
            if q - q != 0:  # inf or nan: round() would raise
                return (PROPERTY, "", "%r not a finite number" % (v,))
            if abs(q - round(q)) > _EPS * (abs(q) if abs(q) > 1 else 1):
                return (PROPERTY, "", "%r not a multiple of %r" % (v, x))
        i = j
        c = s[i]
    return i


def _in_enum(k, v):
    """True if v is one of the "|"-separated values of enumeration k."""
    n = len(v)
    if n == 0 or "|" in v:
        return False
    e = _ENUMS
    start = _u16(_ENUM_OFFSETS, k)
    end = _u16(_ENUM_OFFSETS, k + 1)
    i = e.find(v, start, end)
    while i >= 0:
        j = i + n
        if (i == start or e[i - 1] == "|") and (j == end or e[j] == "|"):
            return True
        i = e.find(v, i + 1, end)
    return False


def _two(v, i, lo, hi):
    """The two-digit number at v[i:i+2] if it lies in lo..hi, else -1."""
    a = v[i]
    b = v[i + 1]
    if not ("0" <= a <= "9" and "0" <= b <= "9"):
        return -1
    n = (ord(a) - 48) * 10 + ord(b) - 48
    return n if lo <= n <= hi else -1


def is_datetime(v):
    """Loose ISO 8601 date-time check (see the module docstring)."""
    n = len(v)
    if n < 19:
        return False
    for k in (0, 1, 2, 3):
        if not "0" <= v[k] <= "9":
            return False
    if (v[4] != "-" or v[7] != "-" or (v[10] != "T" and v[10] != "t")
            or v[13] != ":" or v[16] != ":"):
        return False
    if (_two(v, 5, 1, 12) < 0 or _two(v, 8, 1, 31) < 0 or _two(v, 11, 0, 23) < 0
            or _two(v, 14, 0, 59) < 0 or _two(v, 17, 0, 60) < 0):
        return False
    i = 19
    if i < n and v[i] == ".":
        i += 1
        start = i
        while i < n and "0" <= v[i] <= "9":
            i += 1
        if i == start:
            return False
    if i == n:
        return True
    c = v[i]
    if c == "Z" or c == "z":
        return i + 1 == n
    if c != "+" and c != "-":
        return False
    rest = n - i - 1
    if rest == 2:
        return _two(v, i + 1, 0, 23) >= 0
    if rest == 4:
        return _two(v, i + 1, 0, 23) >= 0 and _two(v, i + 3, 0, 59) >= 0
    if rest == 5:
        return _two(v, i + 1, 0, 23) >= 0 and v[i + 3] == ":" and _two(v, i + 4, 0, 59) >= 0
    return False


def _node(s, i, v):
    """Validate v against the node at s[i]; returns the index after the node or an error."""
    t = s[i]
    i += 1
    if t == "o" or t == "O":
        if type(v) is not dict:
            return (TYPE, "", "expected object")
        return _object(s, i, v, t == "o")
    if t == "s" or t == "d" or t == "e":
        if type(v) is not str:
            return (TYPE, "", "expected string")
        if t == "d":
            if not is_datetime(v):
                return (PROPERTY, "", "not an ISO 8601 date-time")
            return i
        n = _int_at(s, i)
        i = _int_end(s, i)
        if t == "e":
            if not _in_enum(n, v):
                return (PROPERTY, "", "%s not in %s" % (
                    v, _ENUMS[_u16(_ENUM_OFFSETS, n):_u16(_ENUM_OFFSETS, n + 1)]))
        elif n >= 0 and len(v) > n:
            return (PROPERTY, "", "longer than %d characters" % n)
        return i
    if t == "i":
        if type(v) is not int:
            return (TYPE, "", "expected integer")
        return _limits(s, i, v)
    if t == "n":
        if type(v) is not int and type(v) is not float:
            return (TYPE, "", "expected number")
        return _limits(s, i, v)
    if t == "b":
        if v is not True and v is not False:
            return (TYPE, "", "expected boolean")
        return i
    if t == "a":
        if type(v) is not list:
            return (TYPE, "", "expected array")
        n = _int_at(s, i)
        i = _int_end(s, i)
        if len(v) < n:
            return (OCCURENCE, "", "fewer than %d items" % n)
        if not v:
            return _skip(s, i)
        end = i
        k = 0
        for item in v:
            end = _node(s, i, item)
            if type(end) is tuple:
                return _at(k, end)
            k += 1
        return end
    return (FORMATION, "", "bad schema table at %d" % (i - 1))


def _find_key(s, i, j, obj):
    """The key of obj spelled s[i:j], or None (compares in place: no slice)."""
    n = j - i
    for k in obj:
        if len(k) == n and s.startswith(k, i):
            return k
    return None


def _object(s, i, obj, closed):
    start = i
    i += 1  # "{"
    matched = 0
    while s[i] != "}":
        required = s[i] == "!"
        if required:
            i += 1
        j = s.find(":", i)
        key = _find_key(s, i, j, obj)
        if key is None:
            if required:
                return (OCCURENCE, s[i:j], "required property missing")
            i = _skip(s, j + 1)
        else:
            matched += 1
            r = _node(s, j + 1, obj[key])
            if type(r) is tuple:
                return _at(key, r)
            i = r
        if s[i] == ",":
            i += 1
    if closed and matched != len(obj):
        for k in obj:
            if not _has_entry(s, start, k):
                return (FORMATION, k, "property not allowed")
    return i + 1


def _has_entry(s, i, key):
    """True if the object table at s[i] ("{...}") has an entry named key."""
    i += 1
    while s[i] != "}":
        if s[i] == "!":
            i += 1
        j = s.find(":", i)
        if j - i == len(key) and s.startswith(key, i):
            return True
        i = _skip(s, j + 1)
        if s[i] == ",":
            i += 1
    return False
