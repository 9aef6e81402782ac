"""The evse layer on the MicroPython runtime: interrupt handlers and the steady
control tick under heap_lock, the same session scenario on both runtimes, every
file compiled with mpy-cross, and the control-loop bench."""
import json
import subprocess
import sys

import pytest

from tests_host.mpy import MPY_CROSS, ROOT, mp_env, run_mp

pytestmark = pytest.mark.micropython

FILES = sorted(
    [p for p in (ROOT / "firmware" / "evse").glob("*.py")]
    + [p for p in (ROOT / "boards" / "host").glob("*.py")]
    + [p for p in (ROOT / "boards" / "esp32_devkitc").glob("*.py")]
)

CHARGING = """
from tests_host.fakes import make_drivers, pilot_levels
from firmware.evse.controller import ChargeController
from firmware.compat import heap_lock, heap_unlock
d = make_drivers(record=False)
c = ChargeController(d)
c.set_limit("amp", 16)
c.authorize(True)
# The low level as it shows with PWM running; without PWM the controller ignores it.
d.pilot_adc.set_mv(*pilot_levels("C", True))
now = 1000
for i in range(20):
    now += 20
    c.tick(now)
for i in range(3):
    d.meter.current[i] = 16.0
assert c.contactor_closed and c.fault == 0, (c.pilot_state, c.fault)
"""


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_file_compiles_with_mpy_cross(path, tmp_path):
    out = tmp_path / "x.mpy"
    proc = subprocess.run([MPY_CROSS, "-o", str(out), str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_rcm_isr_allocates_nothing_and_opens_contactor():
    out = run_mp(CHARGING + """
d.rcm.level = 1
heap_lock()
try:
    d.rcm.fire()
finally:
    heap_unlock()
print(d.contactor.level, c._rcm_trip)
""")
    assert out.split() == ["0", "1"]


def test_rcm_isr_without_residual_current_does_nothing_under_heap_lock():
    out = run_mp(CHARGING + """
heap_lock()
try:
    d.rcm.fire()
finally:
    heap_unlock()
print(d.contactor.level, c._rcm_trip)
""")
    assert out.split() == ["1", "0"]


def test_steady_charging_tick_allocates_nothing():
    out = run_mp(CHARGING + """
heap_lock()
try:
    for i in range(500):
        now += 20
        c.tick(now)
finally:
    heap_unlock()
print(c.contactor_closed, c.fault, c.tick_count)
""")
    assert out.split() == ["True", "0", "520"]


def test_unplug_tick_opens_contactor_under_heap_lock():
    # The safety path itself (state A -> open) must not need the heap either.
    out = run_mp(CHARGING + """
d.pilot_adc.set_mv(*pilot_levels("A", True))
heap_lock()
try:
    for i in range(3):
        now += 20
        c.tick(now)
finally:
    heap_unlock()
print(d.contactor.level, c.pilot_state, c.fault)
""")
    assert out.split() == ["0", "A", "0"]


def test_fault_tick_opens_contactor_under_heap_lock():
    out = run_mp(CHARGING + """
d.rcm.level = 1
heap_lock()
try:
    now += 20
    c.tick(now)
finally:
    heap_unlock()
print(d.contactor.level, c.fault, d.pilot_pwm.duty_u16())
""")
    assert out.split() == ["0", "2", "65535"]


SCENARIO = """
import json
from boards.host.board import HostBoard
from firmware.evse.controller import ChargeController
b = HostBoard(seed=7)
c = ChargeController(b.drivers)
trace = []
now = [10000]
def run(ms):
    for _ in range(ms // 20):
        now[0] += 20
        c.tick(now[0])
def snap(label):
    s = b.sim_status()
    trace.append([label, c.pilot_state, c.duty_permille, c.contactor_closed, c.phases_active, c.ocpp_status,
                  c.fault, c.car, c.model_status, c.lock_status, int(s["energy_wh"] * 10), int(s["power_w"])])
c.add_listener(lambda e, d: trace.append(["event", e, d]))
c.set_limit("amp", 16)
run(100); snap("boot")
b.sim_set("ev", "B"); run(200); snap("plugged")
c.authorize(True); run(200); snap("authorized")
b.sim_set("ev", "C"); run(2000); snap("charging")
c.set_limit("ocpp", 10); run(1000); snap("limited")
c.request_phases(1); run(7000); snap("one phase")
b.sim_set("ev", "B"); run(500); snap("ev paused")
b.sim_set("ev", "C"); run(500); snap("resumed")
b.sim_set("rcd", True); run(100); snap("rcd")
b.sim_set("rcd", False); c.reset_fault(); run(500); snap("reset")
c.authorize(False); run(4000); snap("stopped")
b.sim_set("ev", "A"); run(200); snap("unplugged")
print(json.dumps(trace))
"""


def test_same_session_scenario_on_both_runtimes():
    mp = json.loads(run_mp(SCENARIO))
    proc = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, cwd=str(ROOT),
                          env=mp_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    cp = json.loads(proc.stdout)
    assert mp == cp
    snaps = {row[0]: row for row in cp if row[0] != "event"}
    assert snaps["charging"][3] is True and snaps["charging"][5] == "Charging"
    assert snaps["one phase"][4] == 1 and snaps["one phase"][3] is True
    assert snaps["rcd"][6] == 2 and snaps["rcd"][3] is False
    assert snaps["reset"][3] is True
    assert snaps["stopped"][5] == "Finishing" and snaps["stopped"][3] is False
    assert snaps["unplugged"][5] == "Available"


def test_bench_reports_loop_figures_on_micropython():
    out = run_mp("from host_tools.evse_bench import run_bench\n"
                 "r = run_bench(trials=5, print_fn=None)\n"
                 "import json\nprint(json.dumps(r))", timeout=120)
    r = json.loads(out)
    assert r["runtime"] == "micropython"
    assert r["idle_reaction_max_ms"] < 100
    assert r["busy_reaction_max_ms"] < 100
    assert 15 < r["idle_period_mean_ms"] < 25
