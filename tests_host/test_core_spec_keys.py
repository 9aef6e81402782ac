"""Every configuration key of OCPP 1.6 section 9.1 (Core profile) is defined by
the assembled firmware and reported by GetConfiguration with its accessibility.

This checks the whole app, so it depends on every module that owns 9.1 keys
(core, session, transactions/authorization, metering)."""
import pytest

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
