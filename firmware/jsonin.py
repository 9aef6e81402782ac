"""Strict JSON in: the one entry point for every JSON text the charger receives.

OCPP frames, /api/set values, the settings and state files and the REPL all
parse through loads(). The runtimes' own parsers disagree with RFC 8259 and
with each other: MicroPython's accepts trailing commas, missing separators,
leading zeros, raw control characters and unknown escapes, decodes an escaped
surrogate pair into two lone surrogates, and its UTF-8 decoder lets overlong
forms and encoded surrogates through; CPython's accepts NaN and Infinity and
lone surrogate escapes; both fail on deep nesting with a RecursionError in
whatever code walks the result later. So one scan, in a loop without
recursion, checks the text first: the grammar, the nesting depth, strict UTF-8
and the \\u escapes. Only when the text holds an escaped surrogate pair and
the runtime cannot decode one is the text rewritten (the pair becomes the
character's raw UTF-8) before the runtime's parser reads it.

Error messages give a byte offset and a reason, never the input itself.
"""
import json

from firmware.compat import const, text_buffer

MAX_DEPTH = const(20)  # the deepest OCPP 1.6 payload (SetChargingProfile) nests 6 levels in its frame

# Scanner states: what may come next.
_VALUE = const(0)        # a value (after ':' or ',' in an array, or at the start)
_VALUE_OR_END = const(1)  # a value or ']' (just after '[')
_KEY_OR_END = const(2)   # a key or '}' (just after '{')
_KEY = const(3)          # a key (after ',' in an object)
_COLON = const(4)
_NEXT = const(5)         # ',' or the end of the enclosing container
_DONE = const(6)         # only whitespace

_OBJ = const(1)
_ARR = const(2)

# Whether the runtime's json decodes "\ud83d\ude97" into one character.
_PAIRS_NATIVE = len(json.loads('"\\ud83d\\ude97"')) == 1


def _hex4(b, i, n):
    """The value of 4 hex digits at b[i:i+4], or -1."""
    if i + 4 > n:
        return -1
    v = 0
    for k in range(i, i + 4):
        c = b[k]
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        elif 65 <= c <= 70:
            d = c - 55
        else:
            return -1
        v = (v << 4) | d
    return v


def _utf8_len(b, i, n):
    """Length of the well-formed UTF-8 sequence starting with a non-ASCII byte at b[i], or 0."""
    c = b[i]
    if 0xC2 <= c <= 0xDF:
        k, lo, hi = 2, 0x80, 0xBF
    elif 0xE0 <= c <= 0xEF:
        # E0: no overlong forms; ED: no encoded surrogates
        k = 3
        lo = 0xA0 if c == 0xE0 else 0x80
        hi = 0x9F if c == 0xED else 0xBF
    elif 0xF0 <= c <= 0xF4:
        # F0: no overlong forms; F4: nothing above U+10FFFF
        k = 4
        lo = 0x90 if c == 0xF0 else 0x80
        hi = 0x8F if c == 0xF4 else 0xBF
    else:
        return 0
    if i + k > n:
        return 0
    c = b[i + 1]
    if c < lo or c > hi:
        return 0
    for j in range(i + 2, i + k):
        c = b[j]
        if c < 0x80 or c > 0xBF:
            return 0
    return k


def utf8_error(b):
    """None when the bytes are well-formed UTF-8, else a message with the offset."""
    n = len(b)
    i = 0
    while i < n:
        if b[i] < 0x80:
            i += 1
            continue
        k = _utf8_len(b, i, n)
        if not k:
            return "not valid UTF-8 at byte %d" % i
        i += k
    return None


def text_error(s):
    """None when s is text the charger can store and send (valid UTF-8, no lone
    surrogates), else a message that does not quote it."""
    try:
        b = text_buffer(s)
    except UnicodeError:
        return "not valid text (lone surrogate)"
    err = utf8_error(b)
    if err is not None:
        return "not valid text (%s)" % err
    return None


def decode(data):
    """Bytes as text, strictly: ValueError unless well-formed UTF-8 (MicroPython's
    decoder lets overlong forms and encoded surrogates through)."""
    s = str(data, "utf-8")
    # As many characters as bytes: plain ASCII, nothing more to check (the common case).
    if len(s) != len(data):
        err = utf8_error(data)
        if err is not None:
            raise ValueError(err)
    return s


def quote(s, limit=40):
    """A JSON string literal of (the start of) s in plain ASCII, safe to put in a
    message whatever s holds: what is not valid text shows as U+FFFD."""
    more = len(s) > limit
    try:
        b = text_buffer(s)
        if utf8_error(b) is not None:
            # MicroPython: a str holding invalid UTF-8; its characters cannot be trusted.
            s = "".join([chr(c) if c < 0x80 else "\ufffd" for c in bytes(b[:limit])])
    except UnicodeError:
        # CPython: lone surrogates.
        s = "".join(["\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s[:limit]])
    out = ['"']
    for ch in s[:limit]:
        o = ord(ch)
        if 0x20 <= o < 0x7F:
            out.append("\\" + ch if ch == '"' or ch == "\\" else ch)
        elif o < 0x10000:
            out.append("\\u%04x" % o)
        else:
            o -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 | (o >> 10), 0xDC00 | (o & 0x3FF)))
    out.append('"')
    if more:
        out.append("...")
    return "".join(out)


def _string(b, i, n):
    """Scan a string whose opening quote is at b[i - 1]. Returns the index after the
    closing quote, times two, plus one when the string holds an escaped surrogate
    pair (a small int: no allocation). Raises ValueError."""
    pairs = 0
    while i < n:
        c = b[i]
        if c == 34:  # "
            return ((i + 1) << 1) | pairs
        if c == 92:  # backslash
            if i + 1 >= n:
                break
            c = b[i + 1]
            if c == 117:  # u
                v = _hex4(b, i + 2, n)
                if v < 0:
                    raise ValueError("bad \\u escape at byte %d" % i)
                if 0xD800 <= v <= 0xDBFF:
                    w = -1
                    if i + 12 <= n and b[i + 6] == 92 and b[i + 7] == 117:
                        w = _hex4(b, i + 8, n)
                    if not 0xDC00 <= w <= 0xDFFF:
                        raise ValueError("lone surrogate escape at byte %d" % i)
                    pairs = 1
                    i += 12
                    continue
                if 0xDC00 <= v <= 0xDFFF:
                    raise ValueError("lone surrogate escape at byte %d" % i)
                i += 6
                continue
            # " \ / b f n r t
            if not (c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114
                    or c == 116):
                raise ValueError("bad escape at byte %d" % i)
            i += 2
            continue
        if c < 0x20:
            raise ValueError("control character in string at byte %d" % i)
        if c >= 0x80:
            k = _utf8_len(b, i, n)
            if not k:
                raise ValueError("not valid UTF-8 at byte %d" % i)
            i += k
            continue
        i += 1
    raise ValueError("unterminated string")


def _number(b, i, n):
    """Scan a number starting at b[i] ('-' or a digit); returns the index after it."""
    if b[i] == 45:  # -
        i += 1
    if i >= n or not 48 <= b[i] <= 57:
        raise ValueError("bad number at byte %d" % i)
    if b[i] == 48:
        i += 1  # a leading zero stands alone; a digit after it fails as a missing ','
    else:
        while i < n and 48 <= b[i] <= 57:
            i += 1
    if i < n and b[i] == 46:  # .
        i += 1
        if i >= n or not 48 <= b[i] <= 57:
            raise ValueError("bad number at byte %d" % i)
        while i < n and 48 <= b[i] <= 57:
            i += 1
    if i < n and (b[i] == 101 or b[i] == 69):  # e E
        i += 1
        if i < n and (b[i] == 43 or b[i] == 45):
            i += 1
        if i >= n or not 48 <= b[i] <= 57:
            raise ValueError("bad number at byte %d" % i)
        while i < n and 48 <= b[i] <= 57:
            i += 1
    return i


def _literal(b, i, n, word):
    k = len(word)
    if i + k > n:
        return False
    for j in range(k):
        if b[i + j] != word[j]:
            return False
    return True


def scan(b, max_depth=MAX_DEPTH):
    """Check that the bytes are one strict JSON text nesting at most max_depth
    levels. Returns 1 when it holds an escaped surrogate pair, else 0; raises
    ValueError."""
    n = len(b)
    stack = bytearray(max_depth)
    depth = 0
    state = _VALUE
    pairs = 0
    i = 0
    while i < n:
        c = b[i]
        if c == 32 or c == 10 or c == 13 or c == 9:
            i += 1
            continue
        if state == _NEXT:
            if c == 44:  # ,
                state = _VALUE if stack[depth - 1] == _ARR else _KEY
                i += 1
                continue
            if c == 93 or c == 125:  # ] }
                if stack[depth - 1] != (_ARR if c == 93 else _OBJ):
                    raise ValueError("mismatched bracket at byte %d" % i)
                depth -= 1
                state = _NEXT if depth else _DONE
                i += 1
                continue
            raise ValueError("expected ',' or end of container at byte %d" % i)
        if state == _COLON:
            if c != 58:
                raise ValueError("expected ':' at byte %d" % i)
            state = _VALUE
            i += 1
            continue
        if state == _KEY or state == _KEY_OR_END:
            if c == 34:
                r = _string(b, i + 1, n)
                i = r >> 1
                pairs |= r & 1
                state = _COLON
                continue
            if c == 125 and state == _KEY_OR_END:
                depth -= 1
                state = _NEXT if depth else _DONE
                i += 1
                continue
            raise ValueError("expected a string key at byte %d" % i)
        if state == _DONE:
            raise ValueError("extra data at byte %d" % i)
        # _VALUE or _VALUE_OR_END
        if c == 93 and state == _VALUE_OR_END:
            depth -= 1
            state = _NEXT if depth else _DONE
            i += 1
            continue
        if c == 123 or c == 91:  # { [
            if depth >= max_depth:
                raise ValueError("nested deeper than %d levels" % max_depth)
            stack[depth] = _OBJ if c == 123 else _ARR
            depth += 1
            state = _KEY_OR_END if c == 123 else _VALUE_OR_END
            i += 1
            continue
        if c == 34:
            r = _string(b, i + 1, n)
            i = r >> 1
            pairs |= r & 1
        elif c == 45 or 48 <= c <= 57:
            i = _number(b, i, n)
        elif c == 116 and _literal(b, i, n, b"true"):
            i += 4
        elif c == 102 and _literal(b, i, n, b"false"):
            i += 5
        elif c == 110 and _literal(b, i, n, b"null"):
            i += 4
        else:
            raise ValueError("unexpected character at byte %d" % i)
        state = _NEXT if depth else _DONE
    if state != _DONE:
        raise ValueError("incomplete JSON text")
    return pairs


def _join_pairs(b):
    """The bytes with each escaped surrogate pair replaced by the character's UTF-8
    (only called on text that scan() accepted)."""
    out = bytearray()
    n = len(b)
    start = 0
    inside = False
    i = 0
    while i < n:
        c = b[i]
        if not inside:
            if c == 34:
                inside = True
            i += 1
            continue
        if c == 34:
            inside = False
        elif c == 92:
            if b[i + 1] == 117:
                v = _hex4(b, i + 2, n)
                if 0xD800 <= v <= 0xDBFF:
                    cp = 0x10000 + ((v - 0xD800) << 10) + (_hex4(b, i + 8, n) - 0xDC00)
                    out += b[start:i]
                    out += chr(cp).encode()
                    i += 12
                    start = i
                    continue
                i += 6
                continue
            i += 2
            continue
        i += 1
    out += b[start:]
    return out


def join_encoded_pairs(b):
    """Earlier firmware on MicroPython stored a character outside the BMP as its two
    surrogates, each UTF-8 encoded (ED A0..AF xx ED B0..BF xx). Returns the bytes with
    each such pair turned into the character's own UTF-8, or None when there is none."""
    out = None
    start = i = 0
    n = len(b)
    while True:
        i = b.find(b"\xed", i)
        if i < 0 or i + 6 > n:
            break
        if (0xA0 <= b[i + 1] <= 0xAF and b[i + 3] == 0xED and 0xB0 <= b[i + 4] <= 0xBF
                and 0x80 <= b[i + 2] <= 0xBF and 0x80 <= b[i + 5] <= 0xBF):
            cp = 0x10000 + ((((b[i + 1] & 0x0F) << 6) | (b[i + 2] & 0x3F)) << 10) \
                + (((b[i + 4] & 0x0F) << 6) | (b[i + 5] & 0x3F))
            if out is None:
                out = bytearray()
            out += b[start:i]
            out += bytes((0xF0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3F), 0x80 | ((cp >> 6) & 0x3F),
                          0x80 | (cp & 0x3F)))
            start = i = i + 6
        else:
            i += 1
    if out is None:
        return None
    out += b[start:]
    return bytes(out)


def loads(text, max_depth=MAX_DEPTH):
    """json.loads for text (str, bytes or bytearray) from outside: ValueError with a
    clear message for anything RFC 8259 refuses, for lone surrogates and for
    nesting deeper than max_depth; escaped surrogate pairs become one character
    on every runtime."""
    if type(text) is str:
        try:
            b = text_buffer(text)
        except UnicodeError:
            raise ValueError("not valid text (lone surrogate)")
    else:
        b = text
    if scan(b, max_depth) and not _PAIRS_NATIVE:
        return json.loads(str(_join_pairs(b), "utf-8"))
    if type(text) is not str:
        text = str(text, "utf-8")
    return json.loads(text)
