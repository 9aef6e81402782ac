"""A virtual board: the MicroPython unix port on a pseudo-terminal, reached by the
real mpremote through a second pseudo-terminal (a Python bridge, no socat needed)."""
import os
import pty
import select
import subprocess
import sys
import threading
import tty
from pathlib import Path

from host_tools.runtime import MICROPYTHON, micropython_env

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


class VirtualBoard:
    def __init__(self, cwd, repo_on_path=True):
        """cwd is the board's filesystem root. With repo_on_path=False the board imports only
        what is in cwd (and its frozen modules), like a real board after a deploy."""
        env = micropython_env()
        if not repo_on_path:
            env["MICROPYPATH"] = ".frozen"
        self._board_master, board_slave = pty.openpty()
        self._host_master, self._host_slave = pty.openpty()
        tty.setraw(board_slave)
        tty.setraw(self._host_slave)
        self.proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=512K"], stdin=board_slave, stdout=board_slave,
                                     stderr=board_slave, env=env, cwd=str(cwd))
        os.close(board_slave)
        self.port = os.ttyname(self._host_slave)
        self._closing = threading.Event()
        self._bridge_thread = threading.Thread(target=self._bridge, daemon=True)
        self._bridge_thread.start()

    def _bridge(self):
        a, b = self._board_master, self._host_master
        while self.proc.poll() is None and not self._closing.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.2)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                    os.write(b if fd == a else a, data)
                except OSError:
                    return

    def mpremote(self, *args, timeout=30):
        """Run mpremote against the board; `resume` keeps the unix port alive (a soft reset ends it)."""
        return subprocess.run([MPREMOTE, "connect", self.port, "resume", *args], capture_output=True, text=True,
                              timeout=timeout)

    # A program that runs until Ctrl-C, as the charger does on a device: there the
    # serial driver turns a received Ctrl-C into KeyboardInterrupt; the unix port only
    # does that on SIGINT, so the program watches its input for the character itself.
    RUNNING_PROGRAM = """import select, sys
_p = select.poll()
_p.register(sys.stdin, select.POLLIN)
_n = 0
while True:
    _n += 1
    print('%s', _n)
    if _p.poll(100) and sys.stdin.buffer.read(1) == b'\\x03':
        raise KeyboardInterrupt
"""

    def start_program(self, line="running", prelude=""):
        """Leave a program running on the board (it prints `line N` every 0.1 s) until a Ctrl-C;
        prelude runs first, in the same globals (as main.py's stay in the REPL's after a Ctrl-C)."""
        out = self.mpremote("exec", "--no-follow", prelude + "\n" + self.RUNNING_PROGRAM % line)
        assert out.returncode == 0, out.stderr
        return out

    def close(self):
        # The bridge stops before its descriptors are closed: their numbers may be reused at once.
        self._closing.set()
        self._bridge_thread.join(5)
        self.proc.kill()
        self.proc.wait(5)
        for fd in (self._board_master, self._host_master, self._host_slave):
            try:
                os.close(fd)
            except OSError:
                pass
