"""Starts and stops the simulated charger (`python -m host_tools sim`) as a child
process, for the tests, the benchmarks and `make sim` alike; finds free ports;
runs the development CSMS in a thread of its own for blocking callers.

The child's output is read by a thread and kept, so the child never blocks on a
full pipe; start() returns once it prints READY. kill() is a power loss (SIGKILL).
From asyncio code, astart() and astop() do the same without blocking the loop.
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from host_tools.csms import Csms
from host_tools.runtime import ROOT


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sim_command(runtime, state, url=None, http="127.0.0.1:8080", sets=(), bundle=None, heap=None,
                cut_write=None, extra=()):
    """The command line that runs the simulated charger (see host_tools/sim.py)."""
    cmd = [sys.executable, "-m", "host_tools", "sim", "--runtime", runtime, "--http", http, "--state", str(state)]
    if url:
        cmd += ["--url", url]
    if bundle:
        cmd += ["--bundle", str(bundle)]
    if heap:
        cmd += ["--heap", heap]
    if cut_write:
        cmd += ["--cut-write", cut_write]
    for s in sets:
        cmd += ["--set", s]
    return cmd + list(extra)


class NotReady(RuntimeError):
    pass


class Process:
    """A child process, ready once a line of its output starts with `ready`.

    output: every line so far; on_line(line), when given, sees each line as it comes.
    """

    def __init__(self, cmd, ready="READY", on_line=None):
        self.cmd = cmd
        self.ready_prefix = ready
        self.on_line = on_line
        self.proc = None
        self.output = []
        self._reader = None
        self.ready = threading.Event()

    def start(self, timeout=60):
        self.ready.clear()
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, errors="replace")
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None:
                self._reader.join(5)
                break
            if time.monotonic() > deadline:
                break
        if not self.ready.is_set():
            self.kill()
            raise NotReady("%s not ready within %d s:\n%s" % (" ".join(self.cmd[3:6]), timeout, self.log()))
        return self

    async def astart(self, timeout=60):
        await asyncio.get_running_loop().run_in_executor(None, self.start, timeout)
        return self

    def _read(self, proc):
        for line in proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            if self.on_line is not None:
                self.on_line(line)
            if line.startswith(self.ready_prefix):
                self.ready.set()

    def wait_output(self, text, timeout=30.0):
        """Wait for a line of the output that starts with text."""
        deadline = time.monotonic() + timeout
        while not any(line.startswith(text) for line in list(self.output)):
            if time.monotonic() > deadline or not self.alive():
                raise AssertionError("no %r in the output of %s:\n%s" % (text, self.cmd[3:6], self.log()))
            time.sleep(0.05)

    def log(self, last=60):
        return "\n".join(self.output[-last:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """Power loss: SIGKILL, no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self._reader:
            self._reader.join(5)

    async def astop(self):
        await asyncio.get_running_loop().run_in_executor(None, self.kill)


class Sim(Process):
    """The simulated charger, with its HTTP API at `base`.

    Without http_port it takes a free port, and another one should a process
    take that port before the charger binds it.
    """

    def __init__(self, runtime, state_dir, url=None, sets=(), http_port=None, bundle=None, heap=None,
                 cut_write=None, extra=(), http_host="127.0.0.1", on_line=None):
        Process.__init__(self, None, "READY http://", on_line)
        self.runtime = runtime
        self.state_dir = os.path.abspath(str(state_dir))  # the child runs in the project folder
        self.url = url
        self.sets = list(sets)
        self.options = {"bundle": bundle, "heap": heap, "cut_write": cut_write, "extra": list(extra)}
        self._pick_port = http_port is None
        self.http_host = http_host
        self.http_port = http_port or free_port()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.http_port

    def start(self, timeout=60):
        for _ in range(3):
            self.cmd = sim_command(self.runtime, self.state_dir, self.url, "%s:%d" % (self.http_host, self.http_port),
                                   self.sets, **self.options)
            try:
                return Process.start(self, timeout)
            except NotReady:
                text = self.log().lower()
                if not (self._pick_port and ("eaddrinuse" in text or "address already in use" in text)):
                    raise
                # Another process took the port between free_port() and the bind.
                self.http_port = free_port()
        raise NotReady("no free HTTP port for the simulator")

    def rst(self, timeout=30.0):
        """Reboot through the API (`rst`) and wait until the charger serves again."""
        n = sum(1 for line in list(self.output) if line.startswith("READY"))
        assert self.get("/api/set?rst=1")[0] == 200
        deadline = time.monotonic() + timeout
        while sum(1 for line in list(self.output) if line.startswith("READY")) <= n:
            assert time.monotonic() < deadline and self.alive(), self.log()
            time.sleep(0.05)

    # ---- the HTTP API (blocking) ----

    def get(self, path, timeout=10):
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def api_set(self, **kv):
        return self.get("/api/set?" + urllib.parse.urlencode({k: json.dumps(v) for k, v in kv.items()}))

    def sim_set(self, **kv):
        return self.get("/sim/set?" + urllib.parse.urlencode({k: json.dumps(v) for k, v in kv.items()}))

    def status(self, *keys):
        if keys:
            return self.get("/api/status?filter=" + ",".join(keys))[1]
        return self.get("/api/status")[1]

    def sim_status(self):
        return self.get("/sim/status")[1]

    def wait_status(self, predicate, timeout=30.0, keys=()):
        """Poll the charger's API until predicate(status) holds (the charger has no push channel)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(*keys)
            if predicate(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError("charger status condition not met: %r\n%s" % (st, self.log()))
            time.sleep(0.05)


class CsmsThread:
    """A Csms running in its own thread and event loop, with blocking helpers."""

    def __init__(self, **kwargs):
        kwargs.setdefault("verbose", False)
        kwargs.setdefault("port", 0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.csms = self.run(Csms(**kwargs).start())

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def do(self, fn):
        """Run a plain function in the CSMS loop (policies, state changes)."""
        async def _f():
            return fn()
        return self.run(_f())

    def url(self, cp_id="CP1"):
        return self.csms.url(cp_id)

    def wait_for(self, predicate, timeout=30.0):
        return self.run(self.csms.wait_for(predicate, timeout), timeout + 5)

    def call(self, cp_id, action, payload=None, timeout=60):
        return self.run(self.csms.call(cp_id, action, payload), timeout)

    def cp(self, cp_id="CP1"):
        return self.csms.chargers.get(cp_id)

    def received(self, action, cp_id="CP1"):
        """Payloads of the charger's CALLs of one action, across all its connections."""
        return [p for c in self.csms.connections if c.id == cp_id for a, p in c.received if a == action]

    def wait_received(self, action, count=1, cp_id="CP1", timeout=30.0):
        self.wait_for(lambda: len(self.received(action, cp_id)) >= count, timeout)
        return self.received(action, cp_id)

    def stop_server(self):
        self.run(self.csms.stop())

    def start_server(self):
        self.run(self.csms.start())

    def close(self):
        try:
            self.run(self.csms.stop(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
