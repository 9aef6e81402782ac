"""Benchmarks of the local HTTP API: its own heap cost on MicroPython, run from
the .mpy bundle (built from the repo as for the device), and /api/status latency
of a running simulator.

run() returns a dict of figures (`python -m host_tools bench --only http`):
  http_import_microdot_bytes  heap held after importing microdot (after gc)
  http_import_api_bytes       heap held after then importing firmware.api.http,
                              charger_keys and page
  http_import_heap_bytes      the two together: the import cost of the HTTP layer
  http_server_heap_bytes      heap held by one HttpApi (microdot app, its 3
                              device routes) built over the charger's settings
  http_listen_heap_bytes      heap held once it listens (socket, server task)
  http_request_alloc_bytes    bytes allocated to serve one /api/status?filter=...
                              (an evcc-style poll), from accept to close: gc off
                              for each request, external client, nothing else
                              running; median over the requests
  http_status_all_alloc_bytes the same for the full /api/status (every key)
  http_set_alloc_bytes        the same for /api/set?amp=16
  http_heap_from              what the heap figures ran from
  status_median_ms            median latency of /api/status?filter=... while a
  status_p95_ms               transaction runs with 1-second MeterValues
  control_tick_gap_max_ms     meanwhile, the longest gap between two control
                              ticks (20 ms period): what the HTTP load costs
                              the control loop
  latency_condition           what the charger was doing while measured
  page_bytes, page_gzip_bytes size of the status page
The firmware modules the rest of the charger needs anyway (settings, log,
compat, asyncio) are imported before the baseline: they are not the HTTP
layer's cost.
"""
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request

from host_tools.runtime import MICROPYTHON

HEAP = "512K"
FILTER = "car,amp,nrg,wh,eto,alw,acu,trx"
_STEPS = (("http_request_alloc_bytes", "/api/status?filter=" + FILTER),
          ("http_status_all_alloc_bytes", "/api/status"),
          ("http_set_alloc_bytes", "/api/set?amp=16"))

_ORDER = ("http_import_heap_bytes", "http_import_microdot_bytes", "http_import_api_bytes", "http_server_heap_bytes",
          "http_listen_heap_bytes") + tuple(name for name, _ in _STEPS) + ("http_heap_from",)

# Runs under MicroPython from the bundle. Prints MEASURE <i> when it has
# disabled gc for a request of step i (the client then sends it) and RESULT at the end.
_HEAP_SCRIPT = r"""
import gc, sys, json, asyncio
import firmware.compat, firmware.log, firmware.settings
firmware.log.verbose = False
gc.collect(); a0 = gc.mem_alloc()
import microdot
gc.collect(); a1 = gc.mem_alloc()
from firmware.api import http, charger_keys, page
gc.collect(); a2 = gc.mem_alloc()
from boards.host.board import HostBoard
from firmware.app import App
app = App(HostBoard(), %(state)r)
app.api = None
gc.collect(); c0 = gc.mem_alloc()
api = http.HttpApi(app.settings, page.page)
gc.collect(); c1 = gc.mem_alloc()
out = {"http_import_microdot_bytes": a1 - a0, "http_import_api_bytes": a2 - a1,
       "http_import_heap_bytes": a2 - a0, "http_server_heap_bytes": c1 - c0,
       "http_heap_from": "bundle (.mpy), -X heapsize=%(heap)s"}
if not getattr(http, "__file__", ".mpy").endswith(".mpy"):
    raise ImportError("firmware.api.http not from the bundle: " + http.__file__)
done = [0]
orig = api.app.handle_request
async def counted(reader, writer):
    await orig(reader, writer)
    done[0] += 1
api.app.handle_request = counted
async def until(n):
    while done[0] < n:
        await asyncio.sleep_ms(1)
async def main():
    asyncio.create_task(api.serve("127.0.0.1", %(port)d))
    while not api.listening():
        await asyncio.sleep_ms(5)
    gc.collect()
    out["http_listen_heap_bytes"] = gc.mem_alloc() - c1
    print("LISTENING")
    target = 0
    for i, name in enumerate(%(names)r):
        target += %(warm)d
        await until(target)
        got = []
        for j in range(%(n)d):
            # One request per window: the garbage of one must fit the heap.
            gc.collect(); gc.disable()
            print("MEASURE", i)
            b0 = gc.mem_alloc()
            target += 1
            await until(target)
            got.append(gc.mem_alloc() - b0)
            gc.enable()
        got.sort()
        out[name] = got[len(got) // 2]  # the median: an odd request may grow a buffer once
    print("RESULT", json.dumps(out))
    api.shutdown()
asyncio.run(main())
"""


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        r.read()


def _bundle(tmp):
    """A bundle of its own (the shared build/host/bundle may be rebuilt meanwhile)."""
    from host_tools import image
    out = os.path.join(tmp, "bundle")
    image.build_bundle("host", out)
    return out


def heap_figures(quick=False):
    """The HTTP layer's heap on MicroPython, from the .mpy bundle."""
    n = 3 if quick else 10
    warm = 2
    from host_tools.launcher import free_port
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:" + _bundle(d)  # the bundle only: no .py sources
        os.mkdir(os.path.join(d, "flash"))
        code = _HEAP_SCRIPT % {"state": os.path.join(d, "flash"), "port": port, "n": n, "warm": warm, "heap": HEAP,
                               "names": tuple(name for name, _ in _STEPS)}
        proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + HEAP, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=os.path.join(d, "flash"))
        lines = []
        try:
            def expect(prefix):
                for line in proc.stdout:
                    lines.append(line.rstrip("\n"))
                    if line.startswith(prefix):
                        return line
                raise RuntimeError("micropython http bench ended early:\n" + "\n".join(lines[-30:]))
            expect("LISTENING")
            base = "http://127.0.0.1:%d" % port
            for i, (_, path) in enumerate(_STEPS):
                for _ in range(warm):
                    _get(base + path)
                for _ in range(n):
                    expect("MEASURE %d" % i)
                    _get(base + path)
            got = json.loads(expect("RESULT ")[7:])
            proc.wait(10)
            return {k: got[k] for k in _ORDER}
        except OSError as e:
            proc.kill()
            lines.extend(proc.stdout.read().splitlines())
            raise RuntimeError("micropython http bench: %s\n%s" % (e, "\n".join(lines[-30:])))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def status_latency(runtime="micropython", n=200, window_s=5):
    """While a transaction runs with 1-second MeterValues sampling, against a real CSMS."""
    from host_tools.launcher import CsmsThread, Sim
    csms = CsmsThread()
    with tempfile.TemporaryDirectory() as d:
        sim = Sim(runtime, d, url=csms.url("BENCH"), sets=["ocppi=1"]).start()
        try:
            sim.sim_set(ev="C")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (sim.sim_status()["contactor"]
                                                       and csms.received("MeterValues", "BENCH")):
                time.sleep(0.1)
            mv0 = len(csms.received("MeterValues", "BENCH"))
            cond = "transaction charging, MeterValues every 1 s" \
                if sim.sim_status()["contactor"] and mv0 else "no transaction could be started"
            url = sim.base + "/api/status?filter=" + FILTER
            sim.sim_set(tick_gap_reset=True)
            times = []
            t_end = time.monotonic() + window_s  # several sampling periods, whatever n is
            while len(times) < n or time.monotonic() < t_end:
                t0 = time.perf_counter()
                _get(url)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            mv = len(csms.received("MeterValues", "BENCH")) - mv0
            gap = sim.sim_status()["tick_gap_max_ms"]
            return {"status_median_ms": round(statistics.median(times), 2),
                    "status_p95_ms": round(times[int(len(times) * 0.95)], 2),
                    "control_tick_gap_max_ms": gap,
                    "latency_condition": "%s (%d meanwhile), %s from .py, %d requests"
                                         % (cond, mv, runtime, len(times))}
        finally:
            sim.kill()
            csms.close()


def page_size():
    from firmware.api.page import PAGE
    import gzip
    raw = PAGE.encode()
    return {"page_bytes": len(raw), "page_gzip_bytes": len(gzip.compress(raw, 9))}


def run(quick=False):
    out = {}
    out.update(heap_figures(quick))
    out.update(page_size())
    out.update(status_latency(n=50 if quick else 200, window_s=3 if quick else 5))
    return out


def main(argv=None):
    for k, v in run().items():
        print("%-28s %s" % (k, v))


if __name__ == "__main__":
    main()
