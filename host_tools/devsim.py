"""make sim: the development CSMS plus one simulated charger connected to it.

Prints the charger's web page and API address, shows every OCPP frame, takes
CSMS commands at the prompt (`Action {json}`), and runs until Ctrl-C.
"""
import argparse
import asyncio
import sys
import threading

from host_tools.csms import Csms, _prompt
from host_tools.launcher import NotReady, Sim


class _WholeLines:
    """stdout shared by the CSMS (event loop thread) and the charger's output reader
    (its own thread): print() writes a text and its newline separately, so each
    thread's text is held until its line is complete and goes out in one write."""

    def __init__(self, out):
        self._out = out
        self._lock = threading.Lock()
        self._pending = threading.local()

    def write(self, text):
        head, nl, tail = (getattr(self._pending, "text", "") + text).rpartition("\n")
        self._pending.text = tail
        if nl:
            with self._lock:
                self._out.write(head + nl)
                self._out.flush()
        return len(text)

    def flush(self):
        with self._lock:
            self._out.flush()

    def __getattr__(self, name):
        return getattr(self._out, name)


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
    sys.stdout = _WholeLines(sys.stdout)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        print("stopped")
