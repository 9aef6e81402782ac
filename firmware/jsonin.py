"""Strict JSON in: the one entry point for every JSON text the charger receives.

OCPP frames, /api/set values, the settings and state files and the REPL all
parse through loads(). The runtimes' own parsers disagree with RFC 8259 and
with each other: MicroPython's accepts trailing commas, missing separators,
leading zeros, raw control characters and unknown escapes, decodes an escaped
surrogate pair into two lone surrogates, and its UTF-8 decoder lets overlong
forms and encoded surrogates through; CPython's accepts NaN and Infinity and
lone surrogate escapes; both fail on deep nesting with a RecursionError in
whatever code walks the result later. So the text is checked first: strict
UTF-8 by the runtime's decoder plus a look at the few lead bytes a lax one
takes, raw control characters by min() where the parser takes them, then one
scan, in a loop without recursion, of the grammar, the nesting depth and the
\\u escapes, token by token: strings are jumped over with find() (C speed on
both runtimes) and looked into only when they hold a backslash. Only when the text holds an escaped surrogate pair and
the runtime cannot decode one is the text rewritten (the pair becomes the
character's raw UTF-8) before the runtime's parser reads it.

Error messages give a byte offset and a reason, never the input itself.
"""
import json

from firmware.compat import const, text_buffer

MAX_DEPTH = const(20)  # the deepest OCPP 1.6 payload (SetChargingProfile) nests 6 levels in its frame

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


def _utf8_scan(b):
    """None when the bytes are well-formed UTF-8, else a message with the offset
    (byte by byte: for runtimes whose decoder checks nothing, and for the offset)."""
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


def _refuses(f, *args):
    try:
        f(*args)
    except ValueError:  # UnicodeError is one
        return True
    return False


# What the runtime's own decoder checks. CPython's refuses every form RFC 3629 forbids.
# MicroPython's refuses malformed sequences (a stray continuation byte, a cut
# sequence) but lets overlong forms, encoded surrogates and code points above
# U+10FFFF through: what it took holds those at most, each starting with a known
# lead byte.
_DECODE_STRICT = all(_refuses(str, t, "utf-8") for t in (
    b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf0\x80\x80\xaf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80"))
_DECODE_CHECKED = all(_refuses(str, t, "utf-8") for t in (b"\x80", b"\xc3", b"\xe2\x82", b"a\xffb"))
_DECODE_TRUSTED = _DECODE_STRICT or _DECODE_CHECKED
# Whether the runtime's json refuses raw control characters in strings itself.
_CTRL_NATIVE = _refuses(json.loads, '"\x01"') and _refuses(json.loads, '"\t"')
# Lead bytes a lax decoder takes, with the range the byte after them must be in
# (an empty range: never valid).
_LAX_LEADS = ((b"\xc0", 1, 0), (b"\xc1", 1, 0), (b"\xe0", 0xA0, 0xBF), (b"\xed", 0x80, 0x9F),
              (b"\xf0", 0x90, 0xBF), (b"\xf4", 0x80, 0x8F), (b"\xf5", 1, 0), (b"\xf6", 1, 0), (b"\xf7", 1, 0))


def _decoded_error(b, s):
    """None when the bytes b, which str(b, "utf-8") decoded into s, are well-formed
    UTF-8, else a message with the offset. C-speed work only, unless the runtime's
    decoder checks nothing."""
    if not _DECODE_TRUSTED:
        return _utf8_scan(b)
    if _DECODE_STRICT or len(s) == len(b):
        return None  # as many characters as bytes: plain ASCII (the common case)
    if type(b) is memoryview:
        b = bytes(b)
    bad = -1
    for lead, lo, hi in _LAX_LEADS:
        i = b.find(lead)
        while i >= 0 and (bad < 0 or i < bad):
            c = b[i + 1]  # the decoder checked that a whole sequence follows
            if c < lo or c > hi:
                bad = i
                break
            i = b.find(lead, i + 1)
    return None if bad < 0 else "not valid UTF-8 at byte %d" % bad


def utf8_error(b):
    """None when the bytes are well-formed UTF-8, else a message with the offset."""
    try:
        s = str(b, "utf-8")
    except UnicodeError:
        return _utf8_scan(b) or "not valid UTF-8"
    return _decoded_error(b, s)


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
    err = _decoded_error(data, s)
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


def _string(b, i, n, ctrl):
    """Scan a string whose opening quote is at b[i - 1], jumping from backslash to
    backslash; ctrl: look for raw control characters too. Returns the index after
    the closing quote, times two, plus one when the string holds an escaped
    surrogate pair (a small int: no allocation). Raises ValueError."""
    pairs = 0
    while True:
        j = b.find(b'"', i, n)
        if j < 0:
            raise ValueError("unterminated string")
        k = b.find(b"\\", i, j)
        if ctrl:
            e = j if k < 0 else k
            while i < e:
                if b[i] < 0x20:
                    raise ValueError("control character in string at byte %d" % i)
                i += 1
        if k < 0:
            return ((j + 1) << 1) | pairs
        c = b[k + 1]  # k < j: the quote at j at the latest
        if c == 117:  # u
            v = _hex4(b, k + 2, n)
            if v < 0:
                raise ValueError("bad \\u escape at byte %d" % k)
            if 0xD800 <= v <= 0xDBFF:
                w = -1
                if k + 12 <= n and b[k + 6] == 92 and b[k + 7] == 117:
                    w = _hex4(b, k + 8, n)
                if not 0xDC00 <= w <= 0xDFFF:
                    raise ValueError("lone surrogate escape at byte %d" % k)
                pairs = 1
                i = k + 12
            elif 0xDC00 <= v <= 0xDFFF:
                raise ValueError("lone surrogate escape at byte %d" % k)
            else:
                i = k + 6
        # " \ / b f n r t
        elif c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114 or c == 116:
            i = k + 2
        else:
            raise ValueError("bad escape at byte %d" % k)


def _scan(b, n, max_depth, ctrl):
    """Check that b[:n] (n > 0) is one JSON text by the RFC 8259 grammar, nesting at
    most max_depth levels: the structure token by token, each string jumped over
    with find() unless it holds a backslash (or ctrl: the text has control
    characters, each string is looked at byte by byte). The text's UTF-8 is
    checked before. Returns 1 when it holds an escaped surrogate pair, else 0;
    raises ValueError."""
    i = 0
    c = b[0]
    while c == 32 or c == 10 or c == 13 or c == 9:
        i += 1
        if i == n:
            raise ValueError("incomplete JSON text")
        c = b[i]
    if c != 91 and c != 123:
        # A lone scalar: a byte after it that ends any number, so no index check is needed.
        b = b + b" "
    # The next backslash: strings before it have no escapes. -1: look at every string.
    bs = -1
    if not ctrl:
        bs = b.find(b"\\")
        if bs < 0:
            bs = n
    stack = 0  # a bit per open container, 1 for an object
    depth = 0
    pairs = 0
    key = 0  # b[i] starts a key, not a value
    # Inside a container every read is in bounds on a complete text: IndexError is a cut one.
    try:
        while True:
            if c == 34:  # "
                j = b.find(b'"', i + 1)
                if 0 < j < bs:
                    i = j + 1
                else:
                    r = _string(b, i + 1, n, ctrl)
                    i = r >> 1
                    pairs |= r & 1
                    if 0 <= bs < i:
                        bs = b.find(b"\\", i)
                        if bs < 0:
                            bs = n
                if key:
                    c = b[i]
                    while c <= 32:
                        if c != 32 and c != 10 and c != 13 and c != 9:
                            raise ValueError("unexpected character at byte %d" % i)
                        i += 1
                        c = b[i]
                    if c != 58:  # :
                        raise ValueError("expected ':' at byte %d" % i)
                    i += 1
                    c = b[i]
                    while c <= 32:
                        if c != 32 and c != 10 and c != 13 and c != 9:
                            raise ValueError("unexpected character at byte %d" % i)
                        i += 1
                        c = b[i]
                    key = 0
                    continue
            elif key:
                raise ValueError("expected a string key at byte %d" % i)
            elif c == 91 or c == 123:  # [ {
                if depth >= max_depth:
                    raise ValueError("nested deeper than %d levels" % max_depth)
                depth += 1
                stack = (stack << 1) | 1 if c == 123 else stack << 1
                end = c + 2  # ] }
                i += 1
                c = b[i]
                while c <= 32:
                    if c != 32 and c != 10 and c != 13 and c != 9:
                        raise ValueError("unexpected character at byte %d" % i)
                    i += 1
                    c = b[i]
                if c != end:
                    key = stack & 1
                    continue
                i += 1
                depth -= 1
                stack >>= 1
            elif c == 45 or 48 <= c <= 57:  # - digit
                if c == 45:
                    i += 1
                    c = b[i]
                    if c < 48 or c > 57:
                        raise ValueError("bad number at byte %d" % i)
                i += 1
                if c != 48:  # a leading zero stands alone; a digit after it fails as a missing ','
                    c = b[i]
                    while 48 <= c <= 57:
                        i += 1
                        c = b[i]
                else:
                    c = b[i]
                if c == 46:  # .
                    i += 1
                    c = b[i]
                    if c < 48 or c > 57:
                        raise ValueError("bad number at byte %d" % i)
                    while 48 <= c <= 57:
                        i += 1
                        c = b[i]
                if c == 101 or c == 69:  # e E
                    i += 1
                    c = b[i]
                    if c == 43 or c == 45:
                        i += 1
                        c = b[i]
                    if c < 48 or c > 57:
                        raise ValueError("bad number at byte %d" % i)
                    while 48 <= c <= 57:
                        i += 1
                        c = b[i]
            elif c == 116 and b.startswith(b"true", i):
                i += 4
            elif c == 102 and b.startswith(b"false", i):
                i += 5
            elif c == 110 and b.startswith(b"null", i):
                i += 4
            else:
                raise ValueError("unexpected character at byte %d" % i)
            # After a value: ',' or the end of the enclosing containers.
            while depth:
                c = b[i]
                while c <= 32:
                    if c != 32 and c != 10 and c != 13 and c != 9:
                        raise ValueError("unexpected character at byte %d" % i)
                    i += 1
                    c = b[i]
                if c == 44:  # ,
                    i += 1
                    c = b[i]
                    while c <= 32:
                        if c != 32 and c != 10 and c != 13 and c != 9:
                            raise ValueError("unexpected character at byte %d" % i)
                        i += 1
                        c = b[i]
                    key = stack & 1
                    break
                if c == (125 if stack & 1 else 93):
                    i += 1
                    depth -= 1
                    stack >>= 1
                elif c == 93 or c == 125:
                    raise ValueError("mismatched bracket at byte %d" % i)
                else:
                    raise ValueError("expected ',' or end of container at byte %d" % i)
            else:
                break
    except IndexError:
        raise ValueError("incomplete JSON text")
    while i < n:
        c = b[i]
        if c != 32 and c != 10 and c != 13 and c != 9:
            raise ValueError("extra data at byte %d" % i)
        i += 1
    return pairs


def _join_pairs(b):
    """The bytes with each escaped surrogate pair replaced by the character's UTF-8
    (only called on text that _scan() accepted: every backslash starts an escape)."""
    out = bytearray()
    n = len(b)
    start = 0
    i = b.find(b"\\")
    while i >= 0:
        if b[i + 1] == 117:  # u
            v = _hex4(b, i + 2, n)
            if 0xD800 <= v <= 0xDBFF:
                cp = 0x10000 + ((v - 0xD800) << 10) + (_hex4(b, i + 8, n) - 0xDC00)
                out += b[start:i]
                out += chr(cp).encode()
                start = i + 12
                i = start
            else:
                i += 6
        else:
            i += 2
        i = b.find(b"\\", i)
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


def _text_bytes(text):
    """The UTF-8 bytes of a JSON text (str, bytes or bytearray), checked: ValueError
    unless well-formed UTF-8 and not empty."""
    if type(text) is str:
        # A str holds what a decoder took: CPython's encoder refuses a lone surrogate,
        # MicroPython makes a str from bytes only through its checked decoder.
        try:
            b = text.encode()  # MicroPython: shares the str's bytes, no copy
        except UnicodeError:
            raise ValueError("not valid text (lone surrogate)")
        s = text
    else:
        b = text if type(text) is bytes else bytes(text)
        try:
            s = str(b, "utf-8")
        except UnicodeError:
            raise ValueError(_utf8_scan(b) or "not valid UTF-8")
    if len(s) != len(b) or not _DECODE_TRUSTED:
        s = _decoded_error(b, s)
        if s is not None:
            raise ValueError(s)
    if not b:
        raise ValueError("incomplete JSON text")
    return b


def loads(text, max_depth=MAX_DEPTH):
    """json.loads for text (str, bytes or bytearray) from outside: ValueError with a
    clear message for anything RFC 8259 refuses, for lone surrogates and for
    nesting deeper than max_depth; escaped surrogate pairs become one character
    on every runtime."""
    # Few locals and no allocation in the scan: MicroPython puts a bigger frame on the
    # heap, and freeing it makes the next allocation walk past every object made since.
    b = _text_bytes(text)
    # Raw control characters: the runtime's parser refuses them in strings, or else the
    # text has none at all (min() runs in C) or the scan looks at each string's bytes.
    if _scan(b, len(b), max_depth, not _CTRL_NATIVE and min(b) < 0x20) and not _PAIRS_NATIVE:
        return json.loads(str(_join_pairs(b), "utf-8"))
    return json.loads(text if type(text) is str else b)
