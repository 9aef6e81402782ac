"""Wall clock: the CSMS's currentTime plus elapsed ticks (and the RTC on a board).

Until the clock is set nothing is timestamped (never 1970 dates): `now()`
returns None. Date conversion is done here by civil-calendar arithmetic so it
is the same on both runtimes, whatever epoch their time module uses.
"""
from firmware.compat import const, ticks_add, ticks_diff, ticks_ms

_DAY = const(86400)
# Re-anchor well inside the ticks_diff range (2**29 ms, about 6 days).
_REANCHOR_MS = const(86400000)


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def parse_iso(s):
    """ISO 8601 date-time -> integer epoch seconds (fraction dropped). Raises ValueError.

    Integers, not floats: the ESP32 port has single-precision floats.
    """
    if not isinstance(s, str) or len(s) < 19 or s[4] != "-" or s[7] != "-" or s[10] not in "Tt ":
        raise ValueError("bad date-time")
    y = int(s[0:4])
    mo = int(s[5:7])
    d = int(s[8:10])
    hh = int(s[11:13])
    mi = int(s[14:16])
    ss = int(s[17:19])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mi < 60 and ss < 61):
        raise ValueError("bad date-time")
    i = 19
    if i < len(s) and s[i] == ".":
        i += 1
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
    off = 0
    rest = s[i:]
    if rest in ("Z", "z"):
        pass
    elif rest and rest[0] in "+-" and len(rest) >= 6 and rest[3] == ":":
        off = (int(rest[1:3]) * 60 + int(rest[4:6])) * 60
        if rest[0] == "-":
            off = -off
    elif rest:
        raise ValueError("bad time zone")
    return _days_from_civil(y, mo, d) * _DAY + hh * 3600 + mi * 60 + ss - off


def format_iso(t):
    """integer epoch seconds -> '2026-11-25T04:02:51Z' (UTC)."""
    days, rem = divmod(int(t), _DAY)
    y, mo, d = _civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, mo, d, rem // 3600, rem // 60 % 60, rem % 60)


class Clock:
    def __init__(self, ticks=ticks_ms):
        self._ticks = ticks
        self._epoch = None  # integer epoch seconds at _anchor
        self._anchor = 0

    @property
    def is_set(self):
        return self._epoch is not None

    def set_iso(self, s):
        """Set from a CSMS currentTime; returns False when the text is no date."""
        try:
            self.set(parse_iso(s))
        except (ValueError, TypeError, IndexError):
            return False
        return True

    def set(self, epoch_s):
        self._epoch = epoch_s
        self._anchor = self._ticks()

    def now(self):
        """Epoch seconds, or None while the clock has not been set."""
        if self._epoch is None:
            return None
        t = self._ticks()
        dt = ticks_diff(t, self._anchor)
        if dt > _REANCHOR_MS:
            whole = dt // 1000
            self._epoch += whole
            self._anchor = ticks_add(self._anchor, whole * 1000)
            dt -= whole * 1000
        return self._epoch + dt // 1000

    def iso(self, t=None):
        if t is None:
            t = self.now()
        return None if t is None else format_iso(t)
