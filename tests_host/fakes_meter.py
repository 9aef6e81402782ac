"""Test doubles for the meter drivers: a clock, an S0 pin, a UART and a Modbus slave.

Plain Python that also runs on MicroPython, so the run_mp tests use the same fakes.
"""
import struct

from firmware.compat import ticks_add

# Wrap like the runtime's ticks: 2**30 on the ESP32 and the CPython shim, wider on
# the 64-bit unix port.
_MASK = ticks_add(0, -1)


class FakeClock:
    """One time base for ticks_ms and ticks_us; tests advance it instead of sleeping."""

    def __init__(self, start_us=0):
        self.t_us = start_us

    def us(self):
        return self.t_us & _MASK

    def ms(self):
        return (self.t_us // 1000) & _MASK

    def advance(self, ms=0, us=0):
        self.t_us += ms * 1000 + us


class FakePin:
    """machine.Pin stand-in: records irq() and lets a test drive edges."""
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, level=1):
        self.level = level
        self.handler = None
        self.trigger = None

    def irq(self, handler=None, trigger=None):
        self.handler = handler
        self.trigger = trigger

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v

    def pulse(self):
        """A clean S0 pulse: the line goes low (falling edge fires the IRQ) and returns high."""
        self.level = 0
        self.handler(self)
        self.level = 1

    def edge(self, level_seen):
        """A falling edge whose handler reads level_seen (1 = the line already released)."""
        self.level = level_seen
        self.handler(self)
        self.level = 1


class FakeUart:
    """machine.UART stand-in: write() passes each request to responder, whose reply
    becomes readable. Without a clock a reply is there at once; with one, it starts
    latency_ms after the request and each byte takes char_us (1042 us at 9600 8N1).
    chunk limits how many bytes one any()/readinto() hands over."""

    def __init__(self, responder=None, chunk=0, clock=None, latency_ms=0, char_us=0):
        self.responder = responder
        self.chunk = chunk
        self.clock = clock
        self.latency_ms = latency_ms
        self.char_us = char_us
        self.rx = b""
        self._due = []  # arrival time (us) of each byte in rx
        self.written = []
        self.flushes = 0
        self.reads = 0

    def _now(self):
        return self.clock.t_us if self.clock is not None else 0

    def feed(self, data, at_us=None):
        t = self._now() if at_us is None else at_us
        for i in range(len(data)):
            self._due.append(t + (i + 1) * self.char_us)
        self.rx = self.rx + bytes(data)

    def write(self, buf):
        data = bytes(buf)
        self.written.append(data)
        if self.responder is not None:
            reply = self.responder(data)
            if reply:
                self.feed(reply, self._now() + self.latency_ms * 1000)
        return len(data)

    def flush(self):
        self.flushes += 1

    def any(self):
        n = len(self.rx)
        if self.clock is not None:
            now = self._now()
            n = 0
            while n < len(self._due) and self._due[n] <= now:
                n += 1
        if self.chunk and n > self.chunk:
            return self.chunk
        return n

    def readinto(self, buf, nbytes=-1):
        n = self.any()
        if nbytes >= 0 and nbytes < n:
            n = nbytes
        if len(buf) < n:
            n = len(buf)
        if not n:
            return None
        for i in range(n):
            buf[i] = self.rx[i]
        self.rx = self.rx[n:]
        self._due = self._due[n:]
        self.reads += 1
        return n


def crc16_ref(data):
    """Modbus CRC written out from its definition (independent of the driver's)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return crc


def with_crc(body):
    c = crc16_ref(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))


class ModbusSlave:
    """A meter on the bus: answers fc 3/4 from a dict of 16-bit registers.

    faults is a list of one-shot faults applied to the next replies in order:
    "bad_crc", "truncated", "silent", "garbage", "wrong_slave", "exception", None (good).
    """

    def __init__(self, slave=1, fc=4):
        self.slave = slave
        self.fc = fc
        self.regs = {}
        self.faults = []
        self.requests = []

    def set_f32(self, addr, v):
        hi, lo = struct.unpack(">HH", struct.pack(">f", v))
        self.regs[addr] = hi
        self.regs[addr + 1] = lo

    def set_int(self, addr, v, nregs):
        v &= (1 << (16 * nregs)) - 1
        for i in range(nregs):
            self.regs[addr + i] = (v >> (16 * (nregs - 1 - i))) & 0xFFFF

    def reply(self, req):
        if len(req) != 8 or crc16_ref(req) != 0 or req[0] != self.slave:
            return b""
        fc = req[1]
        addr = (req[2] << 8) | req[3]
        count = (req[4] << 8) | req[5]
        self.requests.append((fc, addr, count))
        if fc != self.fc:
            return with_crc(bytes((self.slave, fc | 0x80, 1)))
        body = bytearray((self.slave, fc, 2 * count))
        for a in range(addr, addr + count):
            v = self.regs.get(a, 0)
            body.append(v >> 8)
            body.append(v & 0xFF)
        return with_crc(body)

    def __call__(self, req):
        frame = self.reply(req)
        fault = self.faults.pop(0) if self.faults else None
        if not frame or fault is None:
            return frame
        if fault == "silent":
            return b""
        if fault == "bad_crc":
            f = bytearray(frame)
            f[5] ^= 0x40
            return bytes(f)
        if fault == "truncated":
            return frame[:len(frame) // 2]
        if fault == "garbage":
            # Junk that starts like a reply from this slave, then the real frame.
            return bytes((0x00, 0xFF, self.slave, req[1], 0x13, 0x37, self.slave)) + frame
        if fault == "wrong_slave":
            return with_crc(bytes((self.slave + 1,)) + frame[1:-2])
        if fault == "exception":
            return with_crc(bytes((self.slave, req[1] | 0x80, 2)))
        raise ValueError(fault)


class FakeMeter:
    """Just the Meter attributes EnergyCounter reads."""

    def __init__(self, energy_wh=0.0, ok=True):
        self.energy_wh = energy_wh
        self.ok = ok


class FailingStore:
    """A Store whose writes fail (flash full)."""

    def __init__(self):
        self.attempts = 0

    def read_json(self, name):
        return None, None

    def write_json(self, name, obj):
        self.attempts += 1
        raise OSError(28)


class MemStore:
    """Store stand-in in RAM, for tests that count writes over long sessions."""

    def __init__(self):
        self.files = {}
        self.writes = 0

    def read_json(self, name):
        return self.files.get(name), None

    def write_json(self, name, obj):
        self.files[name] = dict(obj)
        self.writes += 1
