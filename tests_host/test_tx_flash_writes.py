"""Flash writes of one normal transaction (card, charge, same card), counted
with store.writes on the application running in-process against the CSMS."""
import asyncio

from tests_host.harness import free_port


async def _until(pred, timeout=10.0):
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


def test_one_normal_transaction_costs_at_most_eight_flash_writes(tmp_path, csms):
    from boards.host.board import HostBoard
    from firmware import log
    from firmware.app import App
    log.verbose = False
    board = HostBoard(str(tmp_path))
    app = App(board, str(tmp_path), [("ocppu", csms.url()), ("ocppe", True), ("acs", 1)])

    async def scenario():
        main = asyncio.create_task(app.main("127.0.0.1", free_port()))
        await asyncio.wait_for(app.session.online.wait(), 10)
        await asyncio.sleep(0.3)  # boot-time writes settle
        w0 = app.store.writes
        board.world.ev = "C"
        board.world.rfid = "CARD1"
        t = app.transactions
        await _until(lambda: t.current is not None and t.current.id is not None)
        await asyncio.sleep(2)
        board.world.rfid = "CARD1"
        await _until(lambda: t.current is None and app.tx_queue.pending() == 0)
        writes = app.store.writes - w0
        app.request_reboot()
        await main
        return writes
    try:
        writes = asyncio.run(scenario())
    finally:
        log.verbose = True
    print("flash writes for one transaction:", writes)
    assert writes <= 8
