"""Temperature derating and cut-off from one sensor (a driver with read_c()).

From derate_c up to cutoff_c the current limit falls linearly from the rating
to 6 A; at cutoff_c charging stops (fault Overtemp). Each threshold releases
hyst_c lower, so a value near a threshold does not make the charger flap.
The sensor is read once per period_ms: temperature changes slowly, and this
keeps float work out of most control ticks.
"""
from firmware.compat import ticks_diff


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
