"""python -m host_tools sim: run the firmware on the host with the simulated board.

  --runtime micropython|cpython (default micropython)
  --url URL          full OCPP URL including the charge point id (sets ocppu, ocppe=true)
  --http HOST:PORT   the charger's HTTP API (default 127.0.0.1:8080)
  --state DIR        the board's flash; a restart with the same DIR is a reboot
  --set KEY=JSON     any API key, repeatable
  --bundle DIR       (micropython) run the compiled .mpy bundle of `image --board host`
                     instead of the sources, as on a device

Prints `READY http://HOST:PORT` when serving. The firmware replaces this process
(exec), so killing this process is a power loss of the charger.
"""
import argparse
import json
import os
import sys

from host_tools.runtime import MICROPYTHON, ROOT, micropython_env

# Heap of the simulated board: the firmware runs from source here, which costs
# more heap than the .mpy bundle on a device (see `make bench` for the budget).
SIM_HEAP = "2M"


def build_parser():
    p = argparse.ArgumentParser(prog="python -m host_tools sim", description="Run the simulated charger.")
    p.add_argument("--runtime", choices=["micropython", "cpython"], default="micropython")
    p.add_argument("--url")
    p.add_argument("--http", default="127.0.0.1:8080")
    p.add_argument("--state", default=str(ROOT / "build" / "sim-state"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    p.add_argument("--heap", default=SIM_HEAP, help="MicroPython heap size (micropython runtime)")
    p.add_argument("--bundle", help="run from this .mpy bundle (micropython runtime)")
    p.add_argument("--cut-write", metavar="NAME:N",
                   help="(tests) freeze half way through the Nth flash write of NAME, to be killed there")
    return p


def firmware_args(args):
    out = ["--state", os.path.abspath(args.state), "--http", args.http]
    if args.url:
        out += ["--url", args.url]
    if args.cut_write:
        out += ["--cut-write", args.cut_write]
    for s in args.set:
        if "=" not in s:
            raise SystemExit("--set takes KEY=JSON, got " + s)
        out += ["--set", s]
    return out


def main(argv=None):
    args = build_parser().parse_args(argv)
    fw_args = firmware_args(args)
    main_py = str(ROOT / "boards" / "host" / "main.py")
    sys.stdout.flush()
    if args.bundle:
        if args.runtime != "micropython":
            raise SystemExit("--bundle needs --runtime micropython")
        env = micropython_env()
        env["MICROPYPATH"] = ".frozen:" + os.path.abspath(args.bundle)
        env["OPENWALLBOX_SIM_ARGS"] = json.dumps(fw_args)
        os.execve(MICROPYTHON, [MICROPYTHON, "-X", "heapsize=" + args.heap, "-m", "boards.host.main"], env)
    if args.runtime == "micropython":
        env = micropython_env()
        # Through the environment: the MicroPython unix port aborts on long arguments.
        env["OPENWALLBOX_SIM_ARGS"] = json.dumps(fw_args)
        os.execve(MICROPYTHON, [MICROPYTHON, "-X", "heapsize=" + args.heap, main_py], env)
    sys.stdout.reconfigure(line_buffering=True)
    sys.path.insert(0, str(ROOT))
    from boards.host import main as host_main
    host_main.main(fw_args)
