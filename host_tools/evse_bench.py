"""Control-loop figures on the running runtime, through the host simulation board:
cost of one tick, the loop period, and the reaction time from pilot state A
appearing on the line to the contactor output opening (idle loop, and with a
task that blocks the loop 5 ms out of every 15 ms, as HTTP/OCPP work would).

    micropython -X heapsize=512K -c "from host_tools.evse_bench import main; main()"

On the host side: it drives the simulation board, which the device bundle does not carry.

run_bench() returns the figures as a dict for a table; main() prints them.
"""
import asyncio
import sys

from firmware.compat import sleep_ms, ticks_diff, ticks_ms, ticks_us
from firmware.evse.controller import DEFAULTS, ChargeController


class _StampedOutput:
    """Wraps the contactor output and stamps (ticks_us) the moment it opens."""

    def __init__(self, out):
        self._out = out
        self.level = 0
        self.opened_us = 0

    def value(self, v=None):
        if v is None:
            return self._out.value()
        if self.level and not v:
            self.opened_us = ticks_us()
        self.level = 1 if v else 0
        self._out.value(v)


class _TimedController(ChargeController):
    def __init__(self, drivers, config=None):
        ChargeController.__init__(self, drivers, config)
        self.reset_stats()

    def reset_stats(self):
        self.n = 0
        self.last_us = 0
        self.period_sum = 0
        self.period_min = 1 << 29
        self.period_max = 0
        self.cost_sum = 0
        self.cost_max = 0

    def tick(self, now):
        t = ticks_us()
        if self.n:
            p = ticks_diff(t, self.last_us)
            self.period_sum += p
            if p < self.period_min:
                self.period_min = p
            if p > self.period_max:
                self.period_max = p
        self.last_us = t
        ChargeController.tick(self, now)
        d = ticks_diff(ticks_us(), t)
        self.cost_sum += d
        if d > self.cost_max:
            self.cost_max = d
        self.n += 1


def _setup():
    from boards.host.board import HostBoard
    board = HostBoard()
    stamped = _StampedOutput(board.drivers.contactor)
    board.drivers.contactor = stamped
    ctrl = _TimedController(board.drivers)
    ctrl.set_limit("amp", 16)
    ctrl.authorize(True)
    return board, ctrl, stamped


def tick_cost(n=2000):
    """Mean and max us of one tick while charging (fake clock, no sleeping)."""
    board, ctrl, _ = _setup()
    board.world.ev = "C"
    now = 1000
    for _ in range(20):
        now += 20
        ctrl.tick(now)
    ctrl.reset_stats()
    for _ in range(n):
        now += 20
        ctrl.tick(now)
    return ctrl.cost_sum // ctrl.n, ctrl.cost_max


async def _busy(block_ms, every_ms):
    while True:
        t = ticks_ms()
        while ticks_diff(ticks_ms(), t) < block_ms:
            pass
        await sleep_ms(every_ms - block_ms)


async def _wait_for(cond, timeout_ms=3000):
    t = ticks_ms()
    while not cond():
        if ticks_diff(ticks_ms(), t) > timeout_ms:
            return False
        await sleep_ms(1)
    return True


async def _reaction(trials, load):
    board, ctrl, stamped = _setup()
    w = board.world
    tasks = [asyncio.create_task(ctrl.run())]
    if load:
        tasks.append(asyncio.create_task(_busy(5, 15)))
    seed = ticks_us() & 0xFFFF
    lat = []
    try:
        for _ in range(trials):
            w.ev = "C"
            if not await _wait_for(lambda: stamped.level == 1):
                raise RuntimeError("contactor did not close")
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            await sleep_ms(50 + seed % ctrl.tick_ms)  # random phase against the loop
            t0 = ticks_us()
            w.ev = "A"
            if not await _wait_for(lambda: stamped.level == 0):
                raise RuntimeError("contactor did not open")
            lat.append(ticks_diff(stamped.opened_us, t0))
            await sleep_ms(60)
        ctrl.reset_stats()
        await sleep_ms(1000)  # period, measured while charging steadily
        w.ev = "C"
        await sleep_ms(1000)
    finally:
        for t in tasks:
            t.cancel()
        await sleep_ms(0)
    n = ctrl.n - 1 if ctrl.n > 1 else 1
    return {
        "reaction_mean_ms": sum(lat) / len(lat) / 1000,
        "reaction_max_ms": max(lat) / 1000,
        "period_mean_ms": ctrl.period_sum / n / 1000,
        "period_min_ms": ctrl.period_min / 1000,
        "period_max_ms": ctrl.period_max / 1000,
        "trials": trials,
    }


def run_bench(trials=30, print_fn=print):
    name = sys.implementation.name  # "cpython" or "micropython"
    tick, debounce = DEFAULTS["tick_ms"], DEFAULTS["pilot_debounce"]
    res = {"runtime": name, "tick_ms": tick}
    mean_us, max_us = tick_cost()
    res["tick_cost_mean_us"] = mean_us
    res["tick_cost_max_us"] = max_us
    idle = asyncio.run(_reaction(trials, False))
    busy = asyncio.run(_reaction(trials, True))
    for k, v in idle.items():
        res["idle_" + k] = v
    for k, v in busy.items():
        res["busy_" + k] = v
    if print_fn is not None:
        print_fn("evse control loop on %s (tick %d ms, pilot debounce %d ticks)" % (name, tick, debounce))
        print_fn("  tick cost while charging   mean %6d us   max %6d us" % (mean_us, max_us))
        for label, r in (("idle loop", idle), ("loop busy 5/15 ms", busy)):
            print_fn("  %-18s period    mean %6.1f ms   min %5.1f   max %5.1f ms" % (
                label, r["period_mean_ms"], r["period_min_ms"], r["period_max_ms"]))
            print_fn("  %-18s A -> open mean %6.1f ms   max %5.1f ms   (%d trials)" % (
                label, r["reaction_mean_ms"], r["reaction_max_ms"], r["trials"]))
    return res


def main():
    run_bench()


if __name__ == "__main__":
    main()
