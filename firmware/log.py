"""The charger's log: console lines plus the last error (go-e `ocpple`/`ocpplea`).

Secrets never reach the log: callers pass values through `mask()` when a
setting is flagged SECRET, and frames carrying an AuthorizationKey are masked.
"""
import sys

from firmware.compat import print_exception, ticks_diff, ticks_ms

_T0 = ticks_ms()
last_error = None
last_error_ms = None
verbose = True
frames = True


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


def frame(direction, text):
    if frames:
        if "AuthorizationKey" in text:
            text = mask_frame(text)
        _line(direction, text)


def mask_frame(text):
    """Hide the value of AuthorizationKey (ChangeConfiguration), only within its own object."""
    i = text.find('"AuthorizationKey"')
    if i < 0:
        return text
    end = text.find("}", i)
    j = text.find('"value"', i)
    if j < 0 or (0 <= end < j):
        # The key may also stand after its value within the object.
        start = text.rfind("{", 0, i)
        j = text.find('"value"', start)
        if j < 0 or j > i:
            return text
    q1 = text.find('"', text.find(":", j) + 1)
    q2 = text.find('"', q1 + 1)
    while q2 > 0 and text[q2 - 1] == "\\":
        q2 = text.find('"', q2 + 1)
    if q1 < 0 or q2 < 0:
        return text
    return text[: q1 + 1] + "***" + text[q2:]


def mask(value):
    return None if value is None else "***"
