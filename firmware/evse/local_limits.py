"""The charger's own limits over the controller's offer: a temporary current
that lapses unless refreshed, an energy limit for the session, and a fallback
current while the central system is unreachable. Each is one limit source of
the controller; check() runs once a second."""
from firmware import log
from firmware.compat import sleep_ms, ticks_diff, ticks_ms
from firmware.evse.codes import ModelStatus

TEMPORARY_LAPSE_MS = 600000  # a temporary limit lapses after 10 min without refresh
_CHECK_MS = 1000
# Its limit sources in the controller.
TEMPORARY = "temporary"
ENERGY = "session_energy"
FALLBACK = "offline_fallback"


class LocalLimits:
    def __init__(self, controller, session_wh, offline=None, ended=None):
        """session_wh() -> energy of the plugged session (Wh); offline() -> True while
        the fallback applies; ended(name) when a limit ends by itself (TEMPORARY
        lapsed, ENERGY at unplug)."""
        self.controller = controller
        self._session_wh = session_wh
        self._offline = offline
        self._ended = ended
        self.energy_wh = None  # session energy limit, None: none
        self.fallback_amps = None  # current while offline, None: no fallback limit
        self._temporary_at = None  # ticks_ms of the last temporary limit
        controller.add_listener(self._event)

    def set_temporary(self, amps, now=None):
        """A current limit that lapses TEMPORARY_LAPSE_MS after its last setting (None: none)."""
        self._temporary_at = (ticks_ms() if now is None else now) if amps is not None else None
        self.controller.set_limit(TEMPORARY, amps)

    def set_energy(self, wh):
        """Stop offering once the session's energy reaches wh (None: no limit); ends at unplug."""
        self.energy_wh = wh
        if wh is None:
            self.controller.set_limit(ENERGY, None)

    def set_fallback(self, amps):
        self.fallback_amps = amps

    def _event(self, event, _data):
        if event == "unplugged":
            # The energy limit is a limit for one session.
            had = self.energy_wh is not None
            self.set_energy(None)
            if had and self._ended is not None:
                self._ended(ENERGY)

    def check(self, now):
        """Periodic work (once a second): the lapse, the energy limit, the fallback."""
        c = self.controller
        if self._temporary_at is not None and ticks_diff(now, self._temporary_at) >= TEMPORARY_LAPSE_MS:
            self.set_temporary(None)
            if self._ended is not None:
                self._ended(TEMPORARY)
        wh = self.energy_wh
        if wh is not None and c.plugged and self._session_wh() >= wh:
            if c.limit(ENERGY) is None:
                log.info("energy limit %s Wh reached" % wh)
                c.set_limit(ENERGY, 0, None, ModelStatus.ENERGY_LIMIT)
        elif c.limit(ENERGY) is not None:
            c.set_limit(ENERGY, None)
        if self._offline is not None:
            want = self.fallback_amps if self._offline() else None
            have = c.limit(FALLBACK)
            if (have is None) != (want is None) or (have is not None and have[0] != want):
                c.set_limit(FALLBACK, want, None, ModelStatus.OCPP_FALLBACK)

    async def run(self):
        while True:
            try:
                self.check(ticks_ms())
            except Exception as e:  # noqa: BLE001 - the periodic check must keep running
                log.exception("local limits", e)
            await sleep_ms(_CHECK_MS)
