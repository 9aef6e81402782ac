"""Groups of idTags (OCPP 1.6 section 3.10, ocpp16-notes.md decision 13), end to end
on both runtimes: another card with the parentIdTag of the card that started the
transaction stops it, with its own idTag; a card of another group does not."""
import time

import pytest

from tests_host.test_transactions_e2e import card_transaction, online, start

pytestmark = pytest.mark.e2e

CARDS = {"CARD1": {"status": "Accepted", "parentIdTag": "FAMILY"},
         "CARD2": {"status": "Accepted", "parentIdTag": "FAMILY"},
         "CARD3": {"status": "Accepted", "parentIdTag": "NEIGHBOUR"},
         "CARD4": {"status": "Blocked", "parentIdTag": "FAMILY"}}


def test_card_of_the_same_group_stops_the_transaction_with_its_own_id_tag(sims, runtime, tmp_path, csms):
    csms.do(lambda: csms.csms.cards.update(CARDS))
    sim = online(start(sims, runtime, tmp_path, csms))
    card_transaction(sim, csms, "CARD1")
    for n, other in enumerate(("CARD3", "CARD4"), 2):  # another group; the same group but blocked
        sim.sim_set(rfid=other)
        csms.wait_received("Authorize", n)
    time.sleep(0.5)  # asserting an absence
    assert csms.received("StopTransaction") == []
    sim.sim_set(rfid="CARD2")
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert [p["idTag"] for p in csms.received("Authorize")] == ["CARD1", "CARD3", "CARD4", "CARD2"]
    assert stop["idTag"] == "CARD2" and stop["reason"] == "Local" and stop["transactionId"] == 1
    sim.wait_status(lambda s: s["ocppti"] is None, keys=("ocppti",))


def test_group_given_by_the_start_transaction_answer_lets_a_card_stop_a_remote_start(sims, runtime, tmp_path, csms):
    # No Authorize before the start: the group comes from the StartTransaction answer.
    csms.do(lambda: csms.csms.cards.update(CARDS, REMOTE1={"status": "Accepted", "parentIdTag": "FAMILY"}))
    sim = online(start(sims, runtime, tmp_path, csms, "AuthorizeRemoteTxRequests=false"))
    sim.sim_set(ev="C")
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Accepted"}
    csms.wait_received("StartTransaction", 1)
    sim.wait_status(lambda s: s["ocppti"] == 1, keys=("ocppti",))
    sim.sim_set(rfid="CARD2")
    stop = csms.wait_received("StopTransaction", 1)[0]
    assert stop["idTag"] == "CARD2" and stop["reason"] == "Local"
