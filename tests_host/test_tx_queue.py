"""TxQueue units (CPython): persistence, order, retries, identity of resends,
transactionId mapping, what gives way when full, timestamps before the clock."""
import asyncio

import pytest

from firmware.clock import Clock
from firmware.ocpp.rpc import CallError, NotConnected
from firmware.ocpp.tx_queue import TxQueue, define_keys
from firmware.settings import Settings
from firmware.store import Store


class FakeSession:
    """Answers calls from a script; records (action, payload copy, msg_id)."""

    def __init__(self, answer=None):
        self.online = asyncio.Event()
        self.online.set()
        self.sent = []
        self.answer = answer or (lambda action, payload: {"transactionId": 11} if action == "StartTransaction" else {})

    async def call(self, action, payload, timeout_ms=None, msg_id=None):
        self.sent.append((action, dict(payload), msg_id))
        r = self.answer(action, payload)
        if isinstance(r, Exception):
            raise r
        return r


def make(tmp_path, session=None, clock_set=True, **kw):
    s = Settings()
    define_keys(s)
    s.set("TransactionMessageRetryInterval", 0)
    clock = Clock()
    if clock_set:
        clock.set(1_800_000_000)
    q = TxQueue(Store(str(tmp_path)), session or FakeSession(), s, clock, **kw)
    return q, s


async def deliver(q, n=None):
    """Run the delivery task until the queue is empty (or n sends happened)."""
    task = asyncio.create_task(q.run())
    try:
        if n is None:
            assert await q.wait_empty(2000)
        else:
            for _ in range(200):
                if len(q.session.sent) >= n:
                    break
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.sleep(0)


def run(coro):
    return asyncio.run(coro)


def test_push_is_on_flash_before_it_returns(tmp_path):
    q, _ = make(tmp_path)
    q.push("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "x"}, tx_ref=1)
    assert q.store.writes == 1
    q2, _ = make(tmp_path)  # a reboot
    assert q2.pending() == 1 and q2.knows(1) and q2.max_ref() == 1


def test_messages_are_delivered_in_order_across_a_reboot(tmp_path):
    q, _ = make(tmp_path)
    q.push("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0}, tx_ref=1)
    q.push("MeterValues", {"connectorId": 1, "meterValue": []}, tx_ref=1)
    q.push("StopTransaction", {"meterStop": 5, "reason": "Local"}, tx_ref=1)
    q2, _ = make(tmp_path)
    run(deliver(q2))
    assert [a for a, _, _ in q2.session.sent] == ["StartTransaction", "MeterValues", "StopTransaction"]


def test_transaction_id_is_filled_in_from_the_start_answer(tmp_path):
    q, _ = make(tmp_path)
    q.push("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0}, tx_ref=3)
    q.push("StopTransaction", {"meterStop": 5, "reason": "Local"}, tx_ref=3)
    run(deliver(q))
    assert q.session.sent[1][1]["transactionId"] == 11
    assert make(tmp_path)[0].id_for(3) == 11  # kept on flash


def test_resend_after_failure_keeps_message_id_and_payload(tmp_path):
    answers = [CallError("InternalError"), {"transactionId": 5}]
    sess = FakeSession(lambda a, p: answers.pop(0))
    q, _ = make(tmp_path, sess)
    q.push("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0}, tx_ref=1)
    run(deliver(q))
    assert len(sess.sent) == 2 and sess.sent[0] == sess.sent[1]


def test_message_is_given_up_after_transaction_message_attempts(tmp_path):
    sess = FakeSession(lambda a, p: CallError("InternalError"))
    q, s = make(tmp_path, sess)
    s.set("TransactionMessageAttempts", 2)
    q.push("MeterValues", {"connectorId": 1, "meterValue": []})
    run(deliver(q))
    assert len(sess.sent) == 2 and q.dropped == 1


def test_lost_connection_is_not_an_attempt(tmp_path):
    answers = [NotConnected(), NotConnected(), NotConnected(), {}]
    sess = FakeSession(lambda a, p: answers.pop(0))
    q, s = make(tmp_path, sess)
    s.set("TransactionMessageAttempts", 1)
    q.push("MeterValues", {"connectorId": 1, "meterValue": []})
    run(deliver(q))
    assert len(sess.sent) == 4 and q.dropped == 0 and q.sent == 1


def test_retry_waits_the_retry_interval_times_attempts(tmp_path):
    sess = FakeSession(lambda a, p: CallError("InternalError"))
    q, s = make(tmp_path, sess)
    s.set("TransactionMessageRetryInterval", 1)
    q.push("MeterValues", {"connectorId": 1, "meterValue": []})

    async def go():
        task = asyncio.create_task(q.run())
        await asyncio.sleep(0.5)
        n = len(sess.sent)
        task.cancel()
        return n
    assert run(go()) == 1  # the second attempt waits 1 s


def test_full_queue_drops_oldest_meter_values_never_start_or_stop(tmp_path):
    from firmware import log
    q, _ = make(tmp_path, max_messages=3)
    q.push("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0}, tx_ref=1)
    q.push("MeterValues", {"connectorId": 1, "meterValue": [], "n": 1}, tx_ref=1)
    q.push("MeterValues", {"connectorId": 1, "meterValue": [], "n": 2}, tx_ref=1)
    q.push("MeterValues", {"connectorId": 1, "meterValue": [], "n": 3}, tx_ref=1)
    assert "MeterValues dropped" in log.last_error
    q.push("StopTransaction", {"meterStop": 1, "reason": "Local"}, tx_ref=1)
    q.push("StopTransaction", {"meterStop": 1, "reason": "Local"}, tx_ref=1)
    run(deliver(q))
    sent = [(a, p.get("n")) for a, p, _ in q.session.sent]
    assert sent[0] == ("StartTransaction", None)
    assert ("MeterValues", 1) not in sent
    assert [a for a, _ in sent].count("StopTransaction") == 2


def test_stop_of_a_given_up_start_is_not_sent(tmp_path):
    sess = FakeSession(lambda a, p: CallError("InternalError") if a == "StartTransaction" else {})
    q, s = make(tmp_path, sess)
    s.set("TransactionMessageAttempts", 1)
    q.push("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0}, tx_ref=1)
    q.push("MeterValues", {"connectorId": 1, "meterValue": [], "transactionId": 0}, tx_ref=1)
    q.push("StopTransaction", {"meterStop": 1, "reason": "Local"}, tx_ref=1)
    run(deliver(q))
    assert [a for a, _, _ in sess.sent] == ["StartTransaction", "MeterValues"]
    assert "transactionId" not in sess.sent[1][1]


def test_message_pushed_before_the_clock_is_stamped_when_sent(tmp_path):
    q, _ = make(tmp_path, clock_set=False)
    q.push("StopTransaction", {"meterStop": 1, "reason": "Local", "transactionId": 1,
                               "transactionData": [{"sampledValue": [{"value": "1"}]}]})
    q.clock.set(1_800_000_000)
    run(deliver(q))
    p = q.session.sent[0][1]
    assert p["timestamp"].startswith("2027-01-15T08:")
    assert p["transactionData"][0]["timestamp"] == p["timestamp"]


def test_nothing_is_sent_while_offline(tmp_path):
    sess = FakeSession()
    sess.online.clear()
    q, _ = make(tmp_path, sess)
    q.push("MeterValues", {"connectorId": 1, "meterValue": []})

    async def go():
        task = asyncio.create_task(q.run())
        ok = await q.wait_empty(200)
        sess.online.set()
        ok2 = await q.wait_empty(2000)
        task.cancel()
        return ok, ok2
    assert run(go()) == (False, True)


def test_stale_temp_files_are_removed_at_boot(tmp_path):
    q, _ = make(tmp_path)
    q.push("MeterValues", {"connectorId": 1, "meterValue": []})
    (tmp_path / "txq" / "00000009M.tmp").write_text("{")
    q2, _ = make(tmp_path)
    assert q2.pending() == 1 and not (tmp_path / "txq" / "00000009M.tmp").exists()
