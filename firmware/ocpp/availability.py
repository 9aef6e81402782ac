"""OCPP ChangeAvailability: the availability of the charge point (connector 0)
and of connector 1, persisted in availability.json; see README.md for the
Scheduled rule."""
from firmware import log
from firmware.evse import codes
from firmware.ocpp.configuration import NUMBER_OF_CONNECTORS

_AVAIL_FILE = "availability.json"


class Availability:
    def __init__(self, store, controller, transactions, holds):
        """transactions: .active and .on_stop(fn) (a Scheduled change waits for the stop);
        holds: StatusHolds, where connector 0 is held Unavailable."""
        self.store = store
        self.controller = controller
        self.transactions = transactions
        self.holds = holds
        self._target = [True, True]  # availability asked for, per connector (persisted)
        self._applied = [True, True]  # availability in force (differs while Scheduled)
        self._stop_hooked = False
        self._status_listeners = []

    def handlers(self):
        return {"ChangeAvailability": self.change_availability}

    def operative(self, connector=1):
        """True when the connector (0: the charge point) is available for charging."""
        if connector == 0:
            return self._applied[0]
        return self._applied[0] and self._applied[1]

    def scheduled(self, connector=1):
        """True while an availability change waits for the transaction to end."""
        return self._target[connector] != self._applied[connector]

    def on_availability(self, fn):
        """fn() after each change of the availability in force."""
        self._status_listeners.append(fn)

    def load(self):
        data, err = self.store.read_json(_AVAIL_FILE)
        if err:
            log.error(err)
        if isinstance(data, list) and len(data) == 2 and all(isinstance(x, bool) for x in data):
            self._target = list(data)
        self._apply()

    def _save(self):
        try:
            self.store.write_json(_AVAIL_FILE, self._target)
        except OSError as e:
            log.error("availability not saved: %s" % e)
            return False
        return True

    def _apply(self):
        self._applied = list(self._target)
        self.controller.enable(self.operative(1))
        if self.operative(0):
            self.holds.release("availability", 0)
        else:
            self.holds.hold("availability", 0, codes.UNAVAILABLE)
        for fn in self._status_listeners:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - a listener must not block availability
                log.exception("availability listener", e)

    def _on_tx_stop(self, _tx):
        if self._target != self._applied:
            log.info("scheduled availability change applied")
            self._apply()

    def change_availability(self, payload):
        cid = payload["connectorId"]
        if isinstance(cid, bool) or not 0 <= cid <= NUMBER_OF_CONNECTORS:
            return {"status": "Rejected"}
        op = payload["type"] == "Operative"
        target = list(self._target)
        for c in range(cid, NUMBER_OF_CONNECTORS + 1) if cid == 0 else (cid,):
            target[c] = op
        if target != self._target:
            old = self._target
            self._target = target
            if not self._save():
                # It would not survive a reboot (the spec asks that it does): refuse it.
                self._target = old
                return {"status": "Rejected"}
        tx = self.transactions
        if tx is not None and tx.active and self.operative(1) and not (target[0] and target[1]):
            # Taking the connector away mid-transaction waits for the transaction's end.
            if not self._stop_hooked:
                tx.on_stop(self._on_tx_stop)
                self._stop_hooked = True
            return {"status": "Accepted" if op else "Scheduled"}
        if self._applied != self._target:
            self._apply()
        return {"status": "Accepted"}
