"""Authorization units (CPython): the cache on flash, the offline rules,
LocalPreAuthorize, and the go-e cards that never reveal their uids."""
import asyncio

from firmware.clock import Clock
from firmware.ocpp.auth import AuthCache, Authorization, Cards, define_keys, offline_decision
from firmware.ocpp.rpc import CallTimeout
from firmware.settings import BOOL, Settings
from firmware.store import Store


class FakeSession:
    def __init__(self, status="Accepted", online=True, fail=None, parents=None):
        self.online = asyncio.Event()
        if online:
            self.online.set()
        self.status = status
        self.fail = fail
        self.parents = parents or {}  # idTag -> parentIdTag in the answers
        self.calls = []

    async def call(self, action, payload, timeout_ms=None, msg_id=None):
        self.calls.append((action, payload))
        if self.fail:
            raise self.fail
        info = {"status": self.status, "expiryDate": "2030-01-01T00:00:00Z"}
        if payload["idTag"] in self.parents:
            info["parentIdTag"] = self.parents[payload["idTag"]]
        return {"idTagInfo": info}


def make(tmp_path, session=None, **keys):
    s = Settings()
    s.define("ocppe", BOOL, True)
    define_keys(s)
    for k, v in keys.items():
        s.set(k, v)
    clock = Clock()
    clock.set(1_800_000_000)  # 2027
    store = Store(str(tmp_path))
    cache = AuthCache(store, clock, size=3)
    return Authorization(s, session or FakeSession(), cache), cache


def auth(a, tag):
    return asyncio.run(a.authorize(tag))


def test_cache_keeps_status_and_expiry(tmp_path):
    _, c = make(tmp_path)
    c.update("A", {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00Z"})
    assert c.lookup("A") == ("Accepted", True)
    c.update("B", {"status": "Accepted", "expiryDate": "2020-01-01T00:00:00Z"})
    assert c.lookup("B") == ("Accepted", False)
    assert c.lookup("C") == (None, False)


def test_cache_is_bounded_and_the_oldest_gives_way(tmp_path):
    _, c = make(tmp_path)
    for t in "ABCD":
        c.update(t, {"status": "Accepted"})
    assert c.lookup("A") == (None, False) and c.lookup("D") == ("Accepted", True)


def test_unchanged_cache_entry_costs_no_flash_write(tmp_path):
    _, c = make(tmp_path)
    c.update("A", {"status": "Accepted"})
    n = c.store.writes
    c.update("A", {"status": "Accepted"})
    assert c.store.writes == n


def test_offline_rules():
    assert offline_decision("Accepted", True, True, False) is True
    assert offline_decision("Accepted", True, False, False) is False  # LocalAuthorizeOffline off
    assert offline_decision("Accepted", False, True, True) is False  # expired: known, not accepted
    assert offline_decision("Blocked", True, True, True) is False
    assert offline_decision(None, False, True, True) is True  # unknown id, AllowOfflineTxForUnknownId
    assert offline_decision(None, False, True, False) is False


def test_online_authorize_asks_the_csms_and_fills_the_cache(tmp_path):
    a, c = make(tmp_path)
    assert auth(a, "A") == (True, "Accepted")
    assert c.lookup("A") == ("Accepted", True)


def test_cache_is_not_used_when_authorization_cache_disabled(tmp_path):
    a, c = make(tmp_path, AuthorizationCacheEnabled=False)
    auth(a, "A")
    assert c.lookup("A") == (None, False)


def test_local_pre_authorize_accepts_from_cache_without_request(tmp_path):
    a, c = make(tmp_path, LocalPreAuthorize=True)
    c.update("A", {"status": "Accepted"})
    assert auth(a, "A") == (True, "cache")
    assert a.session.calls == []


def test_without_local_pre_authorize_the_csms_is_asked(tmp_path):
    a, c = make(tmp_path, session=FakeSession("Blocked"))
    c.update("A", {"status": "Accepted"})
    assert auth(a, "A") == (False, "Blocked")


def test_offline_cached_id_accepted_with_local_authorize_offline(tmp_path):
    a, c = make(tmp_path, session=FakeSession(online=False))
    c.update("A", {"status": "Accepted"})
    assert auth(a, "A") == (True, "offline")
    a.settings.set("LocalAuthorizeOffline", False)
    assert auth(a, "A") == (False, "offline")


def test_unanswered_authorize_falls_back_to_offline_rules(tmp_path):
    a, _ = make(tmp_path, session=FakeSession(fail=CallTimeout()), AllowOfflineTxForUnknownId=True)
    assert auth(a, "NEW") == (True, "offline")


def test_offline_unknown_id_refused_by_default(tmp_path):
    a, _ = make(tmp_path, session=FakeSession(online=False))
    assert auth(a, "NEW") == (False, "offline")


def test_clear_cache_forgets_everything(tmp_path):
    a, c = make(tmp_path)
    c.update("A", {"status": "Accepted"})
    assert a.clear_cache({}) == {"status": "Accepted"}
    assert c.lookup("A") == (None, False)


def test_cards_teach_a_uid_without_revealing_it(tmp_path):
    s = Settings()
    define_keys(s)
    cards = Cards(Store(str(tmp_path)), s)
    assert s.set("cards", [{"name": "anna", "energy": 0, "cardId": "04AABB"}, {"name": "ben"}]) is None
    assert s.get("cards") == [{"name": "anna", "energy": 0, "cardId": True},
                              {"name": "ben", "energy": 0, "cardId": False}]
    assert "04AABB" not in str(s.get("cards"))
    assert cards.index("04AABB") == 0 and cards.index("X") is None
    # Writing back what was read keeps the taught card.
    s.set("cards", s.get("cards"))
    assert cards.index("04AABB") == 0
    cards.add_energy(0, 1500)
    s2 = Settings()
    define_keys(s2)
    assert Cards(Store(str(tmp_path)), s2).public()[0] == {"name": "anna", "energy": 1500, "cardId": True}


def test_with_ocpp_off_only_taught_cards_are_accepted(tmp_path):
    a, _ = make(tmp_path, ocppe=False)
    a.cards = lambda tag: 0 if tag == "KNOWN" else None
    assert auth(a, "KNOWN")[0] is True and auth(a, "OTHER")[0] is False
    assert a.session.calls == []


def test_cache_keeps_the_parent_id_tag_and_reads_entries_without_one(tmp_path):
    _, c = make(tmp_path)
    c.update("A", {"status": "Accepted", "parentIdTag": "GROUP1"})
    c.update("B", {"status": "Accepted"})
    assert c.entry("A") == ("Accepted", True, "GROUP1") and c.entry("B") == ("Accepted", True, None)
    c.store.write_json("authcache.json", [["OLD", "Accepted", None]])  # written before groups were kept
    assert c.entry("OLD") == ("Accepted", True, None) and c.lookup("OLD") == ("Accepted", True)
    assert c.entry("C") == (None, False, None)


def test_identify_gives_the_group_from_the_authorize_answer_and_caches_it(tmp_path):
    a, c = make(tmp_path, session=FakeSession(parents={"A": "GROUP1"}))
    assert asyncio.run(a.identify("A")) == (True, "Accepted", "GROUP1")
    assert asyncio.run(a.identify("B")) == (True, "Accepted", None)
    assert c.entry("A")[2] == "GROUP1"


def test_identify_gives_the_group_from_the_cache_offline_and_with_local_pre_authorize(tmp_path):
    a, c = make(tmp_path, session=FakeSession(online=False))
    c.update("A", {"status": "Accepted", "parentIdTag": "GROUP1"})
    assert asyncio.run(a.identify("A")) == (True, "offline", "GROUP1")
    a.settings.set("LocalPreAuthorize", True)
    a.session.online.set()
    assert asyncio.run(a.identify("A")) == (True, "cache", "GROUP1") and a.session.calls == []


def test_clear_cache_is_rejected_when_the_cache_cannot_be_deleted(tmp_path):
    a, c = make(tmp_path)
    c.update("A", {"status": "Accepted"})
    real = c.store.delete
    c.store.delete = lambda name: None  # the flash refuses the delete
    assert a.clear_cache({}) == {"status": "Rejected"}
    c.store.delete = real
    assert a.clear_cache({}) == {"status": "Accepted"} and c.lookup("A") == (None, False)


def test_a_decider_added_to_the_chain_answers_before_the_authorize_request(tmp_path):
    a, _ = make(tmp_path)
    asked = []

    async def local_list(tag, ctx):
        asked.append(tag)
        return (True, "local list", None) if tag == "LISTED" else None
    a.add_decider(local_list)
    assert auth(a, "LISTED") == (True, "local list")
    assert a.session.calls == [] and asked == ["LISTED"]
    # A decider that passes leaves the decision to the rest of the chain.
    auth(a, "OTHER")
    assert asked == ["LISTED", "OTHER"]
