"""End-to-end harness: the development CSMS in a background event loop and the
simulator as a real process (killable with SIGKILL, restartable on the same state)."""
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
from pathlib import Path

from host_tools.csms import Csms

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CsmsThread:
    """A Csms running in its own thread and event loop; sync helpers for tests."""

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

    def send_raw(self, text, cp_id="CP1"):
        """Send a text frame as given: the ocpp package would refuse to build a malformed one."""
        self.run(self.cp(cp_id)._connection.send(text))

    def watch_pings(self, cp_id="CP1"):
        """A list that gets the time.monotonic() of each WebSocket ping the charger sends
        on its current connection (the server answers pings below the ocpp layer)."""
        from websockets.frames import Opcode
        times = []

        def install():
            proto = self.cp(cp_id)._connection.ws.protocol
            inner = proto.recv_frame

            def recv_frame(frame):
                if frame.opcode == Opcode.PING:
                    times.append(time.monotonic())
                    self.csms.changed()
                return inner(frame)
            proto.recv_frame = recv_frame
        self.do(install)
        return times

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

    def close_checked(self):
        """Close, then fail if any frame the charger sent broke the official schemas."""
        violations = list(self.csms.violations)
        self.close()
        assert violations == [], "schema violations in frames from the charger: %r" % violations


class PortTaken(Exception):
    pass


class Sim:
    """The simulated charger as a process (`python -m host_tools sim`)."""

    def __init__(self, runtime, state_dir, url=None, sets=(), http_port=None, extra=()):
        self.runtime = runtime
        self.state_dir = str(state_dir)
        self.url = url
        self.sets = list(sets)
        self.extra = list(extra)  # more simulator arguments
        self.http_port = http_port or free_port()
        self.proc = None
        self.output = []
        self._reader = None
        self.ready = threading.Event()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.http_port

    def start(self, timeout=60):
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                # Another process took the port between free_port() and the bind.
                self.http_port = free_port()
        raise AssertionError("no free HTTP port for the simulator")

    def _start(self, timeout):
        cmd = [sys.executable, "-m", "host_tools", "sim", "--runtime", self.runtime,
               "--http", "127.0.0.1:%d" % self.http_port, "--state", self.state_dir]
        if self.url:
            cmd += ["--url", self.url]
        for s in self.sets:
            cmd += ["--set", s]
        cmd += self.extra
        self.ready.clear()
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None:
                self._reader.join(5)
                if "EADDRINUSE" in self.log() or "address already in use" in self.log().lower():
                    raise PortTaken()
                break
            if time.monotonic() > deadline:
                break
        if not self.ready.is_set():
            self.kill()
            raise AssertionError("simulator not READY within %d s:\n%s" % (timeout, self.log()))
        return self

    def _read(self, proc):
        for line in proc.stdout:
            self.output.append(line.rstrip("\n"))
            if line.startswith("READY http://"):
                self.ready.set()

    def wait_output(self, text, timeout=30.0):
        """Wait for a line of the simulator's output that starts with text."""
        deadline = time.monotonic() + timeout
        while not any(line.startswith(text) for line in list(self.output)):
            if time.monotonic() > deadline or not self.alive():
                raise AssertionError("no %r in the simulator output:\n%s" % (text, self.log()))
            time.sleep(0.05)

    def rst(self, timeout=30.0):
        """Reboot through the API (`rst`) and wait until the charger serves again."""
        n = sum(1 for line in list(self.output) if line.startswith("READY"))
        assert self.get("/api/set?rst=1")[0] == 200
        deadline = time.monotonic() + timeout
        while sum(1 for line in list(self.output) if line.startswith("READY")) <= n:
            assert time.monotonic() < deadline and self.alive(), self.log()
            time.sleep(0.05)

    def log(self, last=60):
        return "\n".join(self.output[-last:])

    def kill(self):
        """Power loss: SIGKILL, no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self._reader:
            self._reader.join(5)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

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


def online_charger(runtime, flash_dir, cp_id="CP1"):
    """Generator for a module fixture: (csms, sim), the charger online at the CSMS;
    the CSMS's schema check applies when it ends."""
    csms = CsmsThread()
    sim = Sim(runtime, flash_dir, url=csms.url(cp_id))
    try:
        sim.start()
        sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
        yield csms, sim
    finally:
        sim.kill()
        csms.close_checked()
