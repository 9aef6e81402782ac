"""make sim: the development CSMS plus one simulated charger connected to it.

Prints the charger's web page and API address, shows every OCPP frame, takes
CSMS commands at the prompt (`Action {json}`), and runs until Ctrl-C.
"""
import argparse
import asyncio
import sys

from host_tools.csms import Csms, _prompt
from host_tools.launcher import NotReady, Sim


def _show(line):
    if line.startswith("READY "):
        url = line.split(" ", 1)[1]
        print("\n  charger web page:  %s/\n  charger API:       %s/api/status\n"
              "  simulated world:   %s/sim/status  (e.g. %s/sim/set?ev=%%22C%%22)\n" % (url, url, url, url),
              flush=True)
    print("charger| " + line, flush=True)


async def run(args):
    csms = await Csms(args.csms_host, args.csms_port).start()
    print("development CSMS on ws://%s:%d/ocpp/<charge point id>" % (args.csms_host, csms.port), flush=True)
    host, _, port = args.http.rpartition(":")
    sim = Sim(args.runtime, args.state, url=csms.url(args.id), http_port=int(port), http_host=host, on_line=_show)
    try:
        try:
            await sim.astart()
        except NotReady:
            print("the charger did not start (its output is above)", flush=True)
            return
        if sys.stdin.isatty():
            await _prompt(csms)
        await asyncio.get_running_loop().run_in_executor(None, sim.proc.wait)
    finally:
        sim.kill()
        await csms.stop()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools devsim")
    p.add_argument("--runtime", choices=["micropython", "cpython"], default="micropython")
    p.add_argument("--http", default="127.0.0.1:8080")
    p.add_argument("--csms-host", default="127.0.0.1")
    p.add_argument("--csms-port", type=int, default=9000)
    p.add_argument("--id", default="SIM-CP1", help="charge point id")
    p.add_argument("--state", default="build/sim-state")
    args = p.parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        print("stopped")
