"""Every configuration key of the charger, module by module: the one list the
application and the REPL config module (config.py) build. Defining keys needs
no running service, so `from firmware import config` builds nothing else."""
from firmware.api import charger_keys
from firmware.ocpp import (auth, configuration, led_keys, metering, phase_rotation, profiles, reset, session, status,
                           transactions, tx_queue)


def define_keys(settings, max_amps=32):
    """Define every key; values stored on flash are restored as each is defined."""
    session.define_keys(settings)  # OCPP connection, TLS, HeartbeatInterval, ocpps..ocpplea
    charger_keys.define_keys(settings, max_amps)  # go-e limits, commands and live values
    tx_queue.define_keys(settings)  # TransactionMessage*
    auth.define_keys(settings)  # authorization, LocalAuthListEnabled, go-e cards
    transactions.define_keys(settings)  # ConnectionTimeOut, StopTransactionOn*, acs, trx, ocppd, ocppti
    led_keys.define_keys(settings)  # BlinkRepeat, LightIntensity
    phase_rotation.define_keys(settings)  # ConnectorPhaseRotation, ocppr
    configuration.define_keys(settings)  # GetConfigurationMaxKeys, NumberOfConnectors
    reset.define_keys(settings)  # ResetRetries
    profiles.define_keys(settings)  # SupportedFeatureProfiles
    status.define_keys(settings)  # MinimumStatusDuration, ocppcs
    metering.define_keys(settings)  # MeterValue*, StopTxn*, ocppcm
