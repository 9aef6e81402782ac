"""Charger settings from the REPL (or `mpremote exec`), without starting the charger.

    from firmware import config
    config.set(ocppu="wss://csms.example/ocpp/CP-1", ocppe=True)   # {'ocppu': True, 'ocppe': True}
    config.get("ocppu")
    config.show()                     # every readable key and its value
    config.set(amp=40)                # {'amp': 'amp: value 40 out of range 6..32'}

The keys are built by the same code the application runs (App with an inert
board: nothing is driven, no task starts), so the validators and the atomic
settings file are the ones the charger uses; the values apply at the next
boot. `open(state_dir)` picks another flash folder (default: the device's).
Secrets (ocppck, AuthorizationKey, apw) can be set but read back as None.
"""
import json

STATE_DIR = "/data"  # where boards/esp32_devkitc/main.py keeps settings.json

_app = None


class _Inert:
    """A pin, PWM or ADC that does nothing: building the keys must not drive hardware."""

    def value(self, v=None):
        return 0

    def duty_u16(self, v=None):
        return 65535

    def freq(self, hz=None):
        return 1000

    def read(self):
        return 12000, 12000


class _ConfigBoard:
    model = "OpenWallbox"
    serial = None

    def __init__(self):
        from firmware.evse.drivers import Drivers
        i = _Inert()
        self.drivers = Drivers(pilot_pwm=i, pilot_adc=i, contactor=i)


def open(state_dir=None, board=None):  # noqa: A001 - reads well at the REPL: config.open("/data")
    """Load the settings of a flash folder; returns the registry."""
    global _app
    from firmware.app import App
    _app = App(board or _ConfigBoard(), state_dir or STATE_DIR)
    return _app.settings


def _settings():
    if _app is None:
        open()
    return _app.settings


def get(key):
    """The value of one key as the HTTP API shows it (secrets read as None)."""
    try:
        return _settings().api_get(key)
    except KeyError:
        s = _settings().find(key)  # OCPP names are case-insensitive
        if s is None:
            raise
        return _settings().api_get(s.api_name())


def set(**kv):  # noqa: A001 - the module's verb, like the HTTP API's /api/set
    """Validate and store each key; returns {key: True or error message}."""
    s = _settings()
    out = {}
    for k in kv:
        try:
            err = s.set(k, kv[k])
        except Exception as e:  # noqa: BLE001 - a watcher that needs the running charger (rst)
            err = "%s: only the running charger can do this (%s)" % (k, e)
        out[k] = True if err is None else err
    return out


def keys():
    """Every key readable over the API, in definition order."""
    return _settings().api_keys()


def show():
    s = _settings()
    for k in s.api_keys():
        try:
            v = s.api_get(k)
        except Exception:  # noqa: BLE001 - a live value of hardware that is not running
            v = None
        print("%s = %s" % (k, json.dumps(v)))
