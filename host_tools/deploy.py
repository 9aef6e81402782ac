"""python -m host_tools deploy --port PORT: bring a board's application files up to date with mpremote.

Builds build/<board>/bundle/ first when it is missing or older than its sources
(host_tools/image.py), then compares the board with it: one mpremote session
hashes (SHA-256) every file the bundle manages on the board, and a second one
copies only the files whose hash differs and removes the ones the bundle no
longer has (a `.py` left beside or instead of its `.mpy`, a removed module, the
folder of another board). The state on the board is never touched: /data
(settings, queue, logs, certificates), /wifi.json, /meter.json, /boot.py.
Optionally writes /wifi.json (--wifi SSID:PASSWORD) and applies charger
settings (--set KEY=JSON, repeatable) through the firmware's own config module,
so the values pass the same validators as over OCPP or HTTP. Settings apply at
the board's next boot; --reset reboots it at the end.

--romfs (make deploy ROMFS=1), for boards without PSRAM: the bundle goes into
the board's ROMFS partition as one image (build/<board>/romfs.img, written by
`mpremote romfs deploy`; mounted at /rom, where bytecode runs from flash), and
only main.py to the filesystem; a filesystem copy of the bundle left by an
earlier deploy is removed, since it comes before /rom on sys.path and would
shadow it. The state is kept as above. Needs MicroPython >= 1.25 built with a
ROMFS partition.

The board must already run MicroPython (make flash). mpremote connects with
`resume` (no soft reset: the unix-port virtual board of the tests would end).
Interrupting a running charger leaves its watchdog armed, so deploy first has
a timer feed it until the board is reset.
Remote paths are relative to the board's working directory, which is the
filesystem root on a device, so the bundle, wifi.json and data/ land where
main.py looks for them.
"""
import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host_tools import image
from host_tools.runtime import ROOT

MPREMOTE = [sys.executable, "-m", "mpremote"]
REMOTE_STATE_DIR = "data"  # /data on a device: firmware.config.STATE_DIR, where main.py keeps settings
MPREMOTE_TIMEOUT_S = 300
PROBE_TIMEOUT_S = 5.0
# Files and folders at the board's root that belong to the user or the charger's state, never to the bundle.
KEPT = ("data", "wifi.json", "meter.json", "boot.py")


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


def is_stale(board, bundle, fs=False, romfs=False):
    """True when the bundle (and, with fs, fs.img; with romfs, romfs.img) is missing or older than any
    source it is built from."""
    bundle = Path(bundle)
    manifest = bundle.parent / "bundle-manifest.json"
    if not manifest.exists() or not bundle.is_dir():
        return True
    built = manifest.stat().st_mtime
    for wanted, name in ((fs, "fs.img"), (romfs, "romfs.img")):
        img = bundle.parent / name
        if wanted and (not img.exists() or img.stat().st_mtime < built):
            return True
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return True
    if any(not (bundle / rel).is_file() for rel, _ in files):
        return True
    return any(p.stat().st_mtime > built for p in _sources(board))


def ensure_built(board, fs=False, romfs=False):
    """The board's bundle directory, rebuilt first if stale; returns (bundle path, rebuilt?)."""
    bundle = board_build_dir(board) / "bundle"
    if not is_stale(board, bundle, fs, romfs):
        return bundle, False
    summary = image.build(board, fs=fs, romfs=romfs)
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


def _serial_ports():
    return sorted(glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*") + glob.glob("/dev/cu.usb*"))


def probe(port, timeout=PROBE_TIMEOUT_S):
    """Check that a MicroPython prompt answers on port; raises DeployError saying what is wrong.

    Returns True when a running program (the charger) was interrupted to reach the prompt.

    mpremote itself waits forever for a board that stays silent, hence this check first.
    mpremote's own port names (a0, u0, rfc2217://...) are left to mpremote.
    """
    if not port.startswith("/"):
        return False
    if not os.path.exists(port):
        found = _serial_ports()
        raise DeployError("no board at %s: the port does not exist. Is the board plugged in? %s" % (
            port, "Serial ports now: " + ", ".join(found) if found else "No serial port is present."))
    import serial
    try:
        ser = serial.Serial(port, 115200, timeout=0.2)
    except (serial.SerialException, OSError) as e:
        raise DeployError("cannot open %s: %s (is another program, such as make monitor, using it?)" % (port, e))
    try:
        ser.write(b"\r\x03\x03")  # stop a running program: the prompt answers
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen += ser.read(256)
            if seen.rstrip().endswith(b">"):
                return b"KeyboardInterrupt" in seen
    except (serial.SerialException, OSError) as e:
        raise DeployError("the board on %s went away: %s" % (port, e))
    finally:
        ser.close()
    raise DeployError("the board on %s does not answer (no MicroPython prompt within %g s): is MicroPython "
                      "flashed (make flash) and is no other program using the port?" % (port, timeout))


def mpremote_command(port, *args):
    """The command line of one mpremote session on the board."""
    return MPREMOTE + ["connect", port, "resume", *args]


def mpremote(port, *args, timeout=MPREMOTE_TIMEOUT_S):
    """Run one mpremote session on the board; returns its stdout, raises DeployError on failure."""
    cmd = mpremote_command(port, *args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError("mpremote did not finish within %d s on %s: is the board answering?" % (timeout, port))
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "exit status %d" % proc.returncode).splitlines()
        raise DeployError("mpremote failed on %s: %s" % (port, detail[-1]))
    return proc.stdout


def _tagged(out, tag, what):
    """The JSON after `tag ` on its line of the board's output."""
    for line in out.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1:])
    raise DeployError("the board did not %s:\n%s" % (what, out.strip()))


# Runs on the board: the interrupted charger drives nothing any more, so its
# outputs are put in their safe state (pilot steady +12 V: no current offered;
# contactor open) with the pin map of the board class its main.py left in the
# REPL's globals (the most derived one). Once main.py has started the watchdog
# nothing stops it and the charger no longer feeds it; a timer does until the
# next reset. Boards without machine.Pin/WDT/Timer (the unix port) skip these.
_KEEPALIVE_CODE = """try:
    from machine import Pin, PWM
    _deploy_board = None
    for _v in list(globals().values()):
        if isinstance(_v, type) and hasattr(_v, 'PINS'):
            if _deploy_board is None or issubclass(_v, _deploy_board):
                _deploy_board = _v
    if _deploy_board is not None:
        PWM(Pin(_deploy_board.PINS.CP_PWM), freq=1000, duty_u16=65535)
        Pin(_deploy_board.PINS.CONTACTOR, Pin.OUT, value=0)
        print('DEPLOY-SAFE')
except Exception:
    pass
try:
    from machine import WDT, Timer
    _deploy_wdt = WDT(timeout=%d)
    _deploy_timer = Timer(0)
    _deploy_timer.init(period=1000, callback=lambda t: _deploy_wdt.feed())
    print('DEPLOY-KEEPALIVE on')
except Exception:
    print('DEPLOY-KEEPALIVE off')
"""
WDT_TIMEOUT_MS = 10000  # boards/esp32_devkitc/main.py WDT_MS

# Runs on the board: the SHA-256 of every file under the bundle's folders and of
# the root files it manages, and those folders and the ones in them, as one JSON line.
_SCAN_CODE = """import os, json, hashlib, binascii
def _dh(p, b=bytearray(512)):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(b if n == 512 else memoryview(b)[:n])
    return binascii.hexlify(h.digest()).decode()
def _dw(d, files, dirs):
    for e in os.ilistdir(d):
        p = d + '/' + e[0]
        if e[1] == 0x4000:
            dirs.append(p)
            _dw(p, files, dirs)
        else:
            files[p] = _dh(p)
_f = {}
_d = []
for _n in os.listdir():
    if _n in %r:
        if os.stat(_n)[0] & 0x4000:
            _d.append(_n)
            _dw(_n, _f, _d)
        else:
            _f[_n] = _dh(_n)
print('DEPLOY-SCAN ' + json.dumps({'files': _f, 'dirs': _d}))
"""

# Runs on the board before the copy: stale files out, empty folders out, new folders in.
_PREPARE_CODE = """import os
for _p in %r:
    os.remove(_p)
for _p in %r:
    os.rmdir(_p)
for _p in %r:
    try:
        os.mkdir(_p)
    except OSError:
        pass
print('DEPLOY-PREPARED')
"""


def managed_names(files):
    """Root names the bundle owns: its top folders, its root files and their .py/.mpy twins."""
    names = set()
    for rel in files:
        top = rel.split("/", 1)[0]
        if "/" in rel:
            names.add(top)
            stem = top
        else:
            names.add(top)
            stem = top.rsplit(".", 1)[0]
        names.update((stem + ".py", stem + ".mpy"))
    return sorted(n for n in names if n not in KEPT)


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def plan(bundle, files, on_board):
    """What to do: {"copy": [rel], "remove": [rel], "rmdir": [dir], "mkdir": [dir]} from the board's scan."""
    board_files = on_board["files"]
    board_dirs = set(on_board["dirs"])
    wanted = set(files)
    copy = [rel for rel in files if board_files.get(rel) != sha256_file(Path(bundle) / rel)]
    remove = sorted(p for p in board_files if p not in wanted and p.split("/", 1)[0] not in KEPT)
    need_dirs = set()
    for rel in files:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            need_dirs.add("/".join(parts[:i]))
    mkdir = sorted((d for d in need_dirs if d not in board_dirs), key=lambda d: d.count("/"))
    rmdir = sorted((d for d in board_dirs if d not in need_dirs and d.split("/", 1)[0] not in KEPT),
                   key=lambda d: -d.count("/"))
    return {"copy": copy, "remove": remove, "rmdir": rmdir, "mkdir": mkdir}


def romfs_args(img):
    """mpremote's arguments that write a ROMFS image into the board's first ROMFS partition."""
    return ["romfs", "deploy", str(img)]


def romfs_plan(bundle, files, on_board):
    """The filesystem's share of a ROMFS deploy: main.py copied (when it changed), every other file and
    folder of the bundle removed from the filesystem (it would shadow /rom), the state kept."""
    return plan(bundle, [rel for rel in files if rel == "main.py"], on_board)


def write_romfs(port, bundle, img=None):
    """Write the bundle's ROMFS image (img, or one built from the bundle) into the board's ROMFS
    partition; returns its size. DeployError when the board has none."""
    with tempfile.TemporaryDirectory() as tmp:
        if img is None:
            img = Path(tmp) / "romfs.img"
            image.build_romfs_image(bundle, img)
        try:
            mpremote(port, *romfs_args(img))
        except DeployError as e:
            text = str(e)
            if "ROMFS is not enabled" in text or "partition not found" in text:
                raise DeployError("the board on %s has no ROMFS partition (%s): flash a MicroPython >= 1.25 "
                                  "built with one, or deploy without ROMFS=1 (needs a board with PSRAM); nothing "
                                  "was changed on the board" % (port, text.rsplit(": ", 1)[-1]))
            raise
        return Path(img).stat().st_size


SAFE_NOTE = "safe    the interrupted charger's outputs: pilot steady +12 V, contactor open"


def scan(port, files):
    """Make the interrupted charger's outputs safe, arm the watchdog keepalive and hash the files the
    bundle manages on the board; returns (scan, outputs made safe?)."""
    out = mpremote(port, "exec", _KEEPALIVE_CODE % WDT_TIMEOUT_MS + _SCAN_CODE % (managed_names(files),))
    return _tagged(out, "DEPLOY-SCAN", "list its files"), "DEPLOY-SAFE" in out


def sync(port, bundle, steps):
    """One mpremote session: remove, create folders, copy the changed files."""
    args = ["exec", _PREPARE_CODE % (steps["remove"], steps["rmdir"], steps["mkdir"])]
    for rel in steps["copy"]:
        # -f: the hashes were compared already; mpremote need not hash each file again.
        args += ["+", "fs", "cp", "-f", str(Path(bundle) / rel), ":" + rel]
    out = mpremote(port, *args)
    if "DEPLOY-PREPARED" not in out:
        raise DeployError("the board did not prepare its folders:\n" + out.strip())


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
    return _tagged(out, "DEPLOY-SET", "apply the settings")


def deploy(port, board="esp32_devkitc", bundle=None, wifi=None, settings=None, reset=False, say=print,
           romfs=False):
    """Bring the board's files up to date with the bundle (built first if needed), write wifi.json,
    apply settings. With romfs, the bundle goes into the ROMFS partition and main.py to the filesystem.

    Returns True when every setting was accepted. Raises DeployError when a step fails.
    """
    t0 = time.monotonic()
    settings = settings or {}
    img = None
    if bundle is None:
        bundle, rebuilt = ensure_built(board, romfs=romfs)
        say("bundle  %s (%s)" % (bundle, "rebuilt" if rebuilt else "up to date"))
        img = Path(bundle).parent / "romfs.img"
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise DeployError("no bundle at %s: run make image BOARD=%s" % (bundle, board))
    files = bundle_files(bundle)
    probe(port)
    on_board, safe = scan(port, files)
    if safe:
        say(SAFE_NOTE)
    if romfs:
        # The partition first: a board without one is refused before its filesystem is changed.
        rom_bytes = write_romfs(port, bundle, img)
        say("romfs   %d bytes written to the ROMFS partition (mounted at /rom)" % rom_bytes)
        steps = romfs_plan(bundle, files, on_board)
    else:
        steps = plan(bundle, files, on_board)
    if steps["copy"] or steps["remove"] or steps["mkdir"] or steps["rmdir"]:
        sync(port, bundle, steps)
    size = sum((bundle / rel).stat().st_size for rel in steps["copy"])
    named = ": " + ", ".join(steps["copy"]) if 0 < len(steps["copy"]) <= 5 else ""
    total = len([rel for rel in files if rel == "main.py"]) if romfs else len(files)
    say("copied  %d of %d files, %d bytes to %s:/%s" % (len(steps["copy"]), total, size, port, named))
    if steps["remove"] or steps["rmdir"]:
        removed = ", ".join(steps["remove"] + [d + "/" for d in steps["rmdir"]])
        if romfs:
            say("removed the filesystem copy of the bundle, which would shadow /rom: %s" % removed)
        else:
            say("removed %s" % removed)
    if wifi is not None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "wifi.json"
            local.write_text(json.dumps(wifi))
            mpremote(port, "fs", "cp", "-f", str(local), ":wifi.json")
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
    elif steps["copy"] or steps["remove"] or settings or wifi is not None:
        say("next    reset the board (mpremote connect %s reset) to run the new files" % port)
    say("done    in %.1f s" % (time.monotonic() - t0))
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
    p.add_argument("--romfs", action="store_true", help="the bundle into the board's ROMFS partition (boards "
                                                        "without PSRAM), main.py to the filesystem")
    args = p.parse_args(argv)
    try:
        # Bad arguments are refused before anything is written to the board.
        settings = dict(parse_setting(s) for s in args.settings)
        wifi = parse_wifi(args.wifi) if args.wifi is not None else None
        if args.bundle is None:
            image.check_board(args.board)
        ok = deploy(args.port, args.board, args.bundle, wifi, settings, args.reset, romfs=args.romfs)
    except DeployError as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 1
    if not ok:
        print("deploy: some settings were refused (see above); the rest were applied", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
