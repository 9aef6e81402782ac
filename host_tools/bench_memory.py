"""Memory as the ESP32 sees it: the `romfs` and `wasm` parts of `make bench`.

- romfs: the device bundle as a ROMFS image (mpremote's builder), mounted with
  `vfs.VfsRom` on the unix port, so the bytecode runs from the image as from a
  board's ROMFS partition; every application module (the board's too, with
  `machine` and `network` stubbed) is imported, dependencies first, and the heap
  each one adds (after gc) is its import cost: what a board without PSRAM pays
  in RAM. The image buffer is read before the baseline. A second run with the
  qstr pools grown beforehand splits that into objects and qstr pools; then the
  set-up (App) after the imports, and the same imports from .mpy files in RAM.
- wasm: the official MicroPython WebAssembly port (npm, 32-bit like the ESP32)
  under node: import cost per package from the .mpy bundle, data growth over a
  whole OCPP session against an in-interpreter CSMS over a memory transport
  (boards/host/loopback.py), and the smallest heap that session runs in.

Figures are per package: evse, ocpp, api, microdot, board, and `core` for the
modules directly under firmware/.
"""
import json
import subprocess
from pathlib import Path

from host_tools.runtime import MICROPYTHON, ROOT

# Not part of the running application: the host-only bench, the configuration
# tool (`mpremote exec "from firmware import config"`), the Modbus meter driver
# (imported only when /meter.json asks for it; S0 is the default) and the X.509
# reader (imported only when TLS material is set: its checks at load and on write,
# the ocppcn retry). Measured apart.
_HOST_ONLY = ("firmware.evse.bench",)
EXTRAS = ("firmware.config", "firmware.evse.modbus", "firmware.x509")
# The board's own hardware modules, replaced by stubs imported before the baseline.
_STUBS = {"machine": "class Pin:\n    IRQ_FALLING = 1\n    IRQ_RISING = 2\n    IN = 0\n    OUT = 1\n"
                     "    PULL_UP = 2\n\n\nADC = PWM = UART = WDT = Pin\n\n\ndef unique_id():\n"
                     "    return bytes(6)\n",
          "network": "STA_IF = 0\n"}


def package(mod):
    parts = mod.split(".")
    if parts[0] == "boards":
        return "board"
    if parts[0] == "microdot":
        return "microdot"
    if parts[0] == "firmware" and len(parts) > 2:
        return parts[1]
    return "core"


def app_modules(board="esp32_devkitc"):
    """The device bundle's modules (its entry main.py aside), in import order: each
    after the modules it imports; the application's first, then EXTRAS."""
    from host_tools import image
    src = image.sources(board)
    names = {}
    for rel, path in src.items():
        mod = rel[:-3].replace("/", ".")
        if mod.endswith(".__init__"):
            mod = mod[:-9]
        if mod not in _HOST_ONLY:
            names[mod] = path
    deps = {m: sorted(d for d in image._imports(p) if d in names and d != m) for m, p in names.items()}
    order, seen = [], set()

    def visit(m):
        if m in seen:
            return
        seen.add(m)
        if "." in m and m.rsplit(".", 1)[0] in names:
            visit(m.rsplit(".", 1)[0])
        for d in deps[m]:
            visit(d)
        order.append(m)
    for m in sorted(names, key=lambda m: (m in EXTRAS, m)):
        visit(m)
    return order


# Runs on MicroPython (unix port and WebAssembly port): imports each module and
# prints the heap and qstr pool each one adds. `_PRE` sets up sys.path (and the
# ROMFS mount) before the baseline.
_IMPORTS = """
import gc, sys, json, micropython
gc.collect()
_a0 = gc.mem_alloc()
_prev = _a0
_out = []
print('QSTR -')
micropython.qstr_info()
for _m in %r:
    __import__(_m)
    gc.collect()
    _a = gc.mem_alloc()
    _out.append((_m, _a - _prev))
    print('QSTR ' + _m)
    micropython.qstr_info()
    _prev = _a
print('RESULT ' + json.dumps({'modules': _out, 'total': _prev - _a0}))
"""


def _qstr_counts(stdout):
    """{module: qstrs its import added} from the qstr_info lines printed after each import."""
    out, mod, prev = {}, None, None
    for line in stdout.splitlines():
        if line.startswith("QSTR "):
            mod = line[5:]
        elif line.startswith("qstr pool:") and mod:
            n = int(line.split("n_qstr=")[1].split(",")[0])
            if prev is not None:
                out[mod] = n - prev
            prev = n
    return out


_PRE = """
import sys, vfs
sys.path[:] = %r
for _m in %r:
    __import__(_m)
"""
_MOUNT = """
_f = open(%r, 'rb')
_img = _f.read()
_f.close()
vfs.mount(vfs.VfsRom(_img), '/rom')
"""
# Interns enough names that the qstr pools the imports would grow are there
# before the baseline: each import then costs its objects only.
_QSTR_ROOM = """
for _i in range(3000):
    getattr(sys, 'q%d' % _i, None)
"""


def per_package(modules):
    out = {}
    for m, b in modules:
        p = package(m)
        out[p] = out.get(p, 0) + b
    return out


def _run_mp(code, heap="4M"):
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=" + heap, "-c", code], capture_output=True, text=True,
                          cwd="/", timeout=120, env={"MICROPYPATH": ".frozen"})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            res["qstrs"] = _qstr_counts(proc.stdout)
            return res
    raise RuntimeError("micropython failed (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout[-2000:],
                                                                proc.stderr[-2000:]))


def _stubs():
    d = ROOT / "build" / "stubs"
    d.mkdir(parents=True, exist_ok=True)
    for name, text in _STUBS.items():
        (d / (name + ".py")).write_text(text)
    return str(d)


def _split(res, mods):
    """(application total, extras total) of a run's per-module figures."""
    app = sum(b for m, b in mods if m not in EXTRAS)
    return app, sum(b for m, b in mods if m in EXTRAS)


# After every module is imported: what building the application (settings registry,
# controller, session, buffers) adds, with the simulation board.
_SETUP = """
from boards.host.board import HostBoard
from firmware.app import App
_b = HostBoard(%r)
gc.collect()
_a = gc.mem_alloc()
_app = App(_b, %r, [])
gc.collect()
print('RESULT ' + json.dumps({'modules': [], 'total': 0, 'setup': gc.mem_alloc() - _a,
                              'keys': len(_app.settings.keys())}))
"""


def _setup_cost(mods):
    """Heap the application's set-up takes from a ROMFS image of the host bundle, imports aside."""
    import tempfile
    from host_tools import image
    bundle = Path(image.build_bundle("host")["bundle"])
    img = bundle.parent / "bundle.romfs"
    image.build_romfs_image(bundle, img)
    with tempfile.TemporaryDirectory() as d:
        code = _PRE % (["/rom", ".frozen"], []) + _MOUNT % str(img) + _IMPORTS % (mods,)
        code = code.replace("print('RESULT '", "_r = ('RESULT '") + _SETUP % (d, d)
        return _run_mp(code)


def bench_romfs(quick=False, board="esp32_devkitc"):
    """RAM that importing the application from a ROMFS image costs (unix port, 64-bit),
    against the same .mpy files loaded into RAM from a filesystem."""
    from host_tools import image
    summary = image.build_bundle(board)
    bundle = Path(summary["bundle"])
    img = bundle.parent / "bundle.romfs"
    size = image.build_romfs_image(bundle, img)
    mods = app_modules(board)
    stubs = _stubs()
    pre_rom = _PRE % (["/rom", ".frozen", stubs], list(_STUBS)) + _MOUNT % str(img)
    rom = _run_mp(pre_rom + _IMPORTS % (mods,))
    objs = _run_mp(pre_rom + _QSTR_ROOM + _IMPORTS % (mods,))
    fs = _run_mp(_PRE % ([str(bundle), ".frozen", stubs], list(_STUBS)) + _IMPORTS % (mods,))
    setup = _setup_cost([m for m in mods if not m.startswith("boards")])
    app_mods = [(m, b) for m, b in rom["modules"] if m not in EXTRAS]
    app_total, extras = _split(rom, rom["modules"])
    obj_total, _ = _split(objs, objs["modules"])
    return {"runtime": "unix port (64-bit), bytecode in a ROMFS image", "board": board, "image_bytes": size,
            "bundle_bytes": summary["bytes"], "total_bytes": app_total, "budget_bytes": 96 * 1024,
            "packages": per_package(app_mods), "modules": dict(rom["modules"]),
            "extras": {m: b for m, b in rom["modules"] if m in EXTRAS}, "every_module_bytes": app_total + extras,
            "objects_bytes": obj_total, "qstr_pools_bytes": app_total - obj_total,
            "module_objects": dict(objs["modules"]),
            "qstrs": sum(n for m, n in rom["qstrs"].items() if m not in EXTRAS),
            "package_qstrs": per_package([(m, n) for m, n in rom["qstrs"].items() if m not in EXTRAS]),
            "module_qstrs": rom["qstrs"],
            "setup_bytes": setup["setup"], "settings_keys": setup["keys"],
            "filesystem_bytes": _split(fs, fs["modules"])[0],
            "filesystem_packages": per_package([(m, b) for m, b in fs["modules"] if m not in EXTRAS])}


# ---- 32 bits: MicroPython's WebAssembly port under node ---------------------------------------

WASM_DIR = ROOT / "host_tools" / "wasm"
WASM_PKG = WASM_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
WASM_HEAP = 512 * 1024

# The session, run by the WebAssembly port from the host bundle (top-level await).
_WASM_SESSION = """
import gc, json, asyncio
from boards.host.board import HostBoard
from boards.host.loopback import Loopback, charge_session, start
from firmware.app import App
gc.collect()
_imports = gc.mem_alloc()
board = HostBoard('/state')
app = App(board, '/state', [('ocppu', 'ws://csms.invalid/ocpp/WASM1'), ('ocppe', True),
                            ('MeterValueSampleInterval', 1), ('ClockAlignedDataInterval', 0)])
lb = Loopback(heartbeat_s=1)
app.session.connect = lb.connect
_base = None
_phase = ['start']
_samples = {}
def _sample():
    # Called by the JS event loop (run.mjs SAMPLE_MS) between task steps.
    if _base is not None:
        gc.collect()
        p = _phase[0]
        _samples[p] = max(_samples.get(p, -1 << 30), gc.mem_alloc() - _base)
def _step(phase):
    _phase[0] = 'after ' + phase
_out = []
_done = asyncio.Event()
async def _main():
    # In a task: the port's top-level coroutine cannot take what wait_for throws into its waiter.
    global _base
    gc.collect()
    _base = gc.mem_alloc()  # the baseline: everything imported and built, nothing running yet
    tasks = start(app, board)
    try:
        _out.append(await charge_session(app, board, lb, _step, offline_s=%d))
    finally:
        for _t in tasks:
            _t.cancel()
        _done.set()
asyncio.create_task(_main())
await _done.wait()
print('RESULT ' + json.dumps({'imports': _imports, 'baseline': _base, 'samples': sorted(_samples.items()),
                              'counts': _out[0]}))
"""


def wasm_ready():
    """Install the pinned WebAssembly port (host_tools/wasm/package-lock.json) when missing."""
    if not WASM_PKG.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=str(WASM_DIR), check=True,
                       timeout=300)
    return json.loads((WASM_PKG / "package.json").read_text())["version"]


def _run_wasm(code, bundle, heap=WASM_HEAP, check=True, sample_ms=None):
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
        f.write(code)
        f.flush()
        proc = subprocess.run(["node", str(WASM_DIR / "run.mjs"), str(bundle), str(heap), f.name]
                              + ([str(sample_ms)] if sample_ms else []),
                              capture_output=True, text=True, cwd=str(WASM_DIR), timeout=180)
    res, heap_line = None, None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
        elif line.startswith("HEAP "):
            heap_line = [int(x) for x in line.split()[1:]]
    if res is None or proc.returncode != 0:
        if not check:
            return None
        raise RuntimeError("wasm run failed (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout[-2000:],
                                                                 proc.stderr[-2000:]))
    res["heap_first"], res["heap_end"] = heap_line
    res["qstrs"] = _qstr_counts(proc.stdout)
    return res


def _session_fits(heap, bundle, offline_s):
    """The session ran to its StopTransaction in a heap of `heap` bytes that never had to grow."""
    res = _run_wasm(_WASM_SESSION % offline_s, bundle, heap, check=False)
    return res is not None and res["heap_end"] == res["heap_first"]


def bench_wasm(quick=False):
    """Import cost per package, data growth over a whole session and the smallest heap, at 32 bits."""
    from host_tools import image
    version = wasm_ready()
    bundle = Path(image.build_bundle("host")["bundle"])
    # The device application's modules but the board's (the host bundle has the same firmware .mpy files).
    mods = [m for m in app_modules() if not m.startswith("boards") and m not in EXTRAS]
    imp = _run_wasm(_IMPORTS % (mods,), bundle)
    offline_s = 1 if quick else 3
    ses = _run_wasm(_WASM_SESSION % offline_s, bundle, sample_ms=100)
    growth = max(v for _, v in ses["samples"])
    out = {"runtime": "MicroPython %s WebAssembly port (32-bit), node; .mpy bundle loaded into RAM" % version,
           "import_total_bytes": imp["total"], "packages": per_package(imp["modules"]),
           "modules": dict(imp["modules"]), "qstrs": sum(imp["qstrs"].values()),
           "session_imports_bytes": ses["imports"], "session_baseline_bytes": ses["baseline"],
           "data_growth_bytes": growth, "data_budget_bytes": 24 * 1024, "samples": ses["samples"],
           "session_counts": ses["counts"], "heap_bytes": WASM_HEAP}
    if quick:
        out["smallest_heap_k"] = None
        return out
    lo, hi = 64, WASM_HEAP // 1024  # KB; 16 KB steps as the unix-port figure
    if not _session_fits(hi * 1024, bundle, offline_s):
        out["smallest_heap_k"] = None
        return out
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        if _session_fits(mid * 1024, bundle, offline_s):
            hi = mid
        else:
            lo = mid
    out["smallest_heap_k"] = hi
    return out


PACKAGES = ("core", "evse", "ocpp", "api", "microdot", "board")
PARTS = {"romfs": bench_romfs, "wasm": bench_wasm}


def _pk(packages):
    return ", ".join("%s %.1f" % (p, packages[p] / 1024) for p in PACKAGES if p in packages)


def rows(res, row):
    """The table rows of the romfs and wasm parts; row(name, value, note)."""
    r = res.get("romfs")
    if r:
        row("romfs: import whole application (64-bit)", "%.1f KB" % (r["total_bytes"] / 1024),
            "budget %d KB; heap after gc, image not counted; %s board" % (r["budget_bytes"] // 1024, r["board"]))
        row("romfs: per package (KB)", "", _pk(r["packages"]))
        row("romfs: objects / qstr pools", "%.1f / %.1f KB" % (r["objects_bytes"] / 1024,
                                                               r["qstr_pools_bytes"] / 1024), "%d qstrs" % r["qstrs"])
        row("romfs: + " + ", ".join(r["extras"]), "%.1f KB" % (sum(r["extras"].values()) / 1024),
            "imported only when used")
        row("romfs: + building the application", "%.1f KB" % (r["setup_bytes"] / 1024),
            "settings registry (%d keys), controller, session, buffers; host board" % r["settings_keys"])
        row("import from a filesystem (.mpy in RAM, 64-bit)", "%.1f KB" % (r["filesystem_bytes"] / 1024),
            _pk(r["filesystem_packages"]))
        row("romfs: image / bundle", "%d / %d B" % (r["image_bytes"], r["bundle_bytes"]), "esp32_devkitc bundle")
    w = res.get("wasm")
    if w:
        row("wasm: import whole application (32-bit)", "%.1f KB" % (w["import_total_bytes"] / 1024),
            ".mpy loaded into RAM")
        row("wasm: per package (KB)", "", _pk(w["packages"]))
        row("wasm: data growth over the session, live max", "%d B" % w["data_growth_bytes"],
            "budget %d B; baseline %d B after imports and set-up; %s" % (
                w["data_budget_bytes"], w["session_baseline_bytes"],
                " ".join("%s:%d" % (a, n) for a, n in sorted(w["session_counts"].items()))))
        row("wasm: smallest heap for the session", "%sK" % w["smallest_heap_k"] if w["smallest_heap_k"] else "-",
            "16 KB steps; no socket: in-memory CSMS" if w["smallest_heap_k"] else "not in --quick")
