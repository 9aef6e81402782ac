"""Authorization of an idTag: the chain of deciders (cards when OCPP is off,
LocalPreAuthorize, the Authorize request, the offline rules), the
authorization cache on flash, the ClearCache handler, the keys of these rules
and LocalAuthListEnabled; the go-e local cards (`cards`). Decision order and
cache format: README.md.
"""
from firmware import log
from firmware.clock import parse_iso
from firmware.compat import const
from firmware.ocpp.rpc import CallError, CallTimeout, NotConnected
from firmware.settings import BOOL, JSON, OCPP, PERSIST, RW

CACHE_FILE = "authcache.json"
_CACHE_SIZE = const(32)
_AUTHORIZE_TIMEOUT_MS = const(10000)


def define_keys(settings):
    d = settings.define
    d("AuthorizationCacheEnabled", BOOL, True, RW | PERSIST | OCPP)
    d("LocalPreAuthorize", BOOL, False, RW | PERSIST | OCPP)
    d("LocalAuthorizeOffline", BOOL, True, RW | PERSIST | OCPP, alias="ocpplo")
    d("AllowOfflineTxForUnknownId", BOOL, False, RW | PERSIST | OCPP, alias="ocppao")
    # The local list itself is the Local Auth List Management profile's; this is its switch.
    d("LocalAuthListEnabled", BOOL, True, RW | PERSIST | OCPP, alias="ocppla")
    d("cards", JSON, [], RW, check=_check_cards)


class AuthCache:
    def __init__(self, store, clock, size=_CACHE_SIZE):
        self.store = store
        self.clock = clock
        self.size = size

    def _read(self):
        obj, err = self.store.read_json(CACHE_FILE)
        if err:
            log.error(err)
        return obj if isinstance(obj, list) else []

    def lookup(self, tag):
        """(status, valid): the cached status of tag or None; valid False once expired."""
        return self.entry(tag)[:2]

    def entry(self, tag):
        """(status, valid, parentIdTag) of tag: (None, False, None) when not cached."""
        for e in self._read():
            if isinstance(e, list) and 3 <= len(e) <= 4 and e[0] == tag:
                exp = e[2]
                now = self.clock.now()
                valid = exp is None or (now is not None and now < exp)
                return e[1], valid, e[3] if len(e) == 4 else None
        return None, False, None

    def update(self, tag, info):
        """Keep an idTagInfo from Authorize/StartTransaction/StopTransaction answers."""
        if not isinstance(info, dict) or not tag:
            return
        status = info.get("status")
        exp = info.get("expiryDate")
        if exp is not None:
            try:
                exp = parse_iso(exp)
            except ValueError:
                exp = None
        entries = self._read()
        entry = [tag, status, exp, info.get("parentIdTag")]
        for i, e in enumerate(entries):
            if isinstance(e, list) and e and e[0] == tag:
                if e == entry:
                    return  # unchanged: no flash write
                entries.pop(i)
                break
        entries.append(entry)
        while len(entries) > self.size:
            entries.pop(0)  # the oldest gives way
        try:
            self.store.write_json(CACHE_FILE, entries)
        except OSError as e:
            log.error("auth cache not saved: %s" % e)

    def clear(self):
        """True once the cache is gone from flash."""
        self.store.delete(CACHE_FILE)
        return not self.store.exists(CACHE_FILE)


def offline_decision(status, valid, local_authorize_offline, allow_unknown):
    """Offline: accept a valid cached Accepted (LocalAuthorizeOffline) or an unknown idTag (AllowOfflineTxForUnknownId)."""
    if status is not None:
        return local_authorize_offline and valid and status == "Accepted"
    return bool(allow_unknown)


class Authorization:
    """The decision on an idTag: deciders asked in turn, each answers
    (accepted, how, parentIdTag) or None to pass to the next (see README.md for the order)."""

    def __init__(self, settings, session, cache, cards=None):
        self.settings = settings
        self.session = session
        self.cache = cache
        self.cards = cards  # callable(tag) -> card index or None (go-e local cards)
        self.requests = 0  # Authorize requests sent
        # async fn(tag, ctx) -> (accepted, how, parentIdTag) or None; ctx: what earlier deciders found.
        self.chain = [self._by_cards, self._by_cache, self._by_request, self._by_offline_rules]

    def handlers(self):
        return {"ClearCache": self.clear_cache}

    def add_decider(self, fn, before=None):
        """Insert a decider (local list, reservation) before another one; by
        default before the Authorize request: local knowledge answers first."""
        self.chain.insert(self.chain.index(before or self._by_request), fn)

    def _cache_on(self):
        return self.settings.get("AuthorizationCacheEnabled")

    async def authorize(self, tag):
        """Returns (accepted, how): how names the rule that decided."""
        ok, how, _parent = await self.identify(tag)
        return ok, how

    async def identify(self, tag):
        """Returns (accepted, how, parentIdTag): how names the rule that decided;
        the parentIdTag (the group) as the deciding source knows it, or None."""
        ctx = {}
        for decide in self.chain:
            r = await decide(tag, ctx)
            if r is not None:
                return r
        return False, "no decision", None

    async def _by_cards(self, tag, ctx):
        if self.settings.get("ocppe"):
            return None
        ok = self.cards is not None and self.cards(tag) is not None
        return ok, "card" if ok else "unknown card", None

    async def _by_cache(self, tag, ctx):
        status, valid, parent = None, False, None
        if self._cache_on():
            status, valid, parent = self.cache.entry(tag)
        ctx["cache"] = (status, valid, parent)
        if self.settings.get("LocalPreAuthorize") and valid and status == "Accepted":
            return True, "cache", parent
        return None

    async def _by_request(self, tag, ctx):
        if not self.session.online.is_set():
            return None
        try:
            self.requests += 1
            res = await self.session.call("Authorize", {"idTag": tag}, timeout_ms=_AUTHORIZE_TIMEOUT_MS)
        except (NotConnected, CallTimeout, CallError) as e:
            log.warn("Authorize: %s, offline rules apply" % (e,))
            return None
        info = res.get("idTagInfo") or {}
        if self._cache_on():
            self.cache.update(tag, info)
        st = info.get("status")
        return st == "Accepted", st, info.get("parentIdTag")

    async def _by_offline_rules(self, tag, ctx):
        s = self.settings
        status, valid, parent = ctx.get("cache", (None, False, None))
        ok = offline_decision(status, valid, s.get("LocalAuthorizeOffline"), s.get("AllowOfflineTxForUnknownId"))
        return ok, "offline", parent if ok else None

    def learn(self, tag, info):
        """An idTagInfo from a StartTransaction/StopTransaction answer."""
        if self._cache_on():
            self.cache.update(tag, info)

    def clear_cache(self, _payload):
        if not self.cache.clear():
            log.error("ClearCache: the authorization cache could not be deleted")
            return {"status": "Rejected"}
        return {"status": "Accepted"}


_MAX_CARDS = const(10)
CARDS_FILE = "cards.json"


def _check_cards(v):
    if not isinstance(v, list) or len(v) > _MAX_CARDS:
        return "expected a list of at most %d cards" % _MAX_CARDS
    for e in v:
        if not isinstance(e, dict):
            return "each card must be an object"
        n = e.get("name", "")
        if not isinstance(n, str) or len(n) > 32:
            return "name must be a string of at most 32 characters"
        en = e.get("energy", 0)
        if isinstance(en, bool) or not isinstance(en, (int, float)) or en < 0:
            return "energy must be a number >= 0"
        c = e.get("cardId", False)
        if not (isinstance(c, bool) or (isinstance(c, str) and 0 < len(c) <= 20)):
            return "cardId must be true/false or a card uid (1..20 characters)"
    return None


class Cards:
    """go-e `cards`: names and energy over the API; the uids stay in cards.json on
    flash and are never shown (`cardId` reads true once a card is taught).
    Writing a uid string as cardId teaches a card, false forgets it, true keeps it."""

    def __init__(self, store, settings):
        self.store = store
        obj, err = store.read_json(CARDS_FILE)
        if err:
            log.error(err)
        if not isinstance(obj, dict):
            obj = {}
        self._meta = obj.get("c") if isinstance(obj.get("c"), list) else []
        self._taught = [u is not None for u in self._uids(obj)]
        self.setting = settings.find("cards")
        self.setting.value = self.public()
        settings.watch("cards", self._changed)

    @staticmethod
    def _uids(obj):
        u = obj.get("u") if isinstance(obj, dict) else None
        return u if isinstance(u, list) else []

    def public(self):
        out = []
        for i, m in enumerate(self._meta):
            out.append({"name": m.get("name", ""), "energy": m.get("energy", 0),
                        "cardId": i < len(self._taught) and self._taught[i]})
        return out

    def _changed(self, st):
        obj, _ = self.store.read_json(CARDS_FILE)
        old = self._uids(obj)
        meta = []
        uids = []
        for i, e in enumerate(st.value):
            c = e.get("cardId", False)
            if isinstance(c, str):
                uids.append(c)
            elif c is True and i < len(old):
                uids.append(old[i])
            else:
                uids.append(None)
            meta.append({"name": e.get("name", ""), "energy": e.get("energy", 0)})
        self._save(meta, uids)

    def _save(self, meta, uids):
        try:
            self.store.write_json(CARDS_FILE, {"c": meta, "u": uids})
        except OSError as e:
            log.error("cards not saved: %s" % e)
            return
        self._meta = meta
        self._taught = [u is not None for u in uids]
        self.setting.value = self.public()

    def index(self, tag):
        """The index of the taught card with this uid, or None."""
        if not tag or True not in self._taught:
            return None
        obj, _ = self.store.read_json(CARDS_FILE)
        for i, u in enumerate(self._uids(obj)):
            if u == tag:
                return i
        return None

    def uid(self, i):
        obj, _ = self.store.read_json(CARDS_FILE)
        u = self._uids(obj)
        return u[i] if 0 <= i < len(u) else None

    def add_energy(self, i, wh):
        """Energy of a finished session charged to card i (one flash write)."""
        if not 0 <= i < len(self._meta) or wh <= 0:
            return
        obj, _ = self.store.read_json(CARDS_FILE)
        meta = [dict(m) for m in self._meta]
        meta[i]["energy"] = meta[i].get("energy", 0) + wh
        self._save(meta, self._uids(obj))
