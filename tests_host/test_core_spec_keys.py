"""Every configuration key of OCPP 1.6 section 9.1 (Core profile) is defined by
the assembled firmware and reported by GetConfiguration with its accessibility.

This checks the whole app, so it depends on every module that owns 9.1 keys
(core, session, transactions/authorization, metering). The end-to-end part runs
the simulator on both runtimes against the ocpp-based CSMS: read-only keys are
refused by ChangeConfiguration, and keys changed over OCPP take effect in the
live session."""
import time

import pytest

from tests_host.conftest import RUNTIMES

# key -> readonly per spec 9.1 (None: "R or RW", the charge point's choice)
CORE_KEYS = {
    "AllowOfflineTxForUnknownId": False,
    "AuthorizationCacheEnabled": False,
    "AuthorizeRemoteTxRequests": None,
    "BlinkRepeat": False,
    "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False,
    "ConnectorPhaseRotation": False,
    "ConnectorPhaseRotationMaxLength": True,
    "GetConfigurationMaxKeys": True,
    "HeartbeatInterval": False,
    "LightIntensity": False,
    "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False,
    "MaxEnergyOnInvalidId": False,
    "MeterValuesAlignedData": False,
    "MeterValuesAlignedDataMaxLength": True,
    "MeterValuesSampledData": False,
    "MeterValuesSampledDataMaxLength": True,
    "MeterValueSampleInterval": False,
    "MinimumStatusDuration": False,
    "NumberOfConnectors": True,
    "ResetRetries": False,
    "StopTransactionOnEVSideDisconnect": False,
    "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False,
    "StopTxnAlignedDataMaxLength": True,
    "StopTxnSampledData": False,
    "StopTxnSampledDataMaxLength": True,
    "SupportedFeatureProfiles": True,
    "SupportedFeatureProfilesMaxLength": True,
    "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": False,
    "WebSocketPingInterval": False,
}


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
    from boards.host.board import HostBoard
    from firmware import log
    from firmware.app import App
    log.verbose = False
    try:
        state = str(tmp_path_factory.mktemp("flash"))
        app = App(HostBoard(state), state)
        res = app.session.handlers["GetConfiguration"]({})
    finally:
        log.verbose = True
    return res["configurationKey"]


@pytest.fixture
def configuration(entries):
    return {e["key"]: e for e in entries}


@pytest.mark.parametrize("key", sorted(CORE_KEYS))
def test_core_profile_key_is_reported_with_its_accessibility(configuration, key):
    assert key in configuration, "%s is not defined" % key
    want = CORE_KEYS[key]
    if want is not None:
        assert configuration[key]["readonly"] is want
    assert "value" in configuration[key]


def test_every_key_is_reported_once(entries):
    keys = [e["key"].lower() for e in entries]
    assert len(keys) == len(set(keys))


def test_requesting_every_core_key_fits_get_configuration_max_keys(configuration):
    assert int(configuration["GetConfigurationMaxKeys"]["value"]) >= len(CORE_KEYS)


# ---- end to end ----------------------------------------------------------------------------

READ_ONLY = sorted(k for k, ro in CORE_KEYS.items() if ro is True)


@pytest.fixture(scope="module", params=RUNTIMES)
def live(request, tmp_path_factory):
    """One charger per runtime, online, shared by the read-only checks (they change nothing)."""
    from tests_host.harness import online_charger
    yield from online_charger(request.param, tmp_path_factory.mktemp("flash"))


def _entry(csms, key):
    res = csms.call("CP1", "GetConfiguration", {"key": [key]})
    assert res.get("unknownKey") is None, res
    [e] = res["configurationKey"]
    return e


def _refused(csms, key):
    """Why a read-only key is not refused as one, or None."""
    before = _entry(csms, key)
    if before["readonly"] is not True:
        return "%s: reported readonly=%r" % (key, before["readonly"])
    # Its own value, so nothing but the access rule can refuse it.
    status = csms.call("CP1", "ChangeConfiguration", {"key": key, "value": before.get("value", "1")})["status"]
    if status != "Rejected":
        return "%s: ChangeConfiguration answered %s" % (key, status)
    if _entry(csms, key) != before:
        return "%s: changed to %r" % (key, _entry(csms, key))
    return None


@pytest.mark.e2e
@pytest.mark.parametrize("key", READ_ONLY)
def test_read_only_core_key_is_rejected_by_change_configuration_end_to_end(live, key):
    assert _refused(live[0], key) is None


@pytest.mark.e2e
def test_every_key_reported_read_only_is_rejected_by_change_configuration_end_to_end(live):
    csms = live[0]
    every = csms.call("CP1", "GetConfiguration", {})["configurationKey"]
    ro = [e["key"] for e in every if e["readonly"]]
    assert set(READ_ONLY) <= set(ro)
    assert [why for why in (_refused(csms, k) for k in ro) if why] == []


def _change(csms, key, value):
    return csms.call("CP1", "ChangeConfiguration", {"key": key, "value": value})["status"]


def _online(sims, runtime, tmp_path, csms, *sets):
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=sets).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    return sim


def _gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


@pytest.mark.e2e
def test_websocket_ping_interval_set_over_ocpp_paces_the_pings_of_the_live_session(sims, runtime, tmp_path, csms):
    sim = _online(sims, runtime, tmp_path, csms)
    pings = csms.watch_pings()
    assert pings == []  # 60 s by default
    assert _change(csms, "WebSocketPingInterval", "1") == "Accepted"
    csms.wait_for(lambda: len(pings) >= 4, timeout=15)
    assert all(0.6 <= g <= 1.6 for g in _gaps(pings[:4])), _gaps(pings)
    assert _change(csms, "WebSocketPingInterval", "2") == "Accepted"
    k = len(pings) + 1  # the ping already due may still go at the old pace
    csms.wait_for(lambda: len(pings) >= k + 3, timeout=15)
    assert all(1.6 <= g <= 2.6 for g in _gaps(pings[k:k + 3])), _gaps(pings)
    assert len(csms.csms.connections) == 1 and sim.status("ocppa")["ocppa"] is True


@pytest.mark.e2e
def test_transaction_message_attempts_and_retry_interval_set_over_ocpp_bound_the_resends(sims, runtime, tmp_path,
                                                                                          csms):
    sim = _online(sims, runtime, tmp_path, csms, "acs=1")
    assert _change(csms, "TransactionMessageAttempts", "2") == "Accepted"
    assert _change(csms, "TransactionMessageRetryInterval", "1") == "Accepted"

    def refuse(cp, payload):
        raise RuntimeError("central system cannot store the transaction")  # answered as CALLERROR InternalError
    csms.do(lambda: csms.csms.policies.__setitem__("StopTransaction", refuse))
    sim.sim_set(ev="C")
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "CARD1", "connectorId": 1})["status"] == "Accepted"
    csms.wait_received("StartTransaction")
    sim.wait_status(lambda s: s["ocppti"] is not None, keys=("ocppti",))
    sim.sim_set(ev="A")
    csms.wait_received("StopTransaction", 1)
    t1 = time.monotonic()
    csms.wait_received("StopTransaction", 2)
    t2 = time.monotonic()
    sim.wait_status(lambda s: "given up" in (s["ocpple"] or ""), keys=("ocpple",))
    assert t2 - t1 >= 0.8  # TransactionMessageRetryInterval x 1 attempt
    # Given up after the second attempt, both under the message id of the first.
    ids = [t.split('"')[1] for c in csms.csms.connections for d, t in list(c.frames)
           if d == "<" and '"StopTransaction"' in t]
    assert len(ids) == 2 and ids[0] == ids[1]
