"""make sim: the development CSMS plus one simulated charger connected to it.

Prints the charger's web page and API address, shows every OCPP frame, takes
CSMS commands at the prompt (`Action {json}`), and runs until Ctrl-C.
"""
import argparse
import asyncio
import sys

from host_tools.csms import Csms, _prompt


async def _pump(stream, prefix):
    while True:
        line = await stream.readline()
        if not line:
            return
        text = line.decode(errors="replace").rstrip()
        if text.startswith("READY "):
            url = text.split(" ", 1)[1]
            print("\n  charger web page:  %s/\n  charger API:       %s/api/status\n"
                  "  simulated world:   %s/sim/status  (e.g. %s/sim/set?ev=%%22C%%22)\n" % (url, url, url, url),
                  flush=True)
        print(prefix + text, flush=True)


async def run(args):
    csms = await Csms(args.csms_host, args.csms_port).start()
    print("development CSMS on ws://%s:%d/ocpp/<charge point id>" % (args.csms_host, csms.port), flush=True)
    cmd = [sys.executable, "-m", "host_tools", "sim", "--runtime", args.runtime, "--url", csms.url(args.id),
           "--http", args.http, "--state", args.state]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    pump = asyncio.create_task(_pump(proc.stdout, "charger| "))
    try:
        if sys.stdin.isatty():
            await _prompt(csms)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        pump.cancel()
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
