"""The charger's lifetime energy counter: whole Wh that never go backwards.

total = persisted base + what the meter counted since. The meter register may
restart at 0 (an S0 count after every boot), be replaced, or read lower than
what was persisted: the counter then continues from the new reading instead of
following it down. The total is an int: ESP32 floats are single precision and
stop resolving 1 Wh above 16.7 MWh, while small ints hold up to 2**30 Wh.

File (Store JSON): {"wh": total, "m": meter reading that total corresponds to,
"c": ceiling, "t": wall clock seconds of the write when known}. Writes are rate limited for flash wear: after step_wh of change
but no more than once per min_ms, or once per max_ms while anything changed,
plus flush() (the transaction code calls it at start and stop).

Never backwards across a power cut: the energy counted since the last write is
lost with the RAM, yet MeterValues and the API have already shown it. So each
write also reserves a ceiling a little above the total (the energy of the next
reserve_s seconds at the present power, at least step_wh), and the total is
never shown above the ceiling on flash: crossing it writes first. After a
power cut the total resumes at the ceiling, so it is at most the reserve above
the energy that really flowed, and never below a value shown before. A clean
shutdown writes the exact total (flush(final=True)).
"""
from firmware.compat import ticks_diff


class EnergyCounter:
    def __init__(self, store, meter, name="energy.json", step_wh=10, min_ms=10000,
                 max_ms=60000, max_w=50000, jump_wh=200, reserve_s=15, wall=None):
        self.store = store
        self.meter = meter
        self.name = name
        self.step_wh = step_wh
        self.min_ms = min_ms
        self.max_ms = max_ms
        # Plausibility: a meter cannot count more than max_w over the time since
        # the last reading plus jump_wh; a bigger step is a different meter.
        # jump_wh also bounds what a meter may have counted across a reboot
        # (the unsaved tail of a power cut) and still be trusted as the same one.
        self.max_w = max_w
        self.jump_wh = jump_wh
        self.reserve_s = reserve_s
        self.wall = wall  # fn() -> epoch seconds or None: dates each write
        self.saved_time = None  # when the file found at boot was written (a power cut came after)
        self.error = None
        self.writes = 0
        self.resets = 0  # times the meter reading was not followed (restart, swap, jump)
        self._total = 0
        self._ref = None  # meter reading that _total corresponds to; None before the first
        self._saved = None  # total as last written; None without a valid file
        self._saved_ref = None
        self._saved_at = None
        self._at = None  # time of the last accepted reading
        self._now = None
        self._dirty = False
        self._ceiling = 0  # highest total the flash covers; the total is never shown above it
        self._resume = None  # ceiling of the run a power cut ended: the floor of this one
        self._failed = False  # the last write failed: retry at the normal rate only
        obj, err = store.read_json(name)
        if err:
            self.error = err
        elif obj is not None:
            wh = obj.get("wh") if isinstance(obj, dict) else None
            if isinstance(wh, (int, float)) and not isinstance(wh, bool) and wh - wh == 0 and wh >= 0:
                self._total = self._saved = int(wh)
                m = obj.get("m")
                if isinstance(m, (int, float)) and not isinstance(m, bool) and m - m == 0:
                    self._saved_ref = m
                c = obj.get("c")
                if isinstance(c, int) and not isinstance(c, bool) and c > wh:
                    # The last run may have shown up to c before the power went.
                    self._resume = c
                t = obj.get("t")
                if isinstance(t, int) and not isinstance(t, bool):
                    self.saved_time = t
                self._ceiling = self._total
            else:
                self.error = name + " invalid, counting from the meter"

    @property
    def total_wh(self):
        c = self._resume
        return c if c is not None and c > self._total else self._total

    def update(self, now_ms):
        self._now = now_ms
        if self._saved_at is None:
            self._saved_at = now_ms
        mt = self.meter
        m = mt.energy_wh
        if mt.ok and m is not None and m - m == 0:  # m - m is NaN for NaN and inf
            self._take(m, now_ms)
        if self._total > self._ceiling and not (self._failed and ticks_diff(now_ms, self._saved_at) < self.min_ms):
            self._save()  # before anyone can see a total the flash does not cover
        else:
            self._maybe_save(now_ms)

    def _take(self, m, now_ms):
        ref = self._ref
        if ref is None:
            if self._saved is None:
                # No persisted total: start from the meter's own register.
                w = int(m) if m > 0 else 0
                self._total = w
                self._ref = float(w) if m > 0 else m  # the fraction stays in m - ref
                self._at = now_ms
                self._save()
                return
            s = self._saved_ref
            ref = s if s is not None else m
            allowed = self.jump_wh
        else:
            allowed = self.jump_wh + self.max_w * ticks_diff(now_ms, self._at) / 3600000
        d = m - ref
        if d < 0 or d > allowed:
            ref = m
            d = 0
            self.resets += 1
            self._dirty = True
        w = int(d)
        if w:
            self._total += w
            ref += w
        c = self._resume
        if c is not None:
            # First reading after a power cut: the meter's own count across it
            # where that is more, else the ceiling the last run may have shown.
            self._resume = None
            if self._total < c:
                self._total = c
                self._dirty = True
        self._ref = ref
        self._at = now_ms

    def _maybe_save(self, now_ms):
        saved = self._saved
        changed = self._total - saved if saved is not None else self._total
        if not (changed or self._dirty) or self._ref is None:
            return
        since = ticks_diff(now_ms, self._saved_at)
        if since >= self.max_ms or (changed >= self.step_wh and since >= self.min_ms):
            self._save()

    def flush(self, final=False):
        """Take the meter's latest reading, then persist if anything changed
        (transaction start/stop: meterStart and meterStop are the total at that
        moment, not at the last periodic update); final: the exact total without
        a reserve (a clean shutdown)."""
        mt = self.meter
        m = mt.energy_wh if mt is not None else None
        if self._now is not None and self._ref is not None and mt.ok and m is not None and m - m == 0:
            # Timed as the last update: only the jump_wh plausibility applies to
            # what came since, far more than the meter can count between updates.
            self._take(m, self._at)
        if self._ref is not None and (self._total != self._saved or self._dirty
                                      or (final and self._ceiling != self._total)):
            self._save(final)

    def _reserve(self):
        p = getattr(self.meter, "power_w", 0)
        w = self.step_wh
        if isinstance(p, (int, float)) and p - p == 0 and p > 0:
            r = int(min(p, self.max_w) * self.reserve_s / 3600)
            if r > w:
                w = r
        return w

    def _save(self, final=False):
        if self._now is not None:
            self._saved_at = self._now  # also after a failure: retry at the normal rate
        c = self._total if final else self._total + self._reserve()
        rec = {"wh": self._total, "m": self._ref, "c": c}
        t = self.wall() if self.wall is not None else None
        if t is not None:
            rec["t"] = int(t)
        try:
            self.store.write_json(self.name, rec)
        except OSError:
            self.error = self.name + " write failed"
            self._failed = True
            return
        self._failed = False
        self.writes += 1
        self._saved = self._total
        self._ceiling = c
        self._dirty = False
