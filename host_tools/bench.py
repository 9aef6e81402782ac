"""python -m host_tools bench [--quick]: the benchmarks (make bench).

Prints one table and writes it to build/bench-results.txt, with every figure
also in build/bench-results.json:

- rpc: the charger's own cost per CSMS call, in-process (bench_rpc), against a
  charge point on the `ocpp` package fed the same frames (bench_peers);
- e2e: the same scripted CSMS workload over loopback WebSockets, from the
  `ocpp`-based development CSMS, against the simulated charger on both
  runtimes, the `ocpp`-package charge point and a do-nothing charge point
  (the ceiling): calls/s, latency median and p99, and ours over the `ocpp`
  package's. The workload (the calls every target answers with a CALLRESULT)
  is settled once, before any timing, and every target runs that same one;
- boot: process start to BootNotification Accepted, per runtime;
- heap: MicroPython heap of the charger running from the .mpy bundle under
  -X heapsize=512K (boot + heartbeats, a full transaction session with
  offline queueing, a short soak), and flash writes per transaction;
- heapmin: the smallest -X heapsize the same session runs in (the real peak need);
- control loop period and pilot A -> contactor open reaction (host_tools/evse_bench.py);
- http: host_tools.bench_api.run(), when present;
- romfs, wasm: import cost from a ROMFS image and 32-bit figures (host_tools/bench_memory.py).

--quick runs every part with small counts (the smoke test uses it).
"""
import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from host_tools.launcher import Process, free_port, sim_command
from host_tools.runtime import MICROPYTHON, ROOT, micropython_env

RESULTS_TXT = ROOT / "build" / "bench-results.txt"
RESULTS_JSON = ROOT / "build" / "bench-results.json"
HEAP = "512K"
DATA_BUDGET = 48 * 1024
SPEED_TARGET = 0.1  # ours at most 1/10 of the ocpp package's cost per call


def _pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def _mp_run(code, path, timeout=300):
    env = micropython_env()
    env["MICROPYPATH"] = ":".join([".frozen"] + [str(p) for p in path])
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=" + HEAP, "-c", code], capture_output=True, text=True,
                          env=env, cwd=str(ROOT), timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError("micropython bench failed (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout[-2000:],
                                                                      proc.stderr[-2000:]))


# ---- rpc, in-process --------------------------------------------------------------------------

async def _time_ocpp_package(n):
    from host_tools.bench_peers import BenchChargePoint, NullConnection
    from host_tools.bench_rpc import bench_settings, frames
    cp = BenchChargePoint("bench", NullConnection(), bench_settings())
    texts = frames()
    for t in texts:
        await cp.route_message(t)
    k = len(texts)
    t0 = time.perf_counter()
    for i in range(n):
        await cp.route_message(texts[i % k])
    return {"calls": n, "us_per_call": (time.perf_counter() - t0) * 1e6 / n}


def bench_rpc(quick):
    from host_tools import bench_rpc as br
    n = 500 if quick else 5000
    out = {}
    with tempfile.TemporaryDirectory() as d:
        out["ours_cpython"] = br.run(n, d)
    out["ocpp_package_cpython"] = asyncio.run(_time_ocpp_package(n // 5 if quick else n // 2))
    with tempfile.TemporaryDirectory() as d:
        out["ours_micropython"] = _mp_run("from host_tools.bench_rpc import run\nimport json\n"
                                          "print('RESULT ' + json.dumps(run(%d, %r)))" % (n, d),
                                          [ROOT, _device_lib()])
    theirs = out["ocpp_package_cpython"]["us_per_call"]
    out["ratio_cpython"] = out["ours_cpython"]["bench_handlers"]["us_per_call"] / theirs
    out["ratio_micropython_vs_ocpp_cpython"] = out["ours_micropython"]["bench_handlers"]["us_per_call"] / theirs
    out["target_ratio"] = SPEED_TARGET
    return out


def _device_lib():
    from host_tools.runtime import device_lib
    return device_lib()


# ---- processes: the simulator and the peers ------------------------------------------------

def _http(port=None):
    return "127.0.0.1:%d" % (port or free_port())


async def http_get(base, path, timeout=10):
    def get():
        with urllib.request.urlopen(base + path, timeout=timeout) as r:
            return json.loads(r.read() or b"null")
    return await asyncio.get_running_loop().run_in_executor(None, get)


def _boot_answered(csms, cp_id):
    """The CSMS has sent its answer to a BootNotification of cp_id (on its latest connection)."""
    cp = csms.chargers.get(cp_id)
    if cp is None:
        return False
    boot_id = None
    for d, text in cp.frames:
        if d == "<" and '"BootNotification"' in text:
            boot_id = text.split('"')[1]
        elif d == ">" and boot_id and text.startswith('[3,"%s"' % boot_id):
            return True
    return False


async def _start_csms(**kw):
    from host_tools.csms import Csms
    return await Csms(port=0, verbose=False, **kw).start()


# ---- end to end over loopback WebSockets ----------------------------------------------------

async def _probe(csms, cp_id, workload):
    """The workload actions this charge point answers with a CALLRESULT."""
    from ocpp.exceptions import OCPPError
    ok = []
    for action, payload in workload:
        try:
            await csms.call(cp_id, action, payload)
            ok.append(action)
        except OCPPError:
            pass
    return ok


async def _drive(csms, cp_id, workload, n):
    from ocpp.exceptions import OCPPError
    lat = []
    errors = 0
    k = len(workload)
    t0 = time.perf_counter()
    for i in range(n):
        action, payload = workload[i % k]
        t = time.perf_counter()
        try:
            await csms.call(cp_id, action, payload)
        except OCPPError:
            errors += 1  # a CALLERROR is an answer too: counted, and reported
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    return {"calls": n, "calls_per_s": n / total, "median_ms": statistics.median(lat) * 1000,
            "p99_ms": _pct(lat, 0.99) * 1000, "callerrors": errors}


def _targets(url_for, tmp):
    peers = [sys.executable, "-m", "host_tools.bench_peers"]
    return [
        ("ours_micropython", lambda cp: sim_command("micropython", tmp + "/" + cp, url_for(cp), _http()), True),
        ("ours_cpython", lambda cp: sim_command("cpython", tmp + "/" + cp, url_for(cp), _http()), True),
        ("ocpp_package_cpython", lambda cp: peers + ["ocpp", url_for(cp)], False),
        ("ceiling_canned_cpython", lambda cp: peers + ["canned", url_for(cp)], False),
    ]


async def _running(csms, cp_id, cmd, boots):
    """Start one charge point and wait until the CSMS can call it."""
    p = await Process(cmd(cp_id)).astart()
    try:
        if boots:
            await csms.wait_for(lambda: _boot_answered(csms, cp_id), 60)
        else:
            await csms.wait_for(lambda: cp_id in csms.chargers, 30)
    except BaseException:
        await p.astop()
        raise
    return p


def _ratios(ours, theirs):
    """ours / the ocpp package: above 1 is more calls/s, below 1 is shorter latency."""
    return {"throughput": ours["calls_per_s"] / theirs["calls_per_s"],
            "median_latency": ours["median_ms"] / theirs["median_ms"],
            "p99_latency": ours["p99_ms"] / theirs["p99_ms"]}


async def bench_e2e(quick):
    from host_tools.bench_rpc import WORKLOAD
    n = 100 if quick else 2000
    csms = await _start_csms()
    out = {"calls_per_target": n}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = _targets(csms.url, tmp)
            # First which workload calls every charge point answers with a CALLRESULT: those
            # make the one workload that every target then runs.
            supported = {}
            for name, cmd, boots in targets:
                p = await _running(csms, "PROBE-" + name, cmd, boots)
                try:
                    supported[name] = await _probe(csms, "PROBE-" + name, WORKLOAD)
                finally:
                    await p.astop()
            work = [w for w in WORKLOAD if all(w[0] in s for s in supported.values())]
            if not work:
                raise RuntimeError("no workload call is answered by every charge point: %r" % supported)
            runs = {}
            for name, cmd, boots in targets:
                cp_id = "E2E-" + name
                p = await _running(csms, cp_id, cmd, boots)
                try:
                    await _drive(csms, cp_id, work, max(10, n // 10))  # warm up
                    runs[name] = await _drive(csms, cp_id, work, n)
                finally:
                    await p.astop()
            out["answered_with_callresult"] = supported
            out["workload"] = [a for a, _ in work]
            out["runs"] = runs
            ceiling = runs["ceiling_canned_cpython"]["calls_per_s"]
            for name, r in runs.items():
                r["of_ceiling"] = r["calls_per_s"] / ceiling
            theirs = runs["ocpp_package_cpython"]
            out["vs_ocpp_package"] = {name: _ratios(runs[name], theirs)
                                      for name in ("ours_micropython", "ours_cpython")}
    finally:
        await csms.stop()
    return out


# ---- boot to Accepted -------------------------------------------------------------------------

async def bench_boot(quick):
    runs = 1 if quick else 3
    csms = await _start_csms()
    out = {}
    variants = [("micropython", None), ("cpython", None), ("micropython_bundle", ROOT / "build" / "host" / "bundle")]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, bundle in variants:
                times = []
                for i in range(runs):
                    cp_id = "BOOT-%s-%d" % (name, i)
                    rt = "micropython" if name.startswith("micropython") else "cpython"
                    p = Process(sim_command(rt, "%s/%s" % (tmp, cp_id), csms.url(cp_id), _http(), bundle=bundle,
                                            heap=HEAP if bundle else None))
                    t0 = time.monotonic()
                    await p.astart()
                    try:
                        await csms.wait_for(lambda: _boot_answered(csms, cp_id), 30)
                        times.append((time.monotonic() - t0) * 1000)
                    finally:
                        await p.astop()
                out[name] = {"median_ms": statistics.median(times), "runs_ms": times}
    finally:
        await csms.stop()
    return out


# ---- heap and flash writes on MicroPython, from the .mpy bundle ------------------------------

async def _heap_sample(base, samples, phase):
    st = await http_get(base, "/sim/status?gc=1")
    s = {"phase": phase, "t": time.monotonic(), "live": st["heap_used"], "peak": st["heap_peak"],
         "baseline": st["heap_baseline"], "writes": st.get("store_writes")}
    samples.append(s)
    return s


async def _wait_received(csms, cp_id, action, count, timeout):
    def got():
        return len([a for c in csms.connections if c.id == cp_id for a, _ in c.received if a == action]) >= count
    try:
        await csms.wait_for(got, timeout)
        return True
    except TimeoutError:
        return False


def _count(csms, cp_id, action):
    return len([a for c in csms.connections if c.id == cp_id for a, _ in c.received if a == action])


async def _transaction(csms, cp_id, base, samples, offline_s, quick=False):
    """One transaction: card + plug in, metering, offline span, back online, unplug.

    Returns (started, stopped, flash writes over the transaction)."""
    w0 = (await _heap_sample(base, samples, "before transaction"))["writes"]
    starts = _count(csms, cp_id, "StartTransaction")
    stops = _count(csms, cp_id, "StopTransaction")
    await http_get(base, "/sim/set?rfid=%22BENCHCARD%22")
    await http_get(base, "/sim/set?ev=%22C%22")
    if not await _wait_received(csms, cp_id, "StartTransaction", starts + 1, 4 if quick else 8):
        # No card reader flow: try a forced start (go-e frc=2) before giving up.
        try:
            await http_get(base, "/api/set?frc=2")
        except OSError:
            pass  # refused (HTTP 500): reported below as no transaction
        if not await _wait_received(csms, cp_id, "StartTransaction", starts + 1, 2 if quick else 5):
            await http_get(base, "/sim/set?ev=%22A%22")
            await _heap_sample(base, samples, "no transaction")
            return False, False, None
    mv = _count(csms, cp_id, "MeterValues")
    await _wait_received(csms, cp_id, "MeterValues", mv + 2, 6)
    await _heap_sample(base, samples, "charging")
    if offline_s:
        await csms.stop()
        await asyncio.sleep(offline_s)  # metering continues offline: messages queue on flash
        await _heap_sample(base, samples, "offline")
        conns = len(csms.connections)
        await csms.start()
        await csms.wait_for(lambda: len(csms.connections) > conns, 60)
    await http_get(base, "/sim/set?ev=%22A%22")
    stopped = await _wait_received(csms, cp_id, "StopTransaction", stops + 1, 20)
    await asyncio.sleep(1.5)  # let the energy counter and the queue settle their files
    w1 = (await _heap_sample(base, samples, "after transaction"))["writes"]
    return True, stopped, (w1 - w0) if (w0 is not None and w1 is not None) else None


async def bench_heap(quick):
    bundle = ROOT / "build" / "host" / "bundle"
    csms = await _start_csms(boot_interval=1)  # heartbeats every second
    cp_id = "HEAP"
    out = {"heapsize": HEAP, "from": "bundle (.mpy)", "data_budget_bytes": DATA_BUDGET}
    samples = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            base = "http://127.0.0.1:%d" % port
            sets = ["MeterValueSampleInterval=1", "ClockAlignedDataInterval=0"]
            p = await Process(sim_command("micropython", tmp + "/flash", csms.url(cp_id), _http(port), sets, bundle,
                                          HEAP)).astart()
            try:
                await csms.wait_for(lambda: _boot_answered(csms, cp_id), 30)
                await _heap_sample(base, samples, "boot")
                await _wait_received(csms, cp_id, "Heartbeat", 1 if quick else 5, 20)
                hb = await _heap_sample(base, samples, "heartbeats")
                out["baseline_bytes"] = hb["baseline"]
                out["boot_heartbeats_peak_bytes"] = hb["peak"]
                out["boot_heartbeats_live_bytes"] = hb["live"]
                started, stopped, writes = await _transaction(csms, cp_id, base, samples, 1 if quick else 5, quick)
                out["transaction_started"] = started
                out["transaction_stopped"] = stopped
                out["flash_writes_per_transaction"] = writes
                sess = await _heap_sample(base, samples, "session end")
                out["session_peak_bytes"] = sess["peak"]
                # Soak: heartbeats, API polls and (when they work) transactions, live heap sampled.
                soak_s = 3 if quick else 40
                t_end = time.monotonic() + soak_s
                soak = []
                while time.monotonic() < t_end:
                    if started and (len(soak) % 8 == 7):
                        await _transaction(csms, cp_id, base, samples, 0, quick)
                    await http_get(base, "/api/status")
                    soak.append((await _heap_sample(base, samples, "soak"))["live"])
                    await asyncio.sleep(0.5)
                out["soak_s"] = soak_s
                out["soak_live_first_bytes"] = soak[0]
                out["soak_live_last_bytes"] = soak[-1]
                out["soak_live_max_bytes"] = max(soak)
                out["soak_growth_bytes"] = soak[-1] - soak[0]
                out["alive"] = p.alive()
            finally:
                await p.astop()
    finally:
        await csms.stop()
    base_b = out.get("baseline_bytes") or 0
    out["data_growth_live_max_bytes"] = max(s["live"] for s in samples) - base_b
    out["data_growth_peak_bytes"] = max(s["peak"] for s in samples) - base_b
    out["samples"] = [{k: v for k, v in s.items() if k != "t"} for s in samples]
    return out


async def _session_fits(heap_k, bundle):
    """True when the charger from the bundle boots, heartbeats and runs a whole
    transaction with an offline span under -X heapsize=<heap_k>K."""
    csms = await _start_csms(boot_interval=1)
    cp_id = "HEAPMIN"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            base = "http://127.0.0.1:%d" % port
            sets = ["MeterValueSampleInterval=1", "ClockAlignedDataInterval=0"]
            try:
                p = await Process(sim_command("micropython", tmp + "/flash", csms.url(cp_id), _http(port), sets, bundle,
                                              "%dK" % heap_k)).astart(20)
            except RuntimeError:
                return False  # did not even boot
            try:
                await csms.wait_for(lambda: _boot_answered(csms, cp_id), 15)
                if not await _wait_received(csms, cp_id, "Heartbeat", 2, 15):
                    return False
                started, stopped, _ = await _transaction(csms, cp_id, base, [], 2)
                await http_get(base, "/api/status")
                return started and stopped and p.alive()
            except (OSError, TimeoutError, asyncio.TimeoutError, RuntimeError, KeyError, ValueError):
                return False
            finally:
                await p.astop()
    finally:
        await csms.stop()


async def bench_heap_min(quick):
    """The smallest -X heapsize (16 KB steps) the whole session runs in: the real peak
    need of the application, which mem_peak cannot tell (it never subtracts what gc frees)."""
    if quick:
        return {"skipped": "not in --quick (several full sessions)"}
    bundle = ROOT / "build" / "host" / "bundle"
    lo, hi = 256, int(HEAP.rstrip("K"))  # lo: below the baseline after imports
    if not await _session_fits(hi, bundle):
        return {"smallest_heap_k": None, "note": "no full session even at %s" % HEAP}
    runs = {hi: True}
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        ok = await _session_fits(mid, bundle)
        runs[mid] = ok
        if ok:
            hi = mid
        else:
            lo = mid
    return {"smallest_heap_k": hi, "resolution_k": 16, "runs": runs}


# ---- control loop and HTTP ------------------------------------------------------------------

def bench_control(quick):
    trials = 5 if quick else 30
    code = ("import json\nfrom host_tools.evse_bench import run_bench\n"
            "print('RESULT ' + json.dumps(run_bench(%d, None)))" % trials)
    # The firmware from the bundle; the bench itself is host code, from the tree.
    return _mp_run(code, [ROOT / "build" / "host" / "bundle", ROOT])


def bench_http(quick):
    try:
        from host_tools import bench_api
    except ImportError:
        return {"skipped": "host_tools/bench_api.py not present"}
    return bench_api.run(quick=quick)


# ---- the table ----------------------------------------------------------------------------

def _f(v, fmt="%.1f"):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return fmt % v
    return str(v)


def table(res):
    rows = []

    def row(name, value, note=""):
        rows.append((name, value, note))

    r = res.get("rpc")
    if r:
        mp = r["ours_micropython"]
        cp = r["ours_cpython"]
        row("rpc: ocpp package ChargePoint, CPython", _f(r["ocpp_package_cpython"]["us_per_call"]) + " us/call",
            "route_message, same handlers")
        row("rpc: ours, CPython", _f(cp["bench_handlers"]["us_per_call"]) + " us/call",
            "ratio %.3f (target <= %.2f)" % (r["ratio_cpython"], r["target_ratio"]))
        row("rpc: ours, MicroPython", _f(mp["bench_handlers"]["us_per_call"]) + " us/call",
            "ratio to ocpp on CPython %.3f" % r["ratio_micropython_vs_ocpp_cpython"])
        row("rpc: framer only, CPython / MicroPython", "%s / %s us/call" % (
            _f(cp["framer_only"]["us_per_call"]), _f(mp["framer_only"]["us_per_call"])), "handler answers at once")
        if "app_handlers" in cp:
            row("rpc: app's own handlers, CPython / MicroPython", "%s / %s us/call" % (
                _f(cp["app_handlers"]["us_per_call"]), _f(mp.get("app_handlers", {}).get("us_per_call"))),
                "registered: %s" % (",".join(cp["app_handlers_actions"]) or "none (CALLERROR answers)"))
    e = res.get("e2e")
    if e:
        for name, x in e["runs"].items():
            row("e2e: " + name, "%s calls/s" % _f(x["calls_per_s"], "%.0f"),
                "median %.2f ms, p99 %.2f ms, %.0f%% of ceiling%s" % (
                    x["median_ms"], x["p99_ms"], 100 * x["of_ceiling"],
                    ", %d CALLERROR" % x["callerrors"] if x["callerrors"] else ""))
        for name, x in e["vs_ocpp_package"].items():
            row("e2e: %s / ocpp package" % name, "x%.2f calls/s" % x["throughput"],
                "latency median x%.2f, p99 x%.2f (below 1: faster)" % (x["median_latency"], x["p99_latency"]))
        row("e2e: workload, same for every target", "%d calls" % e["calls_per_target"], ",".join(e["workload"]))
    b = res.get("boot")
    if b:
        for name, x in b.items():
            row("boot to Accepted: " + name, _f(x["median_ms"], "%.0f") + " ms",
                "median of %d (target < 1000 ms)" % len(x["runs_ms"]))
    h = res.get("heap")
    if h:
        row("heap: baseline after imports (bundle)", "%d B" % h["baseline_bytes"], "-X heapsize=%s" % h["heapsize"])
        row("heap: live after boot + heartbeats", "%d B" % h["boot_heartbeats_live_bytes"], "after gc")
        row("heap: data growth, live (after gc), max", "%d B" % h["data_growth_live_max_bytes"],
            "budget %d B; session: transaction %s" % (h["data_budget_bytes"], (
                "ran" if h["transaction_stopped"] else
                "started, not stopped" if h["transaction_started"] else "not available")))
        row("heap: mem_peak, boot + heartbeats / session", "%d / %d B" % (
            h["boot_heartbeats_peak_bytes"], h["session_peak_bytes"]),
            "counts bytes allocated, not those gc reclaims: grows with time")
        row("heap: soak live first / last / max", "%d / %d / %d B" % (
            h["soak_live_first_bytes"], h["soak_live_last_bytes"], h["soak_live_max_bytes"]),
            "%d s, growth %+d B" % (h["soak_s"], h["soak_growth_bytes"]))
        row("flash writes per transaction", _f(h["flash_writes_per_transaction"]), "Store.writes")
    hm = res.get("heapmin")
    if hm:
        if "skipped" in hm:
            row("heap: smallest heapsize for the session", "-", hm["skipped"])
        else:
            row("heap: smallest heapsize for the session", "%sK" % hm["smallest_heap_k"],
                "bundle; boot, heartbeats, a transaction with an offline span (16 KB steps)")
    c = res.get("control")
    if c:
        row("control: tick cost mean / max", "%d / %d us" % (c["tick_cost_mean_us"], c["tick_cost_max_us"]),
            c["runtime"])
        for load in ("idle", "busy"):
            row("control: period mean/max (%s)" % load, "%.1f / %.1f ms" % (
                c[load + "_period_mean_ms"], c[load + "_period_max_ms"]), "tick %d ms" % c["tick_ms"])
            row("control: pilot A -> open mean/max (%s)" % load, "%.1f / %.1f ms" % (
                c[load + "_reaction_mean_ms"], c[load + "_reaction_max_ms"]), "%d trials" % c[load + "_trials"])
    ht = res.get("http")
    if ht:
        if "skipped" in ht:
            row("http", "-", ht["skipped"])
        elif isinstance(ht, dict):
            for k, v in ht.items():
                if isinstance(v, (int, float, str, bool)) or v is None:
                    row("http: " + k, _f(v, "%.2f"), "")
    from host_tools import bench_memory
    bench_memory.rows(res, row)
    for part, err in res.get("errors", {}).items():
        row(part, "FAILED", err.splitlines()[0][:100] if err else "")
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    lines = ["OpenWallbox benchmarks (%s)" % res["when"], "-" * (w + v + 30)]
    lines += ["%-*s  %*s  %s" % (w, a, v, b, c) for a, b, c in rows]
    return "\n".join(lines)


PARTS = ("rpc", "e2e", "boot", "heap", "heapmin", "control", "http", "romfs", "wasm")


def run(quick=False, parts=PARTS):
    import logging
    from host_tools import image
    logging.getLogger("ocpp").setLevel(logging.ERROR)  # probing unsupported actions warns otherwise
    res = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": quick, "errors": {}}
    res["bundle"] = image.build_bundle("host")  # the heap and control figures run from .mpy
    funcs = {"rpc": bench_rpc, "e2e": lambda q: asyncio.run(bench_e2e(q)),
             "boot": lambda q: asyncio.run(bench_boot(q)), "heap": lambda q: asyncio.run(bench_heap(q)),
             "heapmin": lambda q: asyncio.run(bench_heap_min(q)),
             "control": bench_control, "http": bench_http}
    from host_tools import bench_memory
    funcs.update(bench_memory.PARTS)
    for part in parts:
        t = time.monotonic()
        print("bench: %s ..." % part, flush=True)
        try:
            res[part] = funcs[part](quick)
        except Exception as e:  # noqa: BLE001 - one failing part must not hide the others
            import traceback
            res["errors"][part] = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
        res.setdefault("seconds", {})[part] = round(time.monotonic() - t, 1)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts: a smoke run of every part")
    p.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable)")
    p.add_argument("--out", default=str(RESULTS_TXT.parent), help="folder for bench-results.txt/.json")
    args = p.parse_args(argv)
    res = run(args.quick, args.only or PARTS)
    text = table(res)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_TXT.name).write_text(text + "\n")
    (out / RESULTS_JSON.name).write_text(json.dumps(res, indent=1, default=str))
    print(text)
    print("written: %s, %s" % (out / RESULTS_TXT.name, out / RESULTS_JSON.name))
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
