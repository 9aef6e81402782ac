"""python -m host_tools deploy --port PORT: copy the device bundle to a board with mpremote.

Builds build/<board>/bundle/ first when it is missing or older than its sources
(host_tools/image.py), copies it to the board's filesystem root, optionally
writes /wifi.json (--wifi SSID:PASSWORD) and applies charger settings
(--set KEY=JSON, repeatable) through the firmware's own config module, so the
values pass the same validators as over OCPP or HTTP. Settings apply at the
board's next boot; --reset reboots it at the end.

The board must already run MicroPython (make flash). mpremote connects with
`resume` (no soft reset: the unix-port virtual board of the tests would end).
Interrupting a running charger leaves its watchdog armed, so deploy first has
a timer feed it until the board is reset.
Remote paths are relative to the board's working directory, which is the
filesystem root on a device, so the bundle, wifi.json and data/ land where
main.py looks for them.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from host_tools import image
from host_tools.runtime import ROOT

MPREMOTE = [sys.executable, "-m", "mpremote"]
REMOTE_STATE_DIR = "data"  # /data on a device: firmware.config.STATE_DIR, where main.py keeps settings
MPREMOTE_TIMEOUT_S = 300


class DeployError(Exception):
    """A step that failed, with a message for the user."""


def board_build_dir(board):
    return ROOT / "build" / board


def _sources(board):
    bdir = ROOT / "boards" / board
    srcs = list(image.sources(board).values())
    if (bdir / "main.py").exists():
        srcs.append(bdir / "main.py")
    return srcs


def is_stale(board, bundle, fs=False):
    """True when the bundle (and, with fs, fs.img) is missing or older than any source it is built from."""
    bundle = Path(bundle)
    manifest = bundle.parent / "bundle-manifest.json"
    if not manifest.exists() or not bundle.is_dir():
        return True
    built = manifest.stat().st_mtime
    if fs:
        img = bundle.parent / "fs.img"
        if not img.exists() or img.stat().st_mtime < built:
            return True
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return True
    if any(not (bundle / rel).is_file() for rel, _ in files):
        return True
    return any(p.stat().st_mtime > built for p in _sources(board))


def ensure_built(board, fs=False):
    """The board's bundle directory, rebuilt first if stale; returns (bundle path, rebuilt?)."""
    bundle = board_build_dir(board) / "bundle"
    if not is_stale(board, bundle, fs):
        return bundle, False
    summary = image.build(board, fs=fs)
    return Path(summary["bundle"]), True


def bundle_files(bundle):
    """Relative paths of every file in the bundle, as the manifest lists them when there is one."""
    bundle = Path(bundle)
    manifest = bundle.parent / "bundle-manifest.json"
    if manifest.exists():
        return [rel for rel, _ in json.loads(manifest.read_text())["files"]]
    return sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())


def parse_setting(text):
    """'KEY=JSON' -> (key, value); raises DeployError with the reason."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise DeployError("--set %r: expected KEY=JSON, e.g. ocpph=30 or 'fna=\"garage\"'" % text)
    try:
        return key, json.loads(raw)
    except ValueError:
        raise DeployError("--set %s: %r is not JSON (strings need quotes: %s='\"text\"')" % (key, raw, key))


def parse_wifi(text):
    """'SSID:PASSWORD' -> the wifi.json dict (the password may contain ':', the SSID may not)."""
    ssid, sep, password = text.partition(":")
    if not ssid:
        raise DeployError("--wifi %r: expected SSID:PASSWORD" % text)
    return {"ssid": ssid, "password": password}


def mpremote(port, *args, timeout=MPREMOTE_TIMEOUT_S):
    """Run one mpremote session on the board; returns its stdout, raises DeployError on failure."""
    cmd = MPREMOTE + ["connect", port, "resume", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError("mpremote did not finish within %d s on %s: is the board answering?" % (timeout, port))
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "exit status %d" % proc.returncode).splitlines()
        raise DeployError("mpremote failed on %s: %s" % (port, detail[-1]))
    return proc.stdout


# Runs on the board: once main.py has started the watchdog nothing stops it, and
# the interrupted charger no longer feeds it; a timer does until the next reset.
# Boards without machine.WDT/Timer (the unix port) skip it.
_KEEPALIVE_CODE = """try:
    from machine import WDT, Timer
    _deploy_wdt = WDT(timeout=%d)
    _deploy_timer = Timer(0)
    _deploy_timer.init(period=1000, callback=lambda t: _deploy_wdt.feed())
    print('DEPLOY-KEEPALIVE on')
except Exception:
    print('DEPLOY-KEEPALIVE off')
"""
WDT_TIMEOUT_MS = 10000  # boards/esp32_devkitc/main.py WDT_MS


# Runs on the board: applies the settings with the charger's own registry and
# prints one line the host can parse, whatever else the import logs.
_SET_CODE = """import json
from firmware import config
config.open(%r)
print('DEPLOY-SET ' + json.dumps(config.set(**json.loads(%r))))
"""


def apply_settings(port, settings, state_dir=REMOTE_STATE_DIR):
    """config.set(**settings) on the board; returns {key: True or error message}."""
    out = mpremote(port, "exec", _SET_CODE % (state_dir, json.dumps(settings)))
    for line in out.splitlines():
        if line.startswith("DEPLOY-SET "):
            return json.loads(line[len("DEPLOY-SET "):])
    raise DeployError("the board did not apply the settings:\n" + out.strip())


def deploy(port, board="esp32_devkitc", bundle=None, wifi=None, settings=None, reset=False, say=print):
    """Copy the bundle (building it first if needed), write wifi.json, apply settings.

    Returns True when every setting was accepted. Raises DeployError when a step fails.
    """
    settings = settings or {}
    if bundle is None:
        bundle, rebuilt = ensure_built(board)
        say("bundle  %s (%s)" % (bundle, "rebuilt" if rebuilt else "up to date"))
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise DeployError("no bundle at %s: run make image BOARD=%s" % (bundle, board))
    files = bundle_files(bundle)
    size = sum((bundle / rel).stat().st_size for rel in files)
    mpremote(port, "exec", _KEEPALIVE_CODE % WDT_TIMEOUT_MS)
    # "DIR/." copies the bundle's contents, creating its folders on the board.
    mpremote(port, "fs", "cp", "-r", str(bundle) + "/.", ":")
    say("copied  %d files, %d bytes to %s:/" % (len(files), size, port))
    if wifi is not None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "wifi.json"
            local.write_text(json.dumps(wifi))
            mpremote(port, "fs", "cp", str(local), ":wifi.json")
        say("wifi    /wifi.json written (ssid %r)" % wifi["ssid"])
    ok = True
    if settings:
        result = apply_settings(port, settings)
        for key in settings:
            verdict = result.get(key, "no answer from the board")
            ok = ok and verdict is True
            say("set     %s = %s: %s" % (key, json.dumps(settings[key]), "ok" if verdict is True else verdict))
    if reset:
        mpremote(port, "reset")
        say("reset   the board is restarting with the new bundle")
    else:
        say("done    reset the board (mpremote connect %s reset) to run the new bundle" % port)
    return ok


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools deploy", description=__doc__.split("\n")[0])
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--board", default="esp32_devkitc")
    p.add_argument("--bundle", help="deploy this bundle folder as it is (default: build/<board>/bundle, "
                                    "rebuilt when stale)")
    p.add_argument("--wifi", metavar="SSID:PASSWORD", help="write /wifi.json")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=JSON",
                   help="a charger setting, e.g. --set ocpph=30 --set 'ocppu=\"wss://csms/ocpp/CP-1\"' "
                        "(repeatable)")
    p.add_argument("--reset", action="store_true", help="hard-reset the board at the end")
    args = p.parse_args(argv)
    try:
        # Bad arguments are refused before anything is written to the board.
        settings = dict(parse_setting(s) for s in args.settings)
        wifi = parse_wifi(args.wifi) if args.wifi is not None else None
        ok = deploy(args.port, args.board, args.bundle, wifi, settings, args.reset)
    except DeployError as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 1
    if not ok:
        print("deploy: some settings were refused (see above); the rest were applied", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
