"""An Accepted answer is a promise (ocpp16-notes.md decision 15), end to end on both
runtimes: RemoteStartTransaction is answered Accepted only when the start will
be carried out, and an accepted start is carried out when the EV plugs in, or
ends in a reported state when ConnectionTimeOut passes first."""
import time

import pytest

from tests_host.test_transactions_e2e import card_transaction, online, start

pytestmark = pytest.mark.e2e


def test_remote_start_for_an_id_tag_the_central_system_refuses_is_rejected(sims, runtime, tmp_path, csms):
    csms.do(lambda: csms.csms.cards.update(BAD={"status": "Invalid"}))
    sim = online(start(sims, runtime, tmp_path, csms))
    sim.sim_set(ev="C")
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "BAD"}) == {"status": "Rejected"}
    assert csms.received("Authorize") == [{"idTag": "BAD"}]  # asked before the answer
    time.sleep(0.5)  # asserting an absence
    assert csms.received("StartTransaction") == [] and sim.status("trx")["trx"] is None


def test_accepted_remote_start_starts_the_transaction_when_the_ev_plugs_in(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "ConnectionTimeOut=60"))
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Accepted"}
    sim.wait_status(lambda s: s["trx"] == 0, keys=("trx",))  # granted, waiting for the EV
    assert csms.received("StartTransaction") == []
    sim.sim_set(ev="C")
    st = csms.wait_received("StartTransaction", 1)[0]
    assert st["idTag"] == "REMOTE1" and st["connectorId"] == 1
    sim.wait_status(lambda s: s["car"] == 2, keys=("car",))  # charging


def test_accepted_remote_start_ends_available_when_connection_timeout_passes(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "ConnectionTimeOut=1"))
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Accepted"}
    sim.wait_status(lambda s: s["trx"] == 0, keys=("trx",))
    sim.wait_status(lambda s: s["trx"] is None, keys=("trx",), timeout=10)  # the grant expired
    csms.wait_for(lambda: [p["status"] for p in csms.received("StatusNotification") if p["connectorId"] == 1][-1]
                  == "Available")
    sim.sim_set(ev="C")
    time.sleep(0.5)  # asserting an absence: the expired grant starts nothing
    assert csms.received("StartTransaction") == []


def test_remote_start_is_rejected_where_no_transaction_could_start(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms))
    # Unavailable connector.
    assert csms.call("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == {"status": "Accepted"}
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Rejected"}
    assert csms.call("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Operative"}) == {"status": "Accepted"}
    # A transaction already runs.
    card_transaction(sim, csms)
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Rejected"}
    assert csms.received("Authorize") == [{"idTag": "CARD1"}]


def test_second_remote_start_while_the_first_waits_for_the_ev_is_rejected(sims, runtime, tmp_path, csms):
    sim = online(start(sims, runtime, tmp_path, csms, "ConnectionTimeOut=60"))
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "TAGA"}) == {"status": "Accepted"}
    sim.wait_status(lambda s: s["trx"] == 0, keys=("trx",))
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "TAGB", "connectorId": 1}) == \
        {"status": "Rejected"}
    sim.sim_set(ev="C")
    st = csms.wait_received("StartTransaction", 1)[0]
    assert st["idTag"] == "TAGA"  # the first promise is the one kept
