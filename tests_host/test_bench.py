"""`make bench` smoke test: a reduced run (--quick) produces every figure, with sane types.
No timing assertions: the figures depend on the machine."""
import fcntl
import json
import os
import subprocess
import sys

import pytest

from tests_host.mpy import ROOT

pytestmark = pytest.mark.e2e


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    # One run shared by the xdist workers of this session: the first takes the lock and runs it.
    # Their base temp dirs share a parent; without xdist that parent outlives the session.
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "bench-quick"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "stdout").exists():
            proc = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--quick", "--out", str(shared)],
                                  capture_output=True, text=True, cwd=str(ROOT), timeout=150)
            (shared / "rc").write_text(str(proc.returncode))
            (shared / "stdout").write_text(proc.stdout + proc.stderr)
    out = (shared / "stdout").read_text()
    rc = int((shared / "rc").read_text())
    return (rc, out), json.loads((shared / "bench-results.json").read_text()), \
        (shared / "bench-results.txt").read_text()


def test_quick_bench_runs_every_part_without_error(quick_run):
    proc, res, _ = quick_run
    assert res["errors"] == {}, res["errors"]
    assert proc[0] == 0, proc[1][-3000:]


def test_rpc_figures_compare_ours_with_the_ocpp_package(quick_run):
    r = quick_run[1]["rpc"]
    for side in ("ours_cpython", "ours_micropython"):
        assert _num(r[side]["bench_handlers"]["us_per_call"]) and _num(r[side]["framer_only"]["us_per_call"])
        # every frame of the workload was answered with a CALLRESULT
        assert r[side]["bench_handlers"]["kinds"] == ["[3"] * len(r[side]["bench_handlers"]["kinds"])
    assert _num(r["ocpp_package_cpython"]["us_per_call"])
    assert _num(r["ratio_cpython"]) and _num(r["ratio_micropython_vs_ocpp_cpython"])


def test_e2e_figures_for_every_charge_point(quick_run):
    e = quick_run[1]["e2e"]
    assert set(e["runs"]) == {"ours_micropython", "ours_cpython", "ocpp_package_cpython", "ceiling_canned_cpython"}
    for r in e["runs"].values():
        assert r["calls"] == e["calls_per_target"]
        for k in ("calls_per_s", "median_ms", "p99_ms", "of_ceiling"):
            assert _num(r[k]), k
        assert r["p99_ms"] >= r["median_ms"]
    # One workload, settled before timing, for every target; only calls each answers with a CALLRESULT.
    assert e["workload"] and all(r["callerrors"] == 0 for r in e["runs"].values())
    assert all(set(e["workload"]) <= set(s) for s in e["answered_with_callresult"].values())
    assert set(e["vs_ocpp_package"]) == {"ours_micropython", "ours_cpython"}
    for x in e["vs_ocpp_package"].values():
        for k in ("throughput", "median_latency", "p99_latency"):
            assert _num(x[k]), k


def test_boot_figures_for_each_runtime(quick_run):
    b = quick_run[1]["boot"]
    assert set(b) == {"micropython", "cpython", "micropython_bundle"}
    assert all(_num(x["median_ms"]) and x["runs_ms"] for x in b.values())


def test_heap_figures_from_the_bundle(quick_run):
    h = quick_run[1]["heap"]
    for k in ("baseline_bytes", "boot_heartbeats_live_bytes", "data_growth_live_max_bytes", "soak_live_first_bytes",
              "soak_live_last_bytes", "soak_live_max_bytes"):
        assert _num(h[k]), k
    assert h["heapsize"] == "512K" and h["alive"] is True
    assert isinstance(h["soak_growth_bytes"], int)
    assert h["flash_writes_per_transaction"] is None or _num(h["flash_writes_per_transaction"])
    assert h["flash_writes_per_transaction"] is not None or not h["transaction_stopped"]


def test_memory_figures_per_package_from_romfs_and_at_32_bits(quick_run):
    r, w = quick_run[1]["romfs"], quick_run[1]["wasm"]
    assert set(r["packages"]) == {"core", "evse", "ocpp", "api", "microdot", "board"}
    assert set(w["packages"]) == {"core", "evse", "ocpp", "api", "microdot"}  # the host bundle: no device board
    for fig in (r["packages"], w["packages"]):
        assert all(_num(v) and v > 0 for v in fig.values())
    assert r["objects_bytes"] + r["qstr_pools_bytes"] == r["total_bytes"]
    assert sum(r["packages"].values()) == r["total_bytes"] and r["image_bytes"] > 0
    assert sum(w["packages"].values()) == w["import_total_bytes"]
    # the whole session ran at 32 bits, over the in-memory transport
    c = w["session_counts"]
    assert c["BootNotification"] == 1 and c["StartTransaction"] == 1 and c["StopTransaction"] == 1
    assert isinstance(w["data_growth_bytes"], int)


def test_control_loop_figures(quick_run):
    c = quick_run[1]["control"]
    assert c["runtime"] == "micropython"
    for k in ("tick_cost_mean_us", "idle_period_mean_ms", "idle_reaction_mean_ms", "busy_reaction_max_ms"):
        assert _num(c[k]), k


def test_table_lists_every_part_and_is_written_to_the_file(quick_run):
    proc, _, text = quick_run
    for label in ("rpc: ours, MicroPython", "e2e: ours_micropython", "e2e: ceiling_canned_cpython",
                  "e2e: ours_micropython / ocpp package", "e2e: ours_cpython / ocpp package",
                  "boot to Accepted: micropython", "heap: baseline", "heap: data growth", "flash writes per transaction",
                  "control: pilot A -> open", "http", "romfs: import whole application",
                  "wasm: import whole application", "wasm: data growth"):
        assert label in text, label
    assert text.strip() in proc[1]
