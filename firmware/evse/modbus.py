"""Modbus RTU master over an injected UART, and the meter driver built on it.

The UART is anything with write(buf), any() and readinto(buf, nbytes): a
machine.UART on the board, a fake in tests. The master never blocks: start()
sends a request, poll(now_ms) collects bytes into a preallocated buffer and
says BUSY, DONE or FAILED, so it runs from a task that sleeps a few ms between
polls. Replies are found by scanning for slave id + function + byte count with
a valid CRC, which skips garbage and late bytes of an earlier reply; every
failure becomes `error` plus a counter, never an exception.

ModbusMeter reads a meter described by a register table (see SDM630 and
ABB_B23 below), merging nearby registers into as few requests as possible.
Register addresses in the tables are the 0-based addresses sent in the frame
(Eastron 30001 -> 0).
"""
import struct

from firmware.compat import const, print_exception, sleep_ms, ticks_add, ticks_diff, ticks_ms
from firmware.evse.meter import Meter

BUSY = const(0)
DONE = const(1)
FAILED = const(2)

READ_HOLDING = const(3)
READ_INPUT = const(4)

# Register table fields: where a value goes in the Meter interface.
V1 = const(0)
V2 = const(1)
V3 = const(2)
I1 = const(3)
I2 = const(4)
I3 = const(5)
P1 = const(6)
P2 = const(7)
P3 = const(8)
PF1 = const(9)
PF2 = const(10)
PF3 = const(11)
HZ = const(12)
WH = const(13)  # import energy, Wh after scaling
W = const(14)  # total active power

# Register types: big-endian words, high word first (Modbus convention).
F32 = const(0)
U16 = const(1)
S16 = const(2)
U32 = const(3)
S32 = const(4)
U64 = const(5)

_REGS = b"\x02\x01\x01\x02\x02\x04"  # registers per type, indexed by type

# A table is (function code, ((field, address, type, scale), ...)); scale turns
# the register value into the interface unit.
# Eastron SDM630 (Modbus protocol v1.5), input registers, IEEE754 float32.
SDM630 = (READ_INPUT, (
    (V1, 0x00, F32, 1.0),  # 30001 phase 1 line-to-neutral V
    (V2, 0x02, F32, 1.0),  # 30003
    (V3, 0x04, F32, 1.0),  # 30005
    (I1, 0x06, F32, 1.0),  # 30007 phase 1 current A
    (I2, 0x08, F32, 1.0),  # 30009
    (I3, 0x0A, F32, 1.0),  # 30011
    (P1, 0x0C, F32, 1.0),  # 30013 phase 1 active power W
    (P2, 0x0E, F32, 1.0),  # 30015
    (P3, 0x10, F32, 1.0),  # 30017
    (PF1, 0x1E, F32, 1.0),  # 30031 phase 1 power factor
    (PF2, 0x20, F32, 1.0),  # 30033
    (PF3, 0x22, F32, 1.0),  # 30035
    (W, 0x34, F32, 1.0),  # 30053 total system power W
    (HZ, 0x46, F32, 1.0),  # 30071 frequency Hz
    (WH, 0x48, F32, 1000.0),  # 30073 total import kWh
))

# ABB B21/B23/B24 (Modbus register map 2CMC485003M0201), holding registers,
# scaled integers. Two requests: energy at 0x5000, instantaneous values at 0x5B00.
ABB_B23 = (READ_HOLDING, (
    (WH, 0x5000, U64, 10.0),  # active import energy, 0.01 kWh
    (V1, 0x5B00, U32, 0.1),  # L1-N voltage, 0.1 V
    (V2, 0x5B02, U32, 0.1),
    (V3, 0x5B04, U32, 0.1),
    (I1, 0x5B0C, U32, 0.01),  # L1 current, 0.01 A
    (I2, 0x5B0E, U32, 0.01),
    (I3, 0x5B10, U32, 0.01),
    (W, 0x5B14, S32, 0.01),  # total active power, 0.01 W
    (P1, 0x5B16, S32, 0.01),
    (P2, 0x5B18, S32, 0.01),
    (P3, 0x5B1A, S32, 0.01),
    (HZ, 0x5B2C, U16, 0.01),  # frequency, 0.01 Hz
    (PF1, 0x5B3B, S16, 0.001),  # L1 power factor, 0.001
    (PF2, 0x5B3C, S16, 0.001),
    (PF3, 0x5B3D, S16, 0.001),
))


def crc16(buf, start=0, end=-1):
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF) of buf[start:end].

    Bitwise rather than a 512-byte table: the table costs more .mpy bytes than
    it saves time at one poll a second. Over a whole frame including its CRC
    bytes the result is 0.
    """
    if end < 0:
        end = len(buf)
    crc = 0xFFFF
    for i in range(start, end):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def decode(buf, p, typ):
    """The value of a register of type typ at byte offset p (big-endian words)."""
    if typ == F32:
        return struct.unpack_from(">f", buf, p)[0]
    v = (buf[p] << 8) | buf[p + 1]
    if typ == U16:
        return v
    if typ == S16:
        return v - 0x10000 if v & 0x8000 else v
    v = (v << 16) | (buf[p + 2] << 8) | buf[p + 3]
    if typ == U32:
        return v
    if typ == S32:
        return v - 0x100000000 if v & 0x80000000 else v
    return (v << 32) | (buf[p + 4] << 24) | (buf[p + 5] << 16) | (buf[p + 6] << 8) | buf[p + 7]


def plan_blocks(entries, max_gap=20, max_regs=80):
    """Group table entries into requests: [(start, count, entries), ...].

    Registers between two wanted values are read along when the gap is at most
    max_gap registers: 20 registers cost 40 bytes (~42 ms at 9600 baud), less
    than another request and its turnaround. max_regs keeps a request within
    what meters accept (Modbus allows 125; Eastron documents 80).
    """
    blocks = []
    start = end = -1
    group = []
    for e in sorted(entries, key=lambda e: e[1]):
        a = e[1]
        b = a + _REGS[e[2]]
        if group and a - end <= max_gap and b - start <= max_regs:
            if b > end:
                end = b
            group.append(e)
        else:
            if group:
                blocks.append((start, end - start, tuple(group)))
            start, end, group = a, b, [e]
    if group:
        blocks.append((start, end - start, tuple(group)))
    return blocks


class ModbusMaster:
    def __init__(self, uart, timeout_ms=500, gap_ms=30, rx_size=256, de=None):
        self.uart = uart
        self.de = de  # optional RS485 driver-enable pin for transceivers without auto direction
        self.timeout_ms = timeout_ms
        # Silence that ends a reply with no valid frame in it. Longer than the
        # 3.5-character gap of the standard: the ESP32 UART hands data over in
        # chunks and the polling task sleeps a few ms.
        self.gap_ms = gap_ms
        self.rx = bytearray(rx_size)
        self._mv = memoryview(self.rx)
        self._tx = bytearray(8)
        self._n = 0
        self._from = 0  # rx before this offset holds no possible frame start
        self._slave = self._fc = self._count = 0
        self._sent = self._heard = 0
        self.busy = False
        self.data = 0  # offset in rx of the first data byte of the last good reply
        self.error = None
        self.requests = self.replies = 0
        self.timeouts = self.crc_errors = self.frame_errors = self.exceptions = 0
        self.dropped = 0  # stray bytes discarded before a request

    def start(self, slave, fc, addr, count, now_ms):
        """Send a read request (fc 3 or 4) for count registers from addr."""
        if 2 * count + 5 > len(self.rx):
            raise ValueError("modbus: reply longer than rx buffer")
        self._drain()
        tx = self._tx
        tx[0] = slave
        tx[1] = fc
        tx[2] = addr >> 8
        tx[3] = addr & 0xFF
        tx[4] = count >> 8
        tx[5] = count & 0xFF
        c = crc16(tx, 0, 6)
        tx[6] = c & 0xFF
        tx[7] = c >> 8
        de = self.de
        if de is not None:
            de.value(1)
        self.uart.write(tx)
        if de is not None:
            self.uart.flush()  # machine.UART.flush waits until the last bit is out
            de.value(0)
        self._slave = slave
        self._fc = fc
        self._count = count
        self._n = self._from = 0
        self._sent = self._heard = now_ms
        self.busy = True
        self.requests += 1

    def _drain(self):
        # Bytes before our request belong to nobody (a late reply, line noise).
        u = self.uart
        while u.any():
            k = u.readinto(self.rx, len(self.rx))
            if not k:
                break
            self.dropped += k

    def _receive(self):
        u = self.uart
        got = 0
        while True:
            avail = u.any()
            if not avail:
                return got
            n = self._n
            room = len(self.rx) - n
            if room == 0:
                self._shift()
                n = self._n
                room = len(self.rx) - n
            k = u.readinto(self._mv[n:], avail if avail < room else room)
            if not k:
                return got
            self._n = n + k
            got += k

    def _shift(self):
        # Buffer full of junk: keep only the tail that could still start a frame.
        keep = 2 * self._count + 4
        n = self._n
        buf = self.rx
        for i in range(keep):
            buf[i] = buf[n - keep + i]
        self._n = keep
        self._from = 0

    def poll(self, now_ms):
        if not self.busy:
            return FAILED
        if self._receive():
            self._heard = now_ms
            r = self._scan(False)
            if r != BUSY:
                return self._end(r)
        # timeout_ms bounds the wait for the reply to start; a reply still
        # streaming at that moment is heard out until the line goes quiet (at 9600
        # baud 80 registers take 170 ms), capped at 4 * timeout_ms against floods.
        since = ticks_diff(now_ms, self._sent)
        if ((since >= self.timeout_ms or self._n >= 2 * self._count + 5)
                and ticks_diff(now_ms, self._heard) >= self.gap_ms) or since >= 4 * self.timeout_ms:
            return self._end(self._scan(True))
        return BUSY

    def _end(self, r):
        self.busy = False
        if r == DONE:
            self.replies += 1
            self.error = None
        return r

    def _scan(self, final):
        """Look for the reply in rx. With final=True, no valid reply will come:
        name the failure, count it and return FAILED."""
        buf = self.rx
        n = self._n
        s = self._slave
        fc = self._fc
        nb = 2 * self._count
        flen = nb + 5
        bad_crc = short = other = False
        i = self._from
        while i + 5 <= n:
            f = buf[i + 1]
            if f == fc and buf[i + 2] == nb:
                if i + flen > n:
                    short = True
                elif crc16(buf, i, i + flen) == 0:
                    if buf[i] == s:
                        self.data = i + 3
                        return DONE
                    other = True
                elif buf[i] == s:
                    bad_crc = True
            else:
                if f == fc | 0x80 and buf[i] == s and crc16(buf, i, i + 5) == 0:
                    self.exceptions += 1
                    self.error = "modbus exception %d" % buf[i + 2]
                    return FAILED
                if i == self._from:
                    # No frame starts here whatever arrives next: later scans skip it.
                    self._from = i + 1
            i += 1
        if not final:
            return BUSY
        if n == 0:
            self.timeouts += 1
            self.error = "modbus timeout"
            return FAILED
        if bad_crc:
            self.crc_errors += 1
            self.error = "modbus bad crc"
            return FAILED
        self.frame_errors += 1
        if other:
            self.error = "modbus wrong slave"
        elif short:
            self.error = "modbus short frame"
        else:
            self.error = "modbus bad frame"
        return FAILED


class ModbusMeter(Meter):
    """A meter read by Modbus RTU from run(); update() only marks stale data."""

    def __init__(self, uart, slave=1, regmap=SDM630, interval_ms=1000, timeout_ms=500,
                 gap_ms=30, stale_ms=10000, max_gap=20, max_regs=80, de=None,
                 master=None, clock=ticks_ms, step_ms=5):
        Meter.__init__(self)
        self.master = master if master is not None else ModbusMaster(uart, timeout_ms, gap_ms, de=de)
        self.slave = slave
        self.interval_ms = interval_ms
        self.stale_ms = stale_ms
        self.step_ms = step_ms
        self._clock = clock
        self._fc = regmap[0]
        self._blocks = plan_blocks(regmap[1], max_gap, max_regs)
        self._has_total = False
        for e in regmap[1]:
            if e[0] == W:
                self._has_total = True
        self._lists = (self.voltage, self.current, self.power, self.pf)
        self._block = -1  # block being read, -1 between polls
        self._due = None
        self._good_at = None
        self.polls = 0  # complete good readings
        self.failures = 0

    def requests_per_poll(self):
        return len(self._blocks)

    def step(self, now_ms):
        """Advance the poll state machine; True while a request is outstanding."""
        m = self.master
        if self._block < 0:
            if self._due is not None and ticks_diff(now_ms, self._due) < 0:
                return False
            self._due = ticks_add(now_ms, self.interval_ms)
            self._block = 0
            self._request(now_ms)
            return True
        if not m.busy:
            # The next block's request waits one step: Modbus wants a silent gap
            # between the reply and the next request.
            self._request(now_ms)
            return True
        r = m.poll(now_ms)
        if r == BUSY:
            return True
        if r == DONE:
            self._decode(self._blocks[self._block], m.data)
            self._block += 1
            if self._block < len(self._blocks):
                return True
            if not self._has_total:
                p = self.power
                self.power_w = p[0] + p[1] + p[2]
            self.ok = True
            self.error = None
            self._good_at = now_ms
            self.polls += 1
        else:
            # Values keep the last good reading; ok says they are not current.
            self.ok = False
            self.error = m.error
            self.failures += 1
        self._block = -1
        return False

    def _request(self, now_ms):
        b = self._blocks[self._block]
        self.master.start(self.slave, self._fc, b[0], b[1], now_ms)

    def _decode(self, block, off):
        buf = self.master.rx
        start = block[0]
        for field, addr, typ, scale in block[2]:
            v = decode(buf, off + 2 * (addr - start), typ)
            if scale != 1.0:
                v = v * scale
            if field < HZ:
                if field >= PF1 and v < 0:
                    v = -v  # the sign only says leading/lagging
                self._lists[field // 3][field % 3] = v
            elif field == HZ:
                self.frequency = v
            elif field == WH:
                self.energy_wh = v
            else:
                self.power_w = v

    def update(self, now_ms):
        g = self._good_at
        if self.ok and g is not None and ticks_diff(now_ms, g) > self.stale_ms:
            self.ok = False
            self.error = "modbus stale"

    async def run(self):
        clock = self._clock
        while True:
            try:
                busy = self.step(clock())
            except Exception as e:  # a UART error must not end metering
                print_exception(e)
                self.master.busy = False
                self._block = -1
                self.ok = False
                self.error = "modbus driver error"
                busy = False
            if busy:
                await sleep_ms(self.step_ms)
            else:
                wait = ticks_diff(self._due, clock()) if self._due is not None else self.step_ms
                await sleep_ms(wait if wait > 0 else 1)
