"""OCPP Reset (Soft and Hard) and the ResetRetries key: stop the running
transaction, give queued messages a bounded time, then reboot."""
import asyncio

from firmware import log
from firmware.compat import const
from firmware.settings import INT, OCPP, PERSIST, RW

_STOP_MS = const(10000)  # bound for stopping a transaction before a reset
_QUEUE_MS = {False: 10000, True: 2000}  # soft / hard: time given to deliver queued messages


def define_keys(settings):
    settings.define("ResetRetries", INT, 1, RW | PERSIST | OCPP, 0, 10)


class Reset:
    def __init__(self, settings, transactions, tx_queue, reboot):
        """reboot(hard): leave the application for a restart."""
        self.settings = settings
        self.transactions = transactions
        self.tx_queue = tx_queue
        self.reboot = reboot
        self.resetting = False

    def handlers(self):
        return {"Reset": self.reset}

    def reset(self, payload):
        hard = payload["type"] == "Hard"
        if self.resetting:
            return {"status": "Accepted"}  # the reboot is already on its way
        # Resetting from when the answer is out: a Reset whose answer was lost is no promise.
        return {"status": "Accepted"}, lambda: self._begin_reset(hard)

    def _begin_reset(self, hard):
        self.resetting = True
        return self.run_reset(hard)

    async def _prepare_reset(self, reason, hard):
        tx = self.transactions
        if tx is not None and tx.active:
            try:
                await asyncio.wait_for(tx.stop(reason), _STOP_MS / 1000)
            except Exception as e:  # noqa: BLE001 - a failed attempt is retried, then overridden
                log.error("%s: stopping the transaction failed: %r" % (reason, e))
                return False
        q = self.tx_queue
        if q is not None:
            # Bounded: undelivered messages stay on flash and go out after the reboot.
            await q.wait_empty(_QUEUE_MS[hard])
        return True

    async def run_reset(self, hard):
        reason = "HardReset" if hard else "SoftReset"
        log.info("Reset " + reason)
        tries = 1 + self.settings.get("ResetRetries")
        ok = False
        for _ in range(tries):
            ok = await self._prepare_reset(reason, hard)
            if ok:
                break
        if not ok:
            log.error("%s: failed %d times, rebooting hard" % (reason, tries))
            hard = True
        self.reboot(hard)
