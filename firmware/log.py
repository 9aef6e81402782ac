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
    """Hide the value in a ChangeConfiguration of AuthorizationKey."""
    i = text.find('"value"')
    if i < 0:
        return text
    j = text.find('"', text.find(":", i) + 1)
    k = text.find('"', j + 1)
    if j < 0 or k < 0:
        return text
    return text[: j + 1] + "***" + text[k:]


def mask(value):
    return None if value is None else "***"
