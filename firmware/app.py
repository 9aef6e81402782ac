"""The wiring diagram of the charger: which service gets what, built once per
boot; and its one asyncio loop (control loop, board tasks, OCPP session, HTTP
server, housekeeping). See firmware/ocpp/README.md for the services."""
import asyncio
import gc

from firmware import keys, log
from firmware.api.charger_keys import ChargerKeys
from firmware.api.http import HttpApi
from firmware.api.page import page
from firmware.clock import Clock
from firmware.compat import sleep_ms, ticks_ms
from firmware.evse.controller import ChargeController
from firmware.evse.energy import EnergyCounter
from firmware.evse.local_limits import LocalLimits
from firmware.ocpp import profiles
from firmware.ocpp.auth import AuthCache, Authorization, Cards
from firmware.ocpp.availability import Availability
from firmware.ocpp.configuration import Configuration
from firmware.ocpp.connector_status import StatusHolds
from firmware.ocpp.data_transfer import DataTransfer, api_values
from firmware.ocpp.led_keys import LedKeys
from firmware.ocpp.metering import Metering
from firmware.ocpp.phase_rotation import PhaseRotation
from firmware.ocpp.reset import Reset
from firmware.ocpp.session import OcppSession
from firmware.ocpp.status import StatusReporter
from firmware.ocpp.transactions import Transactions
from firmware.ocpp.tx_queue import TxQueue
from firmware.settings import Settings
from firmware.store import Store
from firmware.version import VENDOR, VERSION

_HOUSEKEEPING_MS = 5000
_ENERGY_MS = 1000


def boot_info(board):
    """The BootNotification payload of this board."""
    boot = {"chargePointVendor": VENDOR, "chargePointModel": getattr(board, "model", "OpenWallbox"),
            "firmwareVersion": VERSION}
    if getattr(board, "serial", None):
        boot["chargePointSerialNumber"] = board.serial
    return boot


class App:
    def __init__(self, board, state_dir, overrides=()):
        log.boot()  # rbt counts from each start, a soft reboot in the same process too
        self.board = board
        self.reboot = None
        self.tasks = []  # coroutine functions of the services, started by main()
        store = self.store = Store(state_dir)
        s = self.settings = Settings(store, report=log.error)
        s.load()  # values are restored as their keys are defined
        clock = self.clock = Clock()
        c = self.controller = ChargeController(board.drivers)
        energy = self.energy = EnergyCounter(store, c.meter, wall=clock.now)
        if energy.error:
            log.error(energy.error)
        keys.define_keys(s, c.max_amps)  # every key, before any service binds or watches one

        # Local side: the go-e keys over the controller and its local limits.
        session = self.session = OcppSession(s, clock, boot_info(board))
        api_keys = ChargerKeys(s, c, energy, self.request_reboot, board)
        limits = self.local_limits = self.add(LocalLimits(
            c, api_keys.session_wh, offline=lambda: s.get("ocppe") and not session.online.is_set(),
            ended=api_keys.limit_ended))
        api_keys.map_limits(limits)
        self.api = HttpApi(s, page)

        # OCPP services: each gets what it uses; add() registers its handlers and its task.
        holds = self.holds = StatusHolds()  # statuses held over the controller's (Unavailable, ...)
        queue = self.tx_queue = self.add(TxQueue(store, session, s, clock))
        cards = Cards(store, s)
        auth = self.auth = self.add(Authorization(s, session, AuthCache(store, clock), cards.index))
        tx = self.transactions = self.add(Transactions(
            s, c, energy, clock, store, queue, auth, cards, holds,
            take_rfid=getattr(board, "take_rfid", None), rebooting=lambda: self.reboot is not None))
        api_keys.follow(tx)  # wh: the energy of the session's transactions
        meter_values = self.add(Metering(s, clock, c, energy, session, queue, store, tx))
        availability = self.availability = self.add(Availability(store, c, tx, holds))
        self.add(Configuration(s))
        self.phase_rotation = PhaseRotation(s)
        LedKeys(s, c.led)
        data_transfer = self.add(DataTransfer())
        data_transfer.register_vendor(session.boot_info["chargePointVendor"],
                                      lambda mid, data: api_values(s, mid, data))
        self.add(Reset(s, tx, queue, self.request_reboot))
        status = self.status_reporter = self.add(StatusReporter(s, clock, session, c, holds, transactions=tx))
        # Messages sent on demand (TriggerMessage), besides the session's own.
        session.register_trigger("StatusNotification", status.trigger)
        session.register_trigger("MeterValues", meter_values.trigger)
        profiles.bind(s, session.handlers)  # SupportedFeatureProfiles from the handlers above
        availability.load()

        for key, value in overrides:
            err = s.set(key, value)
            if err:
                log.error("--set " + err)

    def add(self, service):
        """Register a service's OCPP handlers (handlers(): {action: fn}) and its task (run)."""
        h = getattr(service, "handlers", None)
        if h is not None:
            self.session.handlers.update(h())
        run = getattr(service, "run", None)
        if run is not None:
            self.tasks.append(run)
        return service

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
