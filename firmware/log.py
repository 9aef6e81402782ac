"""The charger's log: console lines plus the last error (go-e `ocpple`/`ocpplea`).

Secrets never reach the log: callers pass values through `mask()` when a
setting is flagged SECRET, frames naming a write-only key (in any letter case,
as OCPP keys are case-insensitive) have its value masked, and URLs go through
`mask_url()`, which hides a password in `user:password@`.
"""
import sys

from firmware.compat import print_exception, ticks_diff, ticks_ms

MASK = "***"
_T0 = ticks_ms()
last_error = None
last_error_ms = None
verbose = True
frames = True
# Lower-case names of write-only keys whose values frames must not show.
SECRETS = ("authorizationkey",)


def boot():
    """A new start of the application (also a soft reboot in the same process):
    uptime (`rbt`) counts from here and the last error belongs to the old run."""
    global _T0, last_error, last_error_ms
    _T0 = ticks_ms()
    last_error = None
    last_error_ms = None


def uptime_ms():
    return ticks_diff(ticks_ms(), _T0)


def _line(level, msg):
    if verbose:
        print("%9d %s %s" % (uptime_ms(), level, msg))


def info(msg):
    _line("I", msg)


def warn(msg):
    _line("W", msg)


def error(msg):
    """Log an error and keep it as the last error the API reports."""
    global last_error, last_error_ms
    last_error = msg
    last_error_ms = uptime_ms()
    _line("E", msg)


def exception(where, exc):
    error("%s: %s %s" % (where, type(exc).__name__, exc))
    print_exception(exc, sys.stdout)


def frame(direction, text, secrets=SECRETS):
    if frames:
        _line(direction, mask_frame(text, secrets))


def _string_end(text, q1):
    """Index of the quote closing the JSON string that opens at q1, or -1."""
    i = q1 + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    return -1


def _mask_string_after(text, i):
    """Mask the JSON string value that starts at or after i (after a ':')."""
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i >= n or text[i] != '"':
        return text  # not a string: no secret text to hide
    q2 = _string_end(text, i)
    if q2 < 0:
        q2 = n  # cut short: hide the rest
    return text[: i + 1] + MASK + text[q2:]


def _mask_value_member(text, i):
    """{"key": "<secret name>", "value": "..."}: mask "value" of the object around i."""
    start = text.rfind("{", 0, i)
    end = text.find("}", i)
    j = text.find('"value"', start if start >= 0 else 0)
    while j >= 0 and (end < 0 or j < end):
        k = j + 7
        while k < len(text) and text[k] in " \t\r\n":
            k += 1
        if k < len(text) and text[k] == ":":
            return _mask_string_after(text, k + 1)
        j = text.find('"value"', j + 1)
    return text


def mask_frame(text, secrets=SECRETS):
    """Hide the values of write-only keys in a frame, whatever their letter case:
    a member named like one ("AuthorizationKey": "...") and the value of a
    ChangeConfiguration object naming one ({"key": "authorizationkey", "value": "..."})."""
    low = text.lower()
    for name in secrets:
        pat = '"' + name + '"'
        i = low.find(pat)
        while i >= 0:
            k = i + len(pat)
            while k < len(text) and text[k] in " \t\r\n":
                k += 1
            if k < len(text) and text[k] == ":":
                text = _mask_string_after(text, k + 1)
            else:
                text = _mask_value_member(text, i)
            low = text.lower()
            i = low.find(pat, i + len(pat))
    return text


def _userinfo(url):
    """(start, colon, at) of `user:password@` in url, or None."""
    i = url.find("://")
    start = i + 3 if i >= 0 else 0
    at = url.rfind("@", start, _authority_end(url, start))
    if at < 0:
        return None
    c = url.find(":", start, at)
    return None if c < 0 else (start, c, at)


def url_password(url):
    """The password of a URL's `user:password@` part, or None."""
    u = _userinfo(url) if url else None
    return url[u[1] + 1:u[2]] if u else None


def mask_url(url):
    """The URL with the password of `user:password@` replaced by MASK."""
    u = _userinfo(url) if url else None
    if u is None or u[1] + 1 == u[2]:
        return url
    return url[:u[1] + 1] + MASK + url[u[2]:]


def unmask_url(new, old):
    """A URL written back as read (password shown as MASK) keeps the stored
    password: (url to store, None), or (None, error) when the masked URL names
    another server than the stored one (the password must then be given)."""
    u = _userinfo(new) if new else None
    if u is None or new[u[1] + 1:u[2]] != MASK:
        return new, None
    o = _userinfo(old) if old else None
    if o is None:
        return None, "the password is masked (%s); give it in full" % MASK
    end_new = _authority_end(new, u[0])
    end_old = _authority_end(old, o[0])
    if new[:end_new] != mask_url(old[:end_old]):
        return None, "the password is masked (%s); give it in full for another server or user" % MASK
    return old[:o[2]] + new[u[2]:], None


def _authority_end(url, start):
    end = len(url)
    for sep in "/?#":
        j = url.find(sep, start)
        if 0 <= j < end:
            end = j
    return end


def hide(text, url):
    """text with the password of url (if any) replaced by MASK (error messages naming the URL)."""
    pw = url_password(url) if url else None
    return text.replace(pw, MASK) if pw else text


def mask(value):
    return None if value is None else "***"
