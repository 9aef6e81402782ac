"""Current limits from several sources; the offer is the minimum over them.

A source is named by whoever sets it ("amp", "ama", "tcl", "temp", an OCPP
charging schedule, a load balancer, ...) and says what it means for the
charger's status when it stops the charging (a go-e modelStatus: energy limit,
OCPP, load management, ...). Each holds amps and optionally a phase count;
setting amps None removes the source. Work happens on set(), never per tick.

`TemperatureGuard` gives the limit source "temp": derating and cut-off from one
sensor (a driver with read_c()). From derate_c up to cutoff_c the current limit falls linearly from the rating
to 6 A; at cutoff_c charging stops (fault Overtemp). Each threshold releases
hyst_c lower, so a value near a threshold does not make the charger flap.
The sensor is read once per period_ms: temperature changes slowly, and this
keeps float work out of most control ticks.
"""
from firmware.compat import ticks_diff
from firmware.evse.codes import ModelStatus


class CurrentLimits:
    def __init__(self, max_amps):
        self._max_da = int(max_amps * 10)
        self._src = {}  # source -> (deci_amps, phases or None, modelStatus)
        self.deci_amps = self._max_da
        self.source = None  # the source that sets deci_amps (None: the hardware rating)
        self.status = None  # its modelStatus, None with the hardware rating
        self.phases = None  # fewest phases any source asked for, None: no wish

    def set(self, source, amps, phases=None, status=ModelStatus.LOAD_MANAGEMENT):
        """Returns None, or a message when the value is refused (nothing changes then).

        status: the go-e modelStatus reported while this source keeps the offer below 6 A."""
        if not isinstance(source, str) or not source:
            return "limit source must be a name"
        if amps is None:
            self._src.pop(source, None)
            self._recompute()
            return None
        if isinstance(amps, bool) or not isinstance(amps, (int, float)) or not (0 <= amps <= 1000):
            return "%s: amps must be a number 0..1000" % source
        if phases is not None and (isinstance(phases, bool) or phases not in (1, 2, 3)):
            return "%s: phases must be 1, 2 or 3" % source
        # Round down to 0.1 A so an offer never exceeds the limit.
        self._src[source] = (int(amps * 10 + 1e-6), phases, status)
        self._recompute()
        return None

    def get(self, source):
        """(amps, phases) of one source, or None."""
        v = self._src.get(source)
        if v is None:
            return None
        return v[0] / 10, v[1]

    def _recompute(self):
        da = self._max_da
        src = None
        st = None
        ph = None
        for name, (a, p, s) in self._src.items():
            if a < da:
                da = a
                src = name
                st = s
            if p is not None and (ph is None or p < ph):
                ph = p
        self.deci_amps = da
        self.source = src
        self.status = st
        self.phases = ph


class TemperatureGuard:
    def __init__(self, sensor, max_amps, derate_c=60, cutoff_c=80, hyst_c=5, period_ms=1000):
        self._sensor = sensor
        self.max_amps = max_amps
        self.derate_c = derate_c
        self.cutoff_c = cutoff_c
        self.hyst_c = hyst_c
        self.period_ms = period_ms
        self.celsius = None  # last reading, None before the first or after a failed one
        self.overtemp = False
        self.sensor_failed = False
        self.limit_amps = None  # derated limit, None while not derating
        self._derating = False
        self._last = None

    def update(self, now):
        """Reads the sensor when due; True when limit_amps changed."""
        if self._last is not None and ticks_diff(now, self._last) < self.period_ms:
            return False
        self._last = now
        try:
            t = self._sensor.read_c()
        except Exception:  # a broken sensor must not stop the control loop
            t = None
        old = self.limit_amps
        self.celsius = t
        if t is None:
            # Unknown temperature: charge, but only at the minimum current.
            self.sensor_failed = True
            self.limit_amps = 6
            return old != self.limit_amps
        self.sensor_failed = False
        if t >= self.cutoff_c:
            self.overtemp = True
        elif t < self.cutoff_c - self.hyst_c:
            self.overtemp = False
        if t >= self.derate_c:
            self._derating = True
        elif t < self.derate_c - self.hyst_c:
            self._derating = False
        if self._derating:
            span = self.cutoff_c - self.derate_c
            frac = (self.cutoff_c - t) / span if span > 0 else 0
            if frac < 0:
                frac = 0
            elif frac > 1:
                frac = 1
            self.limit_amps = int(6 + (self.max_amps - 6) * frac)
        else:
            self.limit_amps = None
        return old != self.limit_amps
