"""Entry point of the simulated charger (both runtimes): parses the simulator's
arguments, builds the host board, adds the simulator's routes (`routes.py`) to the
HTTP server and runs the application.

  main.py --state DIR [--url URL] [--http HOST:PORT] [--set KEY=JSON]...
"""
import asyncio
import json
import sys


ARGS_ENV = "OPENWALLBOX_SIM_ARGS"


def parse_args(argv):
    opts = {"state": "sim-state", "url": None, "http": "127.0.0.1:8080", "set": [], "cut-write": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--state", "--url", "--http", "--set", "--runtime", "--cut-write") and i + 1 < len(argv):
            v = argv[i + 1]
            if a == "--set":
                opts["set"].append(v)
            else:
                opts[a[2:]] = v
            i += 2
        else:
            raise ValueError("unknown argument " + a)
    return opts


def overrides(opts):
    out = []
    if opts["url"]:
        out.append(("ocppu", opts["url"]))
        out.append(("ocppe", True))
    for item in opts["set"]:
        k, _, v = item.partition("=")
        try:
            out.append((k, json.loads(v)))
        except ValueError:
            out.append((k, v))  # a bare word is taken as a string
    return out


def power_cut_on_write(spec):
    """--cut-write NAME:N: the Nth write of NAME (a prefix: "txq/") stops half way through its temp
    file and the process freezes (prints CUT-WRITE NAME), for the tests to kill
    it there: a power cut in the middle of a flash write."""
    name, _, n = spec.partition(":")
    left = [int(n or 1)]

    def hook(wname, f, text):
        if not wname.startswith(name):
            return
        left[0] -= 1
        if left[0]:
            return
        f.write(text[:len(text) // 2])
        f.flush()
        print("CUT-WRITE " + name)
        try:
            sys.stdout.flush()
        except AttributeError:
            pass
        import time
        while True:
            time.sleep(1)
    return hook


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
        # The simulator runner passes the arguments here: the MicroPython unix
        # port aborts on a command-line argument of 256 characters or more.
        import os
        extra = os.getenv(ARGS_ENV)
        if extra:
            argv = argv + json.loads(extra)
    opts = parse_args(argv)
    import gc

    from boards.host.board import HostBoard
    from boards.host.routes import SimRoutes
    from firmware.app import App
    from firmware.compat import mem_alloc
    host, _, port = opts["http"].rpartition(":")
    # The simulated hardware (EV, meter) outlives a reboot of the application;
    # --set applies at the first start only, like a configuration tool would.
    board = HostBoard(opts["state"])
    sets = overrides(opts)
    cut = power_cut_on_write(opts["cut-write"]) if opts["cut-write"] else None

    def ready():
        print("READY http://%s:%s" % (host, port))
        try:
            sys.stdout.flush()
        except AttributeError:
            pass

    while True:
        app = App(board, opts["state"], sets)
        app.store.on_write = cut
        sets = ()
        sim = SimRoutes(board, app.store, app.api.app)
        sim.add_to(app.api)
        gc.collect()
        sim.heap_baseline = mem_alloc()
        reason = asyncio.run(app.main(host, int(port), ready))
        print("REBOOT %s" % reason)


if __name__ == "__main__":
    main()
