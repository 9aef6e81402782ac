"""Benchmarks of the local HTTP API: heap cost on the MicroPython runtime and
/api/status latency of a running simulator.

run() returns a dict of figures (engineer B's `make bench` prints them):
  import_heap_bytes     heap held after importing microdot + firmware.api (gc'd)
  server_heap_bytes     heap held by a built HttpApi with the charger's keys
  request_alloc_bytes   bytes allocated while serving one /api/status (gc disabled)
  status_median_ms      median latency of /api/status?filter=... over N requests
  status_p95_ms
  latency_condition     what the charger was doing while measured
"""
import json
import statistics
import subprocess
import tempfile
import time
import urllib.request

from host_tools.runtime import MICROPYTHON, ROOT, micropython_env

_HEAP_SCRIPT = r"""
import gc, asyncio, json
gc.collect(); a0 = gc.mem_alloc()
import microdot
from firmware.api import http, charger_keys, page
gc.collect(); a1 = gc.mem_alloc()
from boards.host.board import HostBoard
from firmware.app import App
app = App(HostBoard(), %(state)r)
gc.collect(); a2 = gc.mem_alloc()
api = app.api
async def main():
    srv = asyncio.create_task(api.serve("127.0.0.1", %(port)d))
    while not api.listening():
        await asyncio.sleep_ms(5)
    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", %(port)d)
        w.write(b"GET /api/status?filter=car,amp,nrg,wh,eto,alw HTTP/1.0\r\n\r\n")
        await w.drain()
        data = await r.read(4096)
        while True:
            more = await r.read(4096)
            if not more:
                break
            data += more
        w.close()
        return data
    await one()
    gc.collect(); gc.disable()
    b0 = gc.mem_alloc()
    await one()
    b1 = gc.mem_alloc()
    gc.enable()
    print("RESULT", json.dumps({"import_heap_bytes": a1 - a0, "app_heap_bytes": a2 - a1, "request_alloc_bytes": b1 - b0}))
    api.shutdown()
asyncio.run(main())
"""


def heap_figures(port=18931):
    with tempfile.TemporaryDirectory() as d:
        code = _HEAP_SCRIPT % {"state": d, "port": port}
        env = micropython_env()
        out = subprocess.run([MICROPYTHON, "-X", "heapsize=512K", "-c", code], capture_output=True, text=True,
                             env=env, cwd=str(ROOT), timeout=60)
        for line in out.stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        return {"error": (out.stdout + out.stderr)[-500:]}


def status_latency(runtime="micropython", n=200):
    """While a transaction runs with 1-second MeterValues sampling, against a real CSMS."""
    from tests_host.harness import CsmsThread, Sim
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
            cond = "transaction running, contactor closed, MeterValues every 1 s" \
                if sim.sim_status()["contactor"] and mv0 else "no transaction could be started"
            url = sim.base + "/api/status?filter=car,amp,nrg,wh,eto,alw,acu,trx"
            times = []
            t_end = time.monotonic() + 5  # several sampling periods, whatever n is
            while len(times) < n or time.monotonic() < t_end:
                t0 = time.perf_counter()
                with urllib.request.urlopen(url, timeout=10) as r:
                    r.read()
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            mv = len(csms.received("MeterValues", "BENCH")) - mv0
            return {"status_median_ms": round(statistics.median(times), 2),
                    "status_p95_ms": round(times[int(len(times) * 0.95)], 2),
                    "latency_condition": "%s, %s runtime, %d requests, %d MeterValues meanwhile"
                                         % (cond, runtime, len(times), mv)}
        finally:
            sim.kill()
            csms.close()


def page_size():
    from firmware.api.page import PAGE
    import gzip
    raw = PAGE.encode()
    return {"page_bytes": len(raw), "page_gzip_bytes": len(gzip.compress(raw, 9))}


def run():
    out = {}
    out.update(heap_figures())
    out.update(page_size())
    out.update(status_latency())
    return out


def main(argv=None):
    for k, v in run().items():
        print("%-22s %s" % (k, v))


if __name__ == "__main__":
    main()
