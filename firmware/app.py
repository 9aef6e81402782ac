"""Wires the charger together and runs its one asyncio loop: control loop,
board tasks, OCPP session, HTTP server and housekeeping."""
import asyncio
import gc

from firmware import log
from firmware.api import charger_keys
from firmware.api.http import HttpApi
from firmware.clock import Clock
from firmware.compat import sleep_ms, ticks_ms
from firmware.evse.controller import ChargeController
from firmware.evse.energy import EnergyCounter
from firmware.ocpp import session as ocpp_session
from firmware.settings import Settings
from firmware.store import Store
from firmware.version import VENDOR, VERSION

_HOUSEKEEPING_MS = 5000
_ENERGY_MS = 1000


class App:
    def __init__(self, board, state_dir, overrides=()):
        log.boot()  # rbt counts from each start, a soft reboot in the same process too
        self.board = board
        self.reboot = None
        self.store = Store(state_dir)
        self.settings = s = Settings(self.store, report=log.error)
        s.load()  # values of keys defined later are restored when they are defined
        self.clock = Clock()
        self.controller = ChargeController(board.drivers, getattr(board, "evse_config", None))
        self.energy = EnergyCounter(self.store, self.controller.meter, wall=self.clock.now)
        if self.energy.error:
            log.error(self.energy.error)
        ocpp_session.define_keys(s)
        boot = {"chargePointVendor": VENDOR, "chargePointModel": getattr(board, "model", "OpenWallbox"),
                "firmwareVersion": VERSION}
        if getattr(board, "serial", None):
            boot["chargePointSerialNumber"] = board.serial
        self.session = ocpp_session.OcppSession(s, self.clock, boot)
        self.session.define_status(s)
        charger_keys.define_keys(s, self.controller, self.energy, self.request_reboot, self.controller.max_amps)
        self.api = HttpApi(s)
        self.tasks = []  # coroutine functions of the features, started by main()
        # Feature modules: each defines its keys, registers its OCPP handlers and
        # adds its tasks through setup(app).
        # (features)
        from firmware.ocpp import auth, transactions, tx_queue
        tx_queue.setup(self)  # transaction message queue on flash, TransactionMessage* keys
        auth.setup(self)  # Authorize, cache, ClearCache, offline rules, go-e cards
        transactions.setup(self)  # Start/Stop/RemoteStart/RemoteStop/UnlockConnector, acs/trx/ocppd/ocppti
        from firmware.ocpp import core as ocpp_core, status as ocpp_status
        ocpp_core.setup(self)  # ChangeAvailability, Get/ChangeConfiguration, DataTransfer, Reset, Core keys
        ocpp_status.setup(self)  # StatusNotification, MinimumStatusDuration, ocppcs
        from firmware.ocpp import metering
        metering.setup(self)  # MeterValues: sampled, clock-aligned, StopTransaction data
        charger_keys.setup(self)  # board keys, ocppf, status page, dwo/tcl task
        for key, value in overrides:
            err = s.set(key, value)
            if err:
                log.error("--set " + err)

    async def housekeeping(self):
        while True:
            gc.collect()
            feed = getattr(self.board, "feed_watchdog", None)
            if feed:
                feed()
            await sleep_ms(_HOUSEKEEPING_MS)

    async def energy_task(self):
        # The persistent total follows the meter; writes are rate-limited inside.
        while True:
            self.energy.update(ticks_ms())
            await sleep_ms(_ENERGY_MS)

    def request_reboot(self, hard=False):
        """Leave main() so the board restarts the application (a reboot)."""
        self.reboot = "hard" if hard else "soft"
        self._stop.set()

    async def main(self, host="127.0.0.1", port=8080, on_ready=None):
        # The control loop first: safety does not wait for anything else.
        self._stop = asyncio.Event()
        tasks = [asyncio.create_task(self.controller.run()), asyncio.create_task(self.housekeeping()),
                 asyncio.create_task(self.energy_task()), asyncio.create_task(self.session.run())]
        run = getattr(self.board, "run", None)
        if run:
            tasks.append(asyncio.create_task(run()))
        for fn in self.tasks:
            tasks.append(asyncio.create_task(fn()))
        serving = [None]

        async def serve():
            try:
                await self.api.serve(host, port)
            except OSError as e:  # e.g. the port is taken
                serving[0] = e
        tasks.append(asyncio.create_task(serve()))
        while not self.api.listening():
            if serving[0] is not None:
                log.error("HTTP server on %s:%s failed: %s" % (host, port, serving[0]))
                for t in tasks:
                    t.cancel()
                raise serving[0]
            await sleep_ms(5)
        if on_ready:
            on_ready()
        await self._stop.wait()
        # Reboot: open the contactor first, then end every task.
        self.controller.enable(False)
        self.controller.tick(ticks_ms())
        self.energy.flush(final=True)  # a clean reboot resumes at the exact total
        self.api.shutdown()
        # A clean close lets the last answers (e.g. Reset Accepted) leave the
        # send buffer; an abort would drop them.
        ws = self.session.ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(1001, "reboot"), 3)
            except Exception:  # the reboot goes on whatever the peer does
                ws.abort()
        for t in tasks:
            t.cancel()
        await sleep_ms(50)
        return self.reboot
