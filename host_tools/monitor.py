"""python -m host_tools monitor PORT: the board's console log, readable.

Each line the board prints gets the host's time in front. The OCPP frames the
firmware logs (firmware/log.py `frame`: `<uptime ms> out [2,"id","Action",{...}]`
and `in ...`) are shown compactly: the direction as an arrow (-> to the central
system, <- from it), the action by name, for answers too (the call's id tells
which action they answer), and the payload cut to --width characters.

    python -m host_tools monitor /dev/ttyUSB0 [--ocpp] [--grep RE] [--log FILE] [--baud 115200]

--ocpp shows the frames only; --grep shows the lines matching a regular
expression (on the line as printed or as received). --log FILE appends every
line, unfiltered and in full, with its time. The monitor stays on when the
board resets (a line notes that its uptime went back) and when the port goes
away (cable pulled): it waits for the port to come back and carries on.
Ctrl-C ends it. It only listens: opening the port does not reset the board, and
it sends nothing (for the REPL: make repl).
"""
import argparse
import json
import os
import re
import sys
import time
from datetime import datetime

RETRY_S = 0.5
DEFAULT_BAUD = 115200
DEFAULT_WIDTH = 160

# firmware/log.py _line: "%9d %s %s" % (uptime_ms, level, message)
_LINE = re.compile(r"^\s*(\d+) (in|out|drop|I|W|E) (.*)$")
_ARROWS = {"out": "->", "in": "<-"}


def stamp(t=None):
    t = time.time() if t is None else t
    return datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def _cut(text, width):
    return text if width is None or len(text) <= width else text[:max(width - 3, 0)] + "..."


class View:
    """Turns the board's lines into what is shown; remembers call ids to name the answers."""

    def __init__(self, width=DEFAULT_WIDTH):
        self.width = width
        self.calls = {}
        self.last_uptime = None

    def parse(self, line):
        """(uptime ms or None, level or None, message) of one log line."""
        m = _LINE.match(line)
        if not m:
            return None, None, line
        return int(m.group(1)), m.group(2), m.group(3)

    def restarted(self, uptime):
        """True when the board's uptime went back: it restarted since the last line."""
        back = uptime is not None and self.last_uptime is not None and uptime < self.last_uptime
        if uptime is not None:
            self.last_uptime = uptime
        return back

    def frame(self, direction, text):
        """The compact form of one frame."""
        arrow = _ARROWS.get(direction, "!!")
        if direction == "drop":
            return "%s dropped: %s" % (arrow, _cut(text, self.width))
        try:
            msg = json.loads(text)
            kind, call_id = msg[0], msg[1]
        except (ValueError, TypeError, IndexError, KeyError):
            return "%s %s" % (arrow, _cut(text, self.width))
        if kind == 2 and len(msg) >= 4:
            self.calls[call_id] = msg[2]
            if len(self.calls) > 256:  # answers come soon after their call; keep the map small
                self.calls.pop(next(iter(self.calls)))
            head, body = "%s %s" % (arrow, msg[2]), msg[3]
        elif kind == 3 and len(msg) >= 3:
            head, body = "%s %s answer" % (arrow, self.calls.pop(call_id, "?")), msg[2]
        elif kind == 4 and len(msg) >= 4:
            head = "%s %s ERROR %s" % (arrow, self.calls.pop(call_id, "?"), msg[2])
            body = msg[3] if len(msg) < 5 or not msg[4] else "%s %s" % (msg[3], json.dumps(msg[4]))
            return _cut("%s %s" % (head, body), self.width)
        else:
            return "%s %s" % (arrow, _cut(text, self.width))
        return _cut("%s %s" % (head, json.dumps(body, separators=(",", ":"), ensure_ascii=False)), self.width)

    def show(self, line):
        """(text to print, is it a frame?) for one received line (without its time)."""
        uptime, level, msg = self.parse(line)
        if level in ("in", "out", "drop"):
            return "%9d %s" % (uptime, self.frame(level, msg)), True
        return line, False


class Output:
    """Where lines go: the screen (filtered) and the log file (everything)."""

    def __init__(self, view, ocpp=False, grep=None, log=None, out=None):
        self.view = view
        self.ocpp = ocpp
        self.grep = re.compile(grep) if grep else None
        self.log = log
        self.out = out or sys.stdout

    def _emit(self, text, t):
        self.out.write("%s %s\n" % (stamp(t), text))
        self.out.flush()

    def note(self, text, t=None):
        """A line of the monitor itself (always shown, always logged)."""
        t = time.time() if t is None else t
        self._emit("-- " + text, t)
        if self.log:
            self.log.write("%s -- %s\n" % (stamp(t), text))
            self.log.flush()

    def line(self, raw, t=None):
        t = time.time() if t is None else t
        if self.log:
            self.log.write("%s %s\n" % (stamp(t), raw))
            self.log.flush()
        uptime, _, _ = self.view.parse(raw)
        if self.view.restarted(uptime):
            self.note("the board restarted (its uptime went back)", t)
        shown, is_frame = self.view.show(raw)
        if self.ocpp and not is_frame:
            return
        if self.grep and not (self.grep.search(shown) or self.grep.search(raw)):
            return
        self._emit(shown, t)


def open_port(port, baud):
    # DTR and RTS stay as opening the port sets them, both asserted, as mpremote leaves them: on ESP32
    # boards they drive EN and GPIO0 through the auto-reset circuit, which resets the chip only when
    # they differ. Clearing them one after the other would pass through a state that resets it.
    import serial
    return serial.Serial(port, baud, timeout=0.2)


def follow(port, output, baud=DEFAULT_BAUD, stop=lambda: False):
    """Print the board's lines until stop() is true (or Ctrl-C), reopening the port when it goes away."""
    import serial
    waiting = False
    connected_once = False
    while not stop():
        try:
            ser = open_port(port, baud)
        except (serial.SerialException, OSError) as e:
            if not waiting:
                output.note("waiting for %s (%s)" % (port, getattr(e, "strerror", None) or e))
                waiting = True
            time.sleep(RETRY_S)
            continue
        waiting = False
        output.note("%s %s at %d baud" % ("reconnected to" if connected_once else "connected to", port, baud))
        connected_once = True
        pending = b""
        try:
            while not stop():
                data = ser.read(ser.in_waiting or 1)
                if not data:
                    continue
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    output.line(raw.rstrip(b"\r").decode("utf-8", "replace"))
        except (serial.SerialException, OSError) as e:
            if pending:
                output.line(pending.rstrip(b"\r").decode("utf-8", "replace"))
            output.note("%s went away (%s); waiting for it to come back" % (port, e))
            waiting = True
        finally:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools monitor", description=__doc__.split("\n")[0])
    p.add_argument("port", help="the board's serial port, e.g. /dev/ttyUSB0 (a /dev/serial/by-id/ name "
                                "survives re-plugging into another USB socket)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    p.add_argument("--ocpp", action="store_true", help="show the OCPP frames only")
    p.add_argument("--grep", metavar="RE", help="show only the lines matching this regular expression")
    p.add_argument("--log", metavar="FILE", help="append every line (unfiltered, with its time) to FILE")
    p.add_argument("--width", type=int, default=DEFAULT_WIDTH, help="cut frames to this many characters "
                                                                    "(0: never)")
    args = p.parse_args(argv)
    if args.grep:
        try:
            re.compile(args.grep)
        except re.error as e:
            print("monitor: --grep %r: %s" % (args.grep, e), file=sys.stderr)
            return 2
    log = None
    if args.log:
        try:
            log = open(os.path.expanduser(args.log), "a", encoding="utf-8")
        except OSError as e:
            print("monitor: cannot write %s: %s" % (args.log, e), file=sys.stderr)
            return 1
    output = Output(View(args.width or None), args.ocpp, args.grep, log)
    try:
        follow(args.port, output, args.baud)
    except KeyboardInterrupt:
        pass
    finally:
        if log:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
