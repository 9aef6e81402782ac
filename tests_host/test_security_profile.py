"""SecurityProfile and the TLS material, in process: the whitepaper's rules for
ChangeConfiguration (use case A05), what each profile needs to connect, the fallback
after a raise that cannot connect, and certificates and keys checked when written."""
import asyncio
import json

import pytest

from firmware.clock import Clock
from firmware.ocpp import session as session_mod
from firmware.ocpp.session import OcppSession, define_keys, profile_missing
from firmware.settings import Settings
from tests_host.certs import pem_pair

KEY = "0123456789abcdef0123"
URL = "wss://csms.example/ocpp/CP1"


class Store:
    def __init__(self):
        self.files = {}

    def read_json(self, name):
        return self.files.get(name), None

    def write_json(self, name, data):
        self.files[name] = dict(data)


@pytest.fixture(scope="module")
def pair():
    return pem_pair("charger")


def make(*sets):
    store = Store()
    settings = Settings(store)
    define_keys(settings)
    for k, v in sets:
        assert settings.set(k, v) is None, k
    session = OcppSession(settings, Clock(lambda: 0), {"chargePointVendor": "A", "chargePointModel": "B"})
    return session, settings, store


def profile2(pair, *more):
    return make(("ocppu", URL), ("AuthorizationKey", KEY), ("ocppsc", pair[0]), *more)


def change(settings, value):
    return settings.change_configuration("SecurityProfile", str(value))


# ---- ChangeConfiguration SecurityProfile -------------------------------------------

def test_lowering_the_profile_over_ocpp_is_rejected_and_changes_nothing(pair):
    _, s, store = profile2(pair, ("SecurityProfile", 2))
    assert change(s, 1) == "Rejected"
    assert change(s, 0) == "Rejected"
    assert s.get("SecurityProfile") == 2 and store.files["settings.json"]["SecurityProfile"] == 2


def test_the_same_profile_is_rejected_too(pair):
    _, s, _ = profile2(pair, ("SecurityProfile", 2))
    assert change(s, 2) == "Rejected"  # A05.FR.01: lower or equal


def test_raising_to_1_needs_an_authorization_key():
    _, s, _ = make(("ocppu", "ws://csms.example/ocpp/CP1"))
    assert change(s, 1) == "Rejected" and s.get("SecurityProfile") == 0
    assert s.set("AuthorizationKey", KEY) is None
    assert change(s, 1) == "Accepted" and s.get("SecurityProfile") == 1


def test_raising_to_2_needs_a_wss_url_and_the_central_system_root(pair):
    _, s, _ = make(("ocppu", "ws://csms.example/ocpp/CP1"), ("AuthorizationKey", KEY), ("ocppsc", pair[0]))
    assert change(s, 2) == "Rejected"  # ws:// URL
    assert s.set("ocppu", URL) is None and s.set("ocppsc", "") is None
    assert change(s, 2) == "Rejected"  # no root certificate
    assert s.set("ocppsc", pair[0]) is None
    assert change(s, 2) == "Accepted" and s.get("SecurityProfile") == 2


def test_raising_to_3_needs_the_client_certificate_and_key(pair):
    _, s, _ = profile2(pair)
    assert change(s, 3) == "Rejected"
    assert s.set("ocppcc", pair[0]) is None
    assert change(s, 3) == "Rejected"  # the certificate without its key
    assert s.set("ocppck", pair[1]) is None
    assert change(s, 3) == "Accepted"


def test_a_raise_is_accepted_not_reboot_required_and_reconnects(pair):
    session, s, _ = profile2(pair, ("SecurityProfile", 1))
    session._wake.clear()
    assert change(s, 2) == "Accepted"
    assert session._wake.is_set()  # the connection loop starts over with the new profile


def test_a_raise_is_saved_only_once_a_connection_with_it_succeeds(pair):
    session, s, store = profile2(pair, ("SecurityProfile", 1))
    assert change(s, 2) == "Accepted"
    assert store.files["settings.json"]["SecurityProfile"] == 1  # a reboot now comes back with 1
    session._connect_succeeded()
    assert store.files["settings.json"]["SecurityProfile"] == 2


def test_a_raise_that_cannot_connect_falls_back_to_the_previous_profile(pair):
    session, s, store = profile2(pair, ("SecurityProfile", 1))
    assert change(s, 2) == "Accepted"
    for _ in range(session_mod._PROFILE_TRIES - 1):
        session._connect_failed()
        assert s.get("SecurityProfile") == 2
    session._wake.clear()
    session._connect_failed()
    assert s.get("SecurityProfile") == 1 and store.files["settings.json"]["SecurityProfile"] == 1
    assert session._wake.is_set()
    session._connect_failed()  # the old profile is not a trial: no fallback from it
    assert s.get("SecurityProfile") == 1


def test_the_local_api_may_set_any_profile(pair):
    """The installer's tool (HTTP, REPL) is the "other method" of A00.FR.005."""
    _, s, _ = profile2(pair, ("SecurityProfile", 3))
    assert s.set("SecurityProfile", 0) is None and s.get("SecurityProfile") == 0
    assert s.set("SecurityProfile", 3) is None  # material missing: the connection says what (below)


def test_a_ws_url_is_refused_under_profile_2_and_3(pair):
    _, s, _ = profile2(pair, ("SecurityProfile", 2))
    err = s.set("ocppu", "ws://csms.example/ocpp/CP1")
    assert "needs wss://" in err and s.get("ocppu") == URL


def test_each_profile_names_what_it_lacks(pair):
    _, s, _ = make(("ocppu", "ws://csms.example/ocpp/CP1"))
    assert profile_missing(s, 0) is None
    assert "AuthorizationKey" in profile_missing(s, 1)
    s.set("AuthorizationKey", KEY)
    assert "wss://" in profile_missing(s, 2)
    s.set("ocppu", URL)
    assert "ocppsc" in profile_missing(s, 2)
    s.set("ocppsc", pair[0])
    assert profile_missing(s, 2) is None and "ocppcc" in profile_missing(s, 3)


def test_the_connection_is_not_attempted_when_the_profile_lacks_material(pair):
    session, s, _ = make(("ocppu", URL), ("SecurityProfile", 2))
    with pytest.raises(ValueError, match="SecurityProfile 2 needs an AuthorizationKey"):
        asyncio.run(session._connect(URL))


def test_profiles_2_and_3_always_verify_the_server(pair):
    session, s, _ = profile2(pair, ("ocppss", True), ("ocppcn", True))
    assert session._tls_context(strict=False).verify_mode == 0  # CERT_NONE: ocppss under profile 0/1
    ctx = session._tls_context(strict=True)
    assert ctx.verify_mode == 2 and ctx.check_hostname is True  # CERT_REQUIRED, name checked


# ---- certificate material checked on write --------------------------------------------

def test_a_malformed_ca_is_refused_and_the_previous_kept(pair):
    _, s, _ = make(("ocppsc", pair[0]))
    err = s.set("ocppsc", "not a certificate")
    assert err.startswith("ocppsc: not PEM") and s.get("ocppsc") == pair[0]


def test_a_key_that_is_not_the_certificates_is_refused(pair):
    other = pem_pair("other")
    _, s, _ = make(("ocppcc", pair[0]))
    err = s.set("ocppck", other[1])
    assert "do not belong together" in err and s.get("ocppck") == ""
    assert s.set("ocppck", pair[1]) is None
    err = s.set("ocppcc", other[0])
    assert "clear ocppck first" in err and s.get("ocppcc") == pair[0]
    # Replacing both: clear one, then set the new pair.
    assert s.set("ocppck", "") is None and s.set("ocppcc", other[0]) is None and s.set("ocppck", other[1]) is None


def test_a_certificate_where_the_key_belongs_is_refused(pair):
    _, s, _ = make()
    assert "not a private key" in s.set("ocppck", pair[0])
    assert "where a CERTIFICATE was expected" in s.set("ocppcc", pair[1])


def test_a_stored_key_that_does_not_match_is_dropped_at_load(pair):
    store = Store()
    store.files["settings.json"] = {"ocppcc": pair[0], "ocppck": pem_pair("other")[1]}
    errors = []
    settings = Settings(store, errors.append)
    settings.load()
    define_keys(settings)
    assert settings.get("ocppcc") == pair[0] and settings.get("ocppck") == ""
    assert any("ocppck" in e for e in errors)


def test_the_repl_refuses_malformed_material_like_http(tmp_path, pair):
    """config.set on MicroPython (the installer's REPL) runs the same checks."""
    from tests_host.test_api_config_repl import mp_config
    out = mp_config(tmp_path, "print(json.dumps(config.set(ocppsc='junk', ocppcc=%r, ocppck=%r)))"
                    % (pair[0], pem_pair("other")[1]))
    assert json.loads(out) == {"ocppsc": "ocppsc: not PEM: no -----BEGIN ...----- block", "ocppcc": True,
                               "ocppck": "ocppck: certificate and private key (ocppcc, ocppck) do not belong "
                                         "together; to replace both, clear ocppcc first"}
