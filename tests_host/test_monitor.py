"""python -m host_tools monitor: the board's log with host times and compact OCPP frames, through a cable
that is pulled and plugged back (a pseudo-terminal that disappears and comes back)."""
import io
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import tty

import pytest

from host_tools.monitor import Output, View
from tests_host.mpy import ROOT

BOOT = '     2100 out [2,"7","BootNotification",{"chargePointVendor":"OpenWallbox","chargePointModel":"X"}]'
BOOT_ANSWER = '     2150 in [3,"7",{"status":"Accepted","currentTime":"2026-12-04T17:00:00Z","interval":60}]'


class Cable:
    """A serial port at a fixed path (as /dev/serial/by-id/... is) that can be unplugged and plugged back."""

    def __init__(self, path):
        self.path = path
        self.master = None

    def plug(self):
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        os.symlink(os.ttyname(slave), self.path)
        os.close(slave)

    def unplug(self):
        os.unlink(self.path)
        os.close(self.master)  # the pseudo-terminal is gone: reads on it fail, as on a pulled USB cable
        self.master = None

    def send(self, *lines):
        os.write(self.master, "".join(line + "\r\n" for line in lines).encode())


class Monitor:
    """The monitor as a process; its output lines collected as they come."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "host_tools", "monitor", *args], cwd=str(ROOT),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, text, count=1, timeout=30):
        with self.changed:
            ok = self.changed.wait_for(lambda: sum(text in line for line in self.lines) >= count, timeout)
        assert ok, "no %r in the monitor's output:\n%s" % (text, "\n".join(self.lines))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def cable(tmp_path):
    c = Cable(str(tmp_path / "ttyBOARD"))
    yield c
    if c.master is not None:
        c.unplug()


@pytest.fixture
def monitor():
    started = []

    def start(*args):
        started.append(Monitor(*args))
        return started[-1]

    yield start
    for m in started:
        if m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait(10)


def test_lines_before_and_after_the_cable_is_pulled_and_plugged_back_are_shown_in_order(cable, monitor, tmp_path):
    log = tmp_path / "board.log"
    cable.plug()
    mon = monitor(cable.path, "--log", str(log))
    mon.wait_for("-- connected to " + cable.path)
    cable.send("      100 I before 1", "      200 I before 2")
    mon.wait_for("before 2")
    cable.unplug()
    mon.wait_for("went away")
    cable.plug()
    mon.wait_for("-- reconnected to " + cable.path)
    cable.send("       50 I after 1", "       60 I after 2")
    mon.wait_for("after 2")
    assert mon.stop() == 0
    text = [re.sub(r"^\d\d:\d\d:\d\d\.\d\d\d ", "", line) for line in mon.lines]
    assert all(re.match(r"^\d\d:\d\d:\d\d\.\d\d\d ", line) for line in mon.lines), mon.lines
    events = [t for t in text if " I before" in t or " I after" in t or t.startswith("--")]
    assert events[0] == "-- connected to %s at 115200 baud" % cable.path
    assert events[1:3] == ["      100 I before 1", "      200 I before 2"]
    assert events[3].startswith("-- %s went away (" % cable.path) and events[3].endswith("come back")
    assert events[4:] == ["-- reconnected to %s at 115200 baud" % cable.path,
                          "-- the board restarted (its uptime went back)", "       50 I after 1", "       60 I after 2"]
    logged = log.read_text().splitlines()
    assert [re.sub(r"^\S+ ", "", line) for line in logged if " I before" in line or " I after" in line] == [
        "      100 I before 1", "      200 I before 2", "       50 I after 1", "       60 I after 2"]


def test_a_port_that_is_not_there_yet_is_waited_for(cable, monitor):
    mon = monitor(cable.path)
    mon.wait_for("-- waiting for " + cable.path)
    cable.plug()
    mon.wait_for("-- connected to " + cable.path)
    cable.send(BOOT)
    mon.wait_for("-> BootNotification")
    assert mon.stop() == 0


def shown(*lines, **kw):
    out = io.StringIO()
    o = Output(View(kw.pop("width", 160)), out=out, **kw)
    for line in lines:
        o.line(line)
    return [re.sub(r"^\d\d:\d\d:\d\d\.\d\d\d ", "", line) for line in out.getvalue().splitlines()]


def test_frames_are_shown_compactly_with_the_action_of_their_answer():
    assert shown(BOOT, BOOT_ANSWER, '     2200 in [4,"7","NotImplemented","no such action",{}]') == [
        '     2100 -> BootNotification {"chargePointVendor":"OpenWallbox","chargePointModel":"X"}',
        '     2150 <- BootNotification answer {"status":"Accepted","currentTime":"2026-12-04T17:00:00Z","interval":60}',
        "     2200 <- ? ERROR NotImplemented no such action"]


def test_long_frames_are_cut_to_the_width():
    line = shown(BOOT, width=40)[0]
    assert line == '     2100 -> BootNotification {"chargePointVend...'
    assert len(line) == 9 + 1 + 40


def test_ocpp_shows_the_frames_only_and_grep_filters():
    lines = ["      10 I Wi-Fi connected", BOOT, BOOT_ANSWER, "     3000 E meter: timeout"]
    assert shown(*lines, ocpp=True) == [
        '     2100 -> BootNotification {"chargePointVendor":"OpenWallbox","chargePointModel":"X"}',
        '     2150 <- BootNotification answer {"status":"Accepted","currentTime":"2026-12-04T17:00:00Z","interval":60}']
    assert shown(*lines, grep="meter|Wi-Fi") == ["      10 I Wi-Fi connected", "     3000 E meter: timeout"]
    assert shown(*lines, grep='"status":"Accepted"') == [
        '     2150 <- BootNotification answer {"status":"Accepted","currentTime":"2026-12-04T17:00:00Z","interval":60}']


def test_lines_that_are_not_log_lines_are_shown_as_they_are():
    assert shown("ets Jul 29 2019 12:21:46", "rst:0x1 (POWERON_RESET),boot:0x13", "\ufffd\ufffd") == [
        "ets Jul 29 2019 12:21:46", "rst:0x1 (POWERON_RESET),boot:0x13", "\ufffd\ufffd"]


def test_a_bad_grep_expression_is_refused_clearly():
    out = subprocess.run([sys.executable, "-m", "host_tools", "monitor", "/dev/null", "--grep", "("],
                         capture_output=True, text=True, cwd=str(ROOT), timeout=30)
    assert out.returncode == 2 and out.stderr.startswith("monitor: --grep '(': ") and "Traceback" not in out.stderr


def test_make_monitor_runs_the_host_tool():
    out = subprocess.run(["make", "-n", "-o", ".venv/.installed", "-C", str(ROOT), "monitor", "PORT=/dev/ttyUSB3",
                          "ARGS=--ocpp"], capture_output=True, text=True, timeout=30)
    assert "-m host_tools monitor /dev/ttyUSB3 --ocpp" in out.stdout
