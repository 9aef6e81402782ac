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
        threading.Thread(target=self._bridge, daemon=True).start()

    def _bridge(self):
        a, b = self._board_master, self._host_master
        while self.proc.poll() is None:
            ready, _, _ = select.select([a, b], [], [], 0.2)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                os.write(b if fd == a else a, data)

    def mpremote(self, *args, timeout=30):
        """Run mpremote against the board; `resume` keeps the unix port alive (a soft reset ends it)."""
        return subprocess.run([MPREMOTE, "connect", self.port, "resume", *args], capture_output=True, text=True,
                              timeout=timeout)

    def close(self):
        self.proc.kill()
        self.proc.wait(5)
        for fd in (self._board_master, self._host_master, self._host_slave):
            try:
                os.close(fd)
            except OSError:
                pass
