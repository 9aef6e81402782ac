"""Transaction rules in-process (CPython, the application on the host board,
the central system unreachable so every message stays queued): availability,
a StopTransaction the flash could not take, and the queue's bound."""
import asyncio

import pytest

from tests_host.harness import free_port

DEAD_URL = "ws://127.0.0.1:9/ocpp/CP1"  # nothing listens: the charger is offline


async def until(pred, timeout=10.0):
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


def make_app(state, *sets):
    from boards.host.board import HostBoard
    from firmware.app import App
    board = HostBoard(str(state))
    app = App(board, str(state), [("ocppu", DEAD_URL), ("ocppe", True), ("acs", 1)] + list(sets))
    return board, app


def run_app(app, scenario):
    from firmware import log
    log.verbose = False

    async def main():
        task = asyncio.create_task(app.main("127.0.0.1", free_port()))
        try:
            return await scenario()
        finally:
            app.request_reboot()
            await task
    try:
        return asyncio.run(main())
    finally:
        log.verbose = True


def queued(app, action):
    return [n for n in app.tx_queue._names if n[8] == {"StartTransaction": "S", "StopTransaction": "T"}[action]]


def test_authorization_waiting_for_the_plug_is_cancelled_when_made_inoperative(tmp_path):
    board, app = make_app(tmp_path)

    async def scenario():
        t = app.transactions
        t.grant("CARD1")
        assert t._grant is not None
        res = app.session.handlers["ChangeAvailability"]({"connectorId": 0, "type": "Inoperative"})
        assert (res[0] if isinstance(res, tuple) else res)["status"] == "Accepted"
        await until(lambda: not app.controller.enabled)
        board.world.ev = "C"
        await until(lambda: app.controller.plugged)
        await until(lambda: t._grant is None)
        for _ in range(10):  # several rule steps with the EV plugged
            await asyncio.sleep(0.1)
        return t.current, queued(app, "StartTransaction"), app.controller.contactor_closed
    current, starts, closed = run_app(app, scenario)
    assert current is None and starts == [] and closed is False


def _fail_queue_writes(app, failing):
    store = app.store
    real = store.write_json

    def write_json(name, obj):
        if failing[0] and name.startswith("txq/"):
            raise OSError(28, "no space left")
        return real(name, obj)
    store.write_json = write_json


async def _stop_while_queue_writes_fail(board, app, failing, *stop_args):
    """Start a card transaction, then stop it while the queue's flash writes fail."""
    t = app.transactions
    board.world.ev = "C"
    t.grant("CARD1")
    await until(lambda: t.current is not None)
    failing[0] = True
    t.stop_now(*stop_args)


def test_stop_the_flash_could_not_queue_is_kept_and_queued_once_it_can(tmp_path):
    from firmware import log
    board, app = make_app(tmp_path)
    failing = [False]
    _fail_queue_writes(app, failing)

    async def scenario():
        t = app.transactions
        await _stop_while_queue_writes_fail(board, app, failing, "Local", "CARD1")
        kept = app.store.read_json("tx.json")[0]
        err = log.last_error
        blocked = await t.remote_start({"idTag": "CARD2"})
        failing[0] = False
        await until(lambda: queued(app, "StopTransaction"))
        return kept, err, blocked, app.store.exists("tx.json")
    kept, err, blocked, tx_file_left = run_app(app, scenario)
    assert kept["stop"]["reason"] == "Local" and kept["stop"]["idTag"] == "CARD1"
    assert "StopTransaction not queued" in err
    assert blocked == {"status": "Rejected"}  # no new transaction over an unqueued stop
    assert not tx_file_left


def test_stop_kept_in_tx_file_is_queued_with_its_reason_at_the_next_boot(tmp_path):
    board, app = make_app(tmp_path)
    failing = [False]
    _fail_queue_writes(app, failing)

    async def scenario():
        await _stop_while_queue_writes_fail(board, app, failing, "Remote")
        # The power goes before the flash takes it: the next boot sends it.
    run_app(app, scenario)
    board2, app2 = make_app(tmp_path)

    async def after():
        await until(lambda: queued(app2, "StopTransaction"))
        rec = app2.store.read_json("txq/" + queued(app2, "StopTransaction")[0])[0]
        return rec["p"]["reason"], len(queued(app2, "StartTransaction")), app2.store.exists("tx.json")
    reason, starts, tx_file_left = run_app(app2, after)
    assert reason == "Remote" and starts == 1 and not tx_file_left


def test_no_new_transaction_while_start_and_stop_messages_fill_the_queue(tmp_path):
    from firmware import log
    board, app = make_app(tmp_path)
    app.tx_queue.max_messages = 6

    async def scenario():
        t = app.transactions
        board.world.ev = "C"
        await until(lambda: app.controller.plugged)
        done = 0
        for i in range(5):
            t.grant("CARD1")
            if t.current is None:
                break
            t.stop_now("Local", "CARD1")
            done += 1
            t._wait_unplug = False
        refused = await t.remote_start({"idTag": "CARD1"})
        return done, refused, log.last_error, app.tx_queue.pending()
    done, refused, err, pending = run_app(app, scenario)
    assert done == 3  # 3 x (Start + Stop) = 6 of 6: a fourth would have no room for its messages
    assert refused == {"status": "Rejected"}
    assert "transaction queue full" in err
    assert pending <= 6


def test_meter_values_are_not_queued_beyond_the_bound(tmp_path):
    from firmware import log
    from tests_host.test_tx_queue import make
    q, _ = make(tmp_path, max_messages=2)
    q.push("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0}, tx_ref=1)
    q.push("StopTransaction", {"meterStop": 1, "reason": "Local"}, tx_ref=1)
    assert q.push("MeterValues", {"connectorId": 1, "meterValue": []}, tx_ref=1) is False
    assert q.pending() == 2 and "new MeterValues dropped" in log.last_error
    assert q.room_for_transaction() is False


# ---- groups (parentIdTag) and remote starts that are answered only when they are kept --------

def test_the_transaction_record_keeps_the_group_across_a_power_cut(tmp_path):
    board, app = make_app(tmp_path)

    async def scenario():
        t = app.transactions
        board.world.ev = "C"
        assert t.grant("CARD1", parent="GROUP1") is True
        await until(lambda: t.current is not None)
        return t.current.parent, app.store.read_json("tx.json")[0]["p"]
    assert run_app_cut(app, scenario) == ("GROUP1", "GROUP1")
    board2, app2 = make_app(tmp_path)
    closed = []
    app2.transactions.on_stop(closed.append)

    async def after():
        await until(lambda: closed)
        return closed[0].id_tag, closed[0].parent
    assert run_app(app2, after) == ("CARD1", "GROUP1")


def run_app_cut(app, scenario):
    """Run the scenario, then end the application as a power cut would: the transaction stays on flash."""
    t = app.transactions

    async def cut():
        try:
            return await scenario()
        finally:
            t.current = None  # no Reboot stop on the way out
    return run_app(app, cut)


def test_the_start_transaction_answer_gives_the_group_when_it_was_unknown(tmp_path):
    board, app = make_app(tmp_path)

    async def scenario():
        t = app.transactions
        board.world.ev = "C"
        t.grant("REMOTE1")
        await until(lambda: t.current is not None)
        tx = t.current
        t._answered("StartTransaction", tx.ref, {"idTag": "REMOTE1"},
                    {"transactionId": 7, "idTagInfo": {"status": "Accepted", "parentIdTag": "GROUP1"}})
        return tx.parent, app.store.read_json("tx.json")[0].get("p"), app.auth.cache.entry("REMOTE1")
    parent, kept, cached = run_app_cut(app, scenario)
    assert parent == kept == "GROUP1" and cached == ("Accepted", True, "GROUP1")


def test_a_card_of_the_same_group_stops_the_transaction_from_the_cache(tmp_path):
    # Offline: the cache (LocalAuthorizeOffline) tells the group of the card presented.
    board, app = make_app(tmp_path)
    stops = []

    async def scenario():
        t = app.transactions
        t.on_stop(lambda tx: stops.append(tx.ref))
        cache = app.auth.cache
        cache.update("CARD2", {"status": "Accepted", "parentIdTag": "GROUP1"})
        cache.update("CARD3", {"status": "Accepted", "parentIdTag": "GROUP2"})
        board.world.ev = "C"
        t.grant("CARD1", parent="GROUP1")
        await until(lambda: t.current is not None)
        board.world.rfid = "CARD3"  # another group: ignored
        await until(lambda: board.world.rfid is None and not t._authorizing)
        for _ in range(5):
            await asyncio.sleep(0.1)
        running = t.current is not None
        board.world.rfid = "CARD2"
        await until(lambda: t.current is None)
        rec = app.store.read_json("txq/" + queued(app, "StopTransaction")[0])[0]
        return running, rec["p"]
    running, stop = run_app(app, scenario)
    assert running is True
    assert stop["idTag"] == "CARD2" and stop["reason"] == "Local"


def test_remote_start_is_rejected_while_another_authorization_is_under_way(tmp_path):
    board, app = make_app(tmp_path, ("AuthorizeRemoteTxRequests", False))

    async def scenario():
        t = app.transactions
        await until(app.api.listening)
        t._authorizing = True  # a card presented a moment ago is being authorized
        busy = await t.remote_start({"idTag": "REMOTE1"})
        t._authorizing = False
        return busy, await t.remote_start({"idTag": "REMOTE1"}), t._grant is not None
    busy, free, granted = run_app(app, scenario)
    assert busy == {"status": "Rejected"} and free == {"status": "Accepted"} and granted


def test_a_second_remote_start_waiting_for_the_same_plug_is_rejected_and_the_first_is_kept(tmp_path):
    board, app = make_app(tmp_path, ("AuthorizeRemoteTxRequests", False))

    async def scenario():
        t = app.transactions
        await until(app.api.listening)
        first = await t.remote_start({"idTag": "TAGA"})
        second = await t.remote_start({"idTag": "TAGB", "connectorId": 1})
        board.world.ev = "C"
        await until(lambda: t.current is not None)
        return first, second, t.current.id_tag
    assert run_app(app, scenario) == ({"status": "Accepted"}, {"status": "Rejected"}, "TAGA")


def test_remote_start_for_an_id_tag_that_is_not_authorized_is_rejected_and_grants_nothing(tmp_path):
    board, app = make_app(tmp_path)  # AuthorizeRemoteTxRequests: the offline rules refuse an unknown idTag

    async def scenario():
        t = app.transactions
        await until(app.api.listening)
        return await t.remote_start({"idTag": "UNKNOWN"}), t._grant, app.controller._authorized
    assert run_app(app, scenario) == ({"status": "Rejected"}, None, False)


def test_unlock_connector_without_a_cable_lock_is_not_supported_and_stops_nothing(tmp_path):
    board, app = make_app(tmp_path)

    async def scenario():
        t = app.transactions
        app.controller._lock = None  # a charger with a fixed cable
        board.world.ev = "C"
        t.grant("CARD1")
        await until(lambda: t.current is not None)
        return await t.unlock_connector({"connectorId": 1}), t.current is not None
    assert run_app(app, scenario) == ({"status": "NotSupported"}, True)


def test_a_start_check_keeps_other_idtags_from_starting_on_the_connector(tmp_path):
    board, app = make_app(tmp_path)
    t = app.transactions
    t.add_start_check(lambda tag, connector: None if tag == "RESERVED" else "reserved for another idTag")
    t.grant("CARD1")
    assert t._grant is None and not app.controller.authorized
    t.grant("RESERVED")
    assert t._grant is not None and t._grant[0] == "RESERVED"
