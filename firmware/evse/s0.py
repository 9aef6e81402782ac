"""S0 pulse meter (IEC 62053-31 / DIN 43864 impulse output) on an injected pin.

The IRQ handler only counts pulses and stamps the last two with ticks_us into a
preallocated array; update() turns that into energy and power. An S0 output
measures energy only: voltage, current, per-phase power and power factor are
estimates from the total power, the nominal voltage and the phases in use
(`phases`, set by the charge controller when it switches 1 <-> 3 phases),
assuming power factor 1 and a balanced load. The pulse count starts at 0 on
every boot; EnergyCounter keeps the persistent total.

update() runs in every control tick, so it uses small-int arithmetic only (a
float is a heap object on the ESP32): energy in whole Wh, power in whole W and
current in whole A (rounded), well inside what an estimate from the nominal
voltage can claim anyway.
"""
from array import array

from firmware.compat import const, ticks_diff, ticks_us
from firmware.evse.meter import Meter

_N = const(0)  # accepted pulses
_LAST = const(1)  # ticks_us of the last accepted pulse
_PREV = const(2)  # ticks_us of the one before


class S0Meter(Meter):
    def __init__(self, pin, impulses_per_kwh=1000, voltage=230.0, phases=3,
                 min_pulse_ms=30, timeout_ms=60000, active_low=True, trigger=None,
                 clock_us=ticks_us):
        Meter.__init__(self)
        self.wh_per_pulse = 1000.0 / impulses_per_kwh
        self.nominal_voltage = voltage
        self.phases = phases
        self.ok = True  # nothing can fail: there is no link to lose
        self.pulses = 0
        # IEC 62053-31: pulse >= 30 ms and pause >= 30 ms, so a real pulse never
        # follows an accepted one within the pulse width; closer edges are ringing.
        self._gap_us = min_pulse_ms * 1000
        # ticks_diff of ticks_us is only unambiguous within 2**29 us (~536 s) on the ESP32.
        self._timeout_us = min(timeout_ms, 500000) * 1000
        self._active = 0 if active_low else 1
        # Integer energy: Wh = n * 1000 / ppk, split so n * 1000 never grows past a small int.
        self._ppk = int(impulses_per_kwh + 0.5)
        # Power = energy per pulse / interval: W * 2**shift us per pulse, kept below
        # 2**29 so the division stays in small ints; the interval loses its low
        # `shift` bits (under 0.2 % at the 30 ms minimum pulse spacing).
        wus = 3600e9 / impulses_per_kwh
        shift = 0
        while wus / (1 << shift) >= (1 << 29):
            shift += 1
        self._shift = shift
        self._wus = int(wus / (1 << shift) + 0.5)
        self._volt = int(voltage + 0.5)
        self._p = -1  # power the estimates were last made for
        self._ph = -1  # phases they were made for
        self._us = clock_us
        self._pin = pin
        # "l" is the native word: it holds any ticks value of the runtime without
        # truncation (2**30 period on the ESP32, wider on the 64-bit unix port).
        self._a = array("l", (0, 0, 0))
        self._seen = 0  # pulses update() has already turned into energy
        self._fresh = False  # last pulse recent enough that its interval means something
        self._interval = 0  # us between the last two pulses, 0 while unknown
        self._isr = self._on_pulse
        if trigger is None:
            trigger = getattr(pin, "IRQ_FALLING" if active_low else "IRQ_RISING", None)
        if trigger is None:
            pin.irq(handler=self._isr)
        else:
            pin.irq(handler=self._isr, trigger=trigger)

    def _on_pulse(self, _pin):
        # ISR: small ints and array slots only (heap_lock tested).
        now = self._us()
        a = self._a
        if a[_N] and ticks_diff(now, a[_LAST]) < self._gap_us:
            return
        # An edge that finds the line already released is ringing on the trailing edge.
        if self._pin.value() != self._active:
            return
        a[_PREV] = a[_LAST]
        a[_LAST] = now
        a[_N] += 1

    def update(self, now_ms=None):
        a = self._a
        # The ISR may run between two reads: retry until the count is stable.
        while True:
            n = a[_N]
            last = a[_LAST]
            prev = a[_PREV]
            if n == a[_N]:
                break
        new = n - self._seen
        if new:
            # After an idle spell the previous stamp is stale (and may have
            # wrapped), so one new pulse gives no interval; two fresh ones do.
            iv = ticks_diff(last, prev) if (new > 1 or self._fresh) else 0
            self._interval = iv if 0 < iv <= self._timeout_us else 0
            self._fresh = True
            self._seen = n
            self.pulses = n
            ppk = self._ppk
            self.energy_wh = (n // ppk) * 1000 + (n % ppk) * 1000 // ppk
        p = 0
        if self._fresh:
            since = ticks_diff(self._us(), last)
            if since < 0 or since > self._timeout_us:
                self._fresh = False
                self._interval = 0
            elif self._interval > 0:
                # No pulse yet for longer than the last interval: power is at most
                # one pulse over the time since, so it decays instead of freezing.
                d = (since if since > self._interval else self._interval) >> self._shift
                if d > 0:
                    p = (self._wus + (d >> 1)) // d
        self.power_w = p
        if p != self._p or self.phases != self._ph:
            self._estimate(p)

    def _estimate(self, p):
        self._p = p
        ph = self.phases
        self._ph = ph
        v = self.nominal_voltage
        per = p // ph
        vi = self._volt
        amps = (per + (vi >> 1)) // vi
        for i in range(3):
            if i < ph:
                self.voltage[i] = v
                self.power[i] = per
                self.current[i] = amps
                self.pf[i] = 1.0
            else:
                self.voltage[i] = 0.0
                self.power[i] = 0
                self.current[i] = 0
                self.pf[i] = 0.0
