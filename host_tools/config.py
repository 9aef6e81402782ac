"""python -m host_tools config PORT get [KEY ...] | set KEY=JSON ...: a connected board's settings.

Runs the firmware's own REPL configuration module (firmware/config.py) on the
board through mpremote, so every value passes the charger's validators and
lands in the charger's settings file (/data/settings.json):

    python -m host_tools config /dev/ttyUSB0 get                 # every key
    python -m host_tools config /dev/ttyUSB0 get ocpph ocppu
    python -m host_tools config /dev/ttyUSB0 set ocpph=60 'ocppu="wss://csms/ocpp/CP-1"'

Secrets (ocppck, AuthorizationKey, apw) read back as "***" when set. A refused
value is printed with the charger's message and the command exits 1 (the
accepted ones are kept). mpremote connects with `resume`: a running charger is
interrupted to reach the REPL (its outputs put in their safe state, its
watchdog fed, as deploy does) and stays stopped until the board restarts;
settings written from the REPL apply at the next boot. --reset restarts the
board at the end.
"""
import argparse
import json
import sys

from host_tools import deploy
from host_tools.deploy import DeployError, mpremote

# Runs on the board with the public functions of firmware.config; the registry
# config.open() returns says which keys are secret or need a reboot (when the
# settings module names those flags) so secrets read back masked.
_CODE = """import json
from firmware import config
_reg = config.open(%(state)r)
try:
    from firmware.settings import SECRET as _S, REBOOT as _R
except ImportError:
    _S = _R = 0
def _flags(k):
    try:
        s = _reg.find(k)
        return (s.flags, s.value) if s is not None else (0, None)
    except Exception:
        return 0, None
def _read(k):
    try:
        v = config.get(k)
    except KeyError:
        return {'error': k + ': unknown key'}
    f, raw = _flags(k)
    e = {'value': v}
    if f & _S:
        e = {'value': '***' if raw not in (None, '') else None, 'secret': True}
    if f & _R:
        e['reboot'] = True
    return e
_set = json.loads(%(values)r)
_out = {'set': config.set(**_set) if _set else {}}
_keys = json.loads(%(keys)r) or config.keys()
_out['get'] = [[_k, _read(_k)] for _k in _keys]
print('CONFIG ' + json.dumps(_out))
"""


def parse_assignment(text):
    """'KEY=JSON' -> (key, value); raises DeployError with the reason."""
    try:
        return deploy.parse_setting(text)
    except DeployError as e:
        raise DeployError(str(e).replace("--set ", "set ", 1))


def run_on_board(port, values=None, keys=(), state_dir=deploy.REMOTE_STATE_DIR):
    """Set values (if any) then read keys (the set ones, or the given ones, or all) on the board.

    Returns {"set": {key: True or message}, "get": [[key, {"value": ..., "secret"?, "reboot"?} or {"error": ...}]],
    "safe": the interrupted charger's outputs were put in their safe state}
    with "get" in the order asked (the board's key order when all are read).
    """
    code = deploy._KEEPALIVE_CODE % deploy.WDT_TIMEOUT_MS + _CODE % {
        "state": state_dir, "values": json.dumps(values or {}),
        "keys": json.dumps(list(values) if values else list(keys))}
    out = mpremote(port, "exec", code)
    result = deploy._tagged(out, "CONFIG", "run its configuration module")
    result["safe"] = "DEPLOY-SAFE" in out
    return result


def _show(key, entry):
    if "error" in entry:
        return entry["error"]
    text = "%s = %s" % (key, json.dumps(entry["value"]))
    if entry.get("secret"):
        text += "  (secret: %s)" % ("set, shown masked" if entry["value"] else "not set")
    return text


def report(result, values, say=print):
    """Print the outcome; returns the exit status (1 when a value was refused or a key is unknown)."""
    status = 0
    for key, entry in result["get"]:
        if key in result["set"]:
            verdict = result["set"][key]
            if verdict is not True:
                status = 1
                say("refused %s = %s: %s" % (key, json.dumps(values[key]), verdict))
                continue
            say("set     " + _show(key, entry))
        else:
            if "error" in entry:
                status = 1
            say(_show(key, entry))
    return status


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools config", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="KEY is an API name (amp, ocppu) or an OCPP name (HeartbeatInterval); "
                                       "JSON values: 60, true, '\"text\"'.")
    p.add_argument("port", help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("action", choices=["get", "set"])
    p.add_argument("items", nargs="*", metavar="KEY or KEY=JSON")
    p.add_argument("--state", default=deploy.REMOTE_STATE_DIR, help="the board's state folder (default: data, "
                                                                       "i.e. /data on a device)")
    p.add_argument("--reset", action="store_true", help="restart the board at the end (the charger runs again, "
                                                        "with the new settings)")
    args = p.parse_args(argv)
    try:
        values = {}
        if args.action == "set":
            if not args.items:
                raise DeployError("set needs at least one KEY=JSON, e.g. set ocpph=60")
            values = dict(parse_assignment(s) for s in args.items)  # refused before the board is touched
        was_running = deploy.probe(args.port)
        result = run_on_board(args.port, values, args.items if not values else (), args.state)
        if result["safe"]:
            print(deploy.SAFE_NOTE)
        status = report(result, values)
        accepted = [k for k, v in result["set"].items() if v is True]
        if accepted:
            flagged = [k for k, e in result["get"] if k in accepted and e.get("reboot")]
            print("reboot  needed: settings written from the REPL apply at the next boot%s" % (
                " (%s also needs one when changed over OCPP)" % ", ".join(flagged) if flagged else ""))
        if args.reset:
            mpremote(args.port, "reset")
            print("reset   the board is restarting")
        elif was_running:
            print("note    the charger was stopped to reach the REPL; it starts again when the "
                  "board restarts: --reset, or mpremote connect %s reset" % args.port)
    except DeployError as e:
        print("config: %s" % e, file=sys.stderr)
        return 1
    if status:
        print("config: %s" % ("some values were refused (see above); the others were saved" if values
                              else "unknown key (see above)"), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
