"""Charger settings from the REPL (or `mpremote exec`), without starting the charger.

    from firmware import config
    config.set(ocppu="wss://csms.example/ocpp/CP-1", ocppe=True)   # {'ocppu': True, 'ocppe': True}
    config.get("ocppu")
    config.show()                     # every readable key and its value
    config.set(amp=40)                # {'amp': 'amp: value 40 out of range 6..32'}

The keys are defined by the same code the application runs (firmware/keys.py)
into a settings registry of their own: no controller, session or server is
built, so a board with little memory can do this. The validators and the
atomic settings file are the ones the charger uses; the values apply at the
next boot, and live values (car, nrg, ...) read null here. `open(state_dir)`
picks another flash folder (default: the device's). Secrets (ocppck,
AuthorizationKey, apw) can be set but read back as None.
"""
import json

STATE_DIR = "/data"  # where boards/esp32_devkitc/main.py keeps settings.json

_settings_ = None


def _needs_charger(_setting):
    raise RuntimeError("a reboot needs the running charger")


def open(state_dir=None):  # noqa: A001 - reads well at the REPL: config.open("/data")
    """Load the settings of a flash folder; returns the registry."""
    global _settings_
    from firmware import log
    from firmware.keys import define_keys
    from firmware.settings import Settings
    from firmware.store import Store
    s = Settings(Store(state_dir or STATE_DIR), report=log.error)
    s.load()
    define_keys(s)
    s.watch("rst", _needs_charger)
    _settings_ = s
    return s


def _settings():
    if _settings_ is None:
        open()
    return _settings_


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
