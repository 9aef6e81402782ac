"""End-to-end harness: the development CSMS in a background event loop and the
simulator as a real process (killable with SIGKILL, restartable on the same state),
both started by host_tools/launcher.py."""
import time

from host_tools import launcher
from host_tools.launcher import Sim, free_port  # noqa: F401 - the tests' names for them
from host_tools.runtime import ROOT  # noqa: F401


class CsmsThread(launcher.CsmsThread):
    """The development CSMS in a thread, with what tests look at below the ocpp layer."""

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

    def close_checked(self):
        """Close, then fail if any frame the charger sent broke the official schemas."""
        violations = list(self.csms.violations)
        self.close()
        assert violations == [], "schema violations in frames from the charger: %r" % violations


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
