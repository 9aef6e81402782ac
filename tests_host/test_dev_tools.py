"""The development tools people use by hand: the CSMS's command endpoint and prompt,
and `make sim` (devsim: CSMS plus one simulated charger)."""
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests_host.harness import ROOT, free_port

pytestmark = pytest.mark.e2e


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_csms_http_endpoint_sends_a_command_to_a_connected_charger(sims, tmp_path, csms):
    sims("cpython", tmp_path / "flash", url=csms.url("DEV1")).start()
    csms.wait_received("BootNotification", 1, cp_id="DEV1")
    base = "http://127.0.0.1:%d" % csms.csms.port
    status, chargers = http_get(base + "/chargers")
    assert status == 200 and chargers == {"DEV1": {"connected": True}}
    q = urllib.parse.urlencode({"payload": json.dumps({"key": ["HeartbeatInterval"]})})
    status, body = http_get(base + "/call/DEV1/GetConfiguration?" + q)
    assert status == 200 and body["configurationKey"][0]["key"] == "HeartbeatInterval"
    status, body = http_get(base + "/call/NOPE/GetConfiguration")
    assert status == 404 and "NOPE" in body["error"]
    status, body = http_get(base + "/call/DEV1/GetConfiguration?payload=%7Bbad")
    assert status == 400


class Proc:
    def __init__(self, cmd, stdin=subprocess.PIPE):
        self.lines = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(cmd, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=stdin, text=True, bufsize=1, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip())
                self.cond.notify_all()

    def wait_line(self, pred, timeout=60):
        with self.cond:
            ok = self.cond.wait_for(lambda: any(pred(x) for x in self.lines), timeout)
        assert ok, "\n".join(self.lines[-40:])
        return next(x for x in self.lines if pred(x))

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGINT)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)


def test_chargers_endpoint_shows_a_disconnected_charger_as_not_connected(sims, tmp_path, csms):
    sim = sims("cpython", tmp_path / "flash", url=csms.url("DEV2")).start()
    csms.wait_received("BootNotification", 1, cp_id="DEV2")
    base = "http://127.0.0.1:%d" % csms.csms.port
    assert http_get(base + "/chargers") == (200, {"DEV2": {"connected": True}})
    sim.kill()
    csms.wait_for(lambda: not csms.cp("DEV2").connected, timeout=20)
    assert http_get(base + "/chargers") == (200, {"DEV2": {"connected": False}})


@pytest.fixture
def terminal():
    """A pseudo-terminal for a tool's stdin, as when run by hand; nothing is ever typed."""
    master, slave = pty.openpty()
    yield slave
    os.close(slave)
    os.close(master)


def interrupt(proc, within=5):
    """Ctrl-C as a terminal sends it (SIGINT to the process group); the tool must end promptly."""
    os.killpg(proc.p.pid, signal.SIGINT)
    try:
        proc.p.wait(within)
    except subprocess.TimeoutExpired:
        proc.stop()
        pytest.fail("still running %d s after Ctrl-C:\n%s" % (within, "\n".join(proc.lines[-20:])))


def test_csms_ends_promptly_on_ctrl_c_while_waiting_at_the_prompt(terminal):
    proc = Proc([sys.executable, "-m", "host_tools", "csms", "--port", "0"], stdin=terminal)
    try:
        proc.wait_line(lambda x: x.startswith("csms> type:"))
        interrupt(proc)
    finally:
        proc.stop()


def test_csms_prompt_sends_a_typed_command_to_the_charger(sims, tmp_path):
    port = free_port()
    proc = Proc([sys.executable, "-m", "host_tools", "csms", "--port", str(port)])
    try:
        proc.wait_line(lambda x: x.startswith("csms> type:"))
        sims("cpython", tmp_path / "flash", url="ws://127.0.0.1:%d/ocpp/DEV3" % port).start()
        proc.wait_line(lambda x: "charger DEV3 connected" in x)
        proc.p.stdin.write('GetConfiguration {"key": ["HeartbeatInterval"]}\n')
        proc.p.stdin.flush()
        line = proc.wait_line(lambda x: x.startswith("csms> DEV3 answered"))
        assert '"key": "HeartbeatInterval"' in line
        interrupt(proc)
    finally:
        proc.stop()


def test_devsim_starts_csms_and_a_connected_charger_and_prints_its_api(tmp_path):
    port = free_port()
    proc = Proc([sys.executable, "-m", "host_tools", "devsim", "--runtime", "cpython", "--http", "127.0.0.1:%d" % port,
                 "--csms-port", "0", "--state", str(tmp_path / "flash")])
    try:
        line = proc.wait_line(lambda x: "charger API:" in x)
        assert "http://127.0.0.1:%d/api/status" % port in line
        proc.wait_line(lambda x: '"BootNotification"' in x and x.startswith("charger|"))
        proc.wait_line(lambda x: x.startswith("charger|") and "BootNotification Accepted" in x)
        # The charger logs the answer a moment before it counts as online: ask until it does.
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen("http://127.0.0.1:%d/api/status?filter=ocppa" % port, timeout=10) as r:
                if json.loads(r.read()) == {"ocppa": True}:
                    break
            assert time.monotonic() < deadline, "the charger never came online:\n" + "\n".join(proc.lines[-30:])
            time.sleep(0.05)
    finally:
        proc.stop()
    assert proc.p.returncode is not None


def test_devsim_ends_promptly_on_ctrl_c_while_waiting_at_the_prompt(tmp_path, terminal):
    proc = Proc([sys.executable, "-m", "host_tools", "devsim", "--runtime", "cpython",
                 "--http", "127.0.0.1:%d" % free_port(), "--csms-port", "0", "--state", str(tmp_path / "flash")],
                stdin=terminal)
    try:
        proc.wait_line(lambda x: "charger API:" in x)
        proc.wait_line(lambda x: x.startswith("csms> type:"))
        interrupt(proc)
    finally:
        proc.stop()


def test_csms_card_option_answers_each_id_tag_with_its_group_and_status():
    import argparse
    from host_tools.csms import Csms, _card
    cards = dict(_card(t) for t in ("CARD1:FAMILY", "CARD2:FAMILY:Blocked", "CARD3"))
    csms = Csms(cards=cards, verbose=False)
    assert csms.default_answer(None, "Authorize", {"idTag": "CARD1"}) == {
        "idTagInfo": {"status": "Accepted", "parentIdTag": "FAMILY"}}
    assert csms.default_answer(None, "StartTransaction", {"idTag": "CARD2"})["idTagInfo"] == {
        "status": "Blocked", "parentIdTag": "FAMILY"}
    assert csms.default_answer(None, "StopTransaction", {"idTag": "CARD3"}) == {"idTagInfo": {"status": "Accepted"}}
    assert csms.default_answer(None, "Authorize", {"idTag": "OTHER"}) == {"idTagInfo": {"status": "Accepted"}}
    for bad in ("CARD1:FAMILY:Maybe", ":FAMILY", "A:B:Accepted:x"):
        with pytest.raises(argparse.ArgumentTypeError):
            _card(bad)


def test_devsim_output_keeps_each_threads_lines_whole():
    # The CSMS prints from its loop thread and the charger's output from a reader thread;
    # print() writes a text and its newline apart, so plain stdout mixes them mid-line.
    from host_tools.devsim import _WholeLines

    class Terminal:  # like a real stdout: each write may let the other thread run
        def __init__(self):
            self.parts = []

        def write(self, text):
            time.sleep(0)
            self.parts.append(text)

        def flush(self):
            time.sleep(0)
    out = _WholeLines(Terminal())

    def talk(name):
        for i in range(3000):
            print("%s %d" % (name * 20, i), file=out, flush=True)
    threads = [threading.Thread(target=talk, args=(n,)) for n in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = "".join(out._out.parts).split("\n")
    assert lines[-1] == "" and len(lines) == 6001
    assert all(x.startswith("A" * 20 + " ") or x.startswith("B" * 20 + " ") for x in lines[:-1])
    assert all(len(x.split()) == 2 for x in lines[:-1])
