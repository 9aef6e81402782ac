"""The whole application on the host board, stepped by hand with a fake clock
(no event loop, no network): control ticks every 20 ms, the transaction rules
every 100 ms, the energy counter every second, and the status reporter after
every control tick, the moment it would see the most transient states.

Property tests drive it with random EV, card, availability and power events.
StatusNotifications "go out" into `sent` while `online` is True.
"""
from boards.host.board import HostBoard
from firmware.app import App
from firmware.compat import ticks_add, ticks_ms

TICK_MS = 20


class AppStepper:
    def __init__(self, state_dir, sets=(), ev="A", meter_wh=0.0):
        from firmware import log
        log.verbose = False
        self.board = HostBoard(str(state_dir))
        # After a power cut: the EV as it was, the meter's own register where it kept it.
        self.board.world.ev = ev
        self.board.world.meter.energy_wh = meter_wh
        self.app = App(self.board, str(state_dir), list(sets))
        self.now = ticks_ms()
        self.t = 0  # ms stepped in total
        self.online = True
        self.sent = []  # (connectorId, status, errorCode) of each StatusNotification, in order
        self.app.transactions.recover()

    @property
    def world(self):
        return self.board.world

    def _publish(self):
        r = self.app.status_reporter
        r.observe(self.now)
        if not self.online:
            return
        while True:
            n, _left = r.due(self.now)
            if n is None:
                return
            cur = r._cur[n]
            p, final = r.next_payload(n)
            self.sent.append((p["connectorId"], p["status"], p["errorCode"]))
            r.delivered(n, (cur[0], cur[1], cur[2]), p, final)

    def go_online(self):
        self.online = True
        self.app.status_reporter._on_online()
        self._publish()

    def step(self, ms):
        app = self.app
        for _ in range(max(1, ms // TICK_MS)):
            self.now = ticks_add(self.now, TICK_MS)
            self.t += TICK_MS
            app.controller.tick(self.now)
            self._publish()
            if self.t % 100 == 0:
                app.transactions.step(self.now)
                self._publish()
            if self.t % 1000 == 0:
                app.energy.update(self.now)
                self._publish()

    def shutdown(self):
        from firmware import log
        log.verbose = True
