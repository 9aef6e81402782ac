import asyncio
import struct

import pytest
from hypothesis import given, settings, strategies as st

from firmware.evse import modbus
from firmware.evse.modbus import (
    ABB_B23, BUSY, DONE, FAILED, SDM630, ModbusMaster, ModbusMeter, crc16, decode, plan_blocks,
)
from tests_host.fakes_meter import FakeClock, FakeUart, ModbusSlave, crc16_ref, with_crc

SDM_VALUES = {
    0x00: 231.5, 0x02: 229.0, 0x04: 232.25,  # V
    0x06: 15.5, 0x08: 16.0, 0x0A: 14.75,  # A
    0x0C: 3500.0, 0x0E: 3600.0, 0x10: 3400.0,  # W
    0x1E: 0.98, 0x20: -0.97, 0x22: 0.99,  # PF (sign = lead/lag)
    0x34: 10500.0,  # total W
    0x46: 50.02,  # Hz
    0x48: 12345.5,  # import kWh
}


def f32(v):
    return struct.unpack(">f", struct.pack(">f", v))[0]


def sdm_slave(slave=1):
    s = ModbusSlave(slave=slave, fc=4)
    for a, v in SDM_VALUES.items():
        s.set_f32(a, v)
    return s


def make_meter(slave=None, regmap=SDM630, chunk=0, **kw):
    slave = slave or sdm_slave()
    uart = FakeUart(slave, chunk=chunk)
    clock = FakeClock(((1 << 30) - 2000) * 1000)  # ticks_ms wraps during the test
    kw.setdefault("interval_ms", 1000)
    meter = ModbusMeter(uart, regmap=regmap, clock=clock.ms, **kw)
    return meter, slave, uart, clock


def run_poll(meter, clock, step_ms=5, limit_ms=5000):
    """Step until one poll cycle ends (or limit); returns the ms it took."""
    t = 0
    while True:
        busy = meter.step(clock.ms())
        if not busy and t > 0:
            return t
        clock.advance(ms=step_ms)
        t += step_ms
        assert t < limit_ms, "poll never finished"


def good_poll(meter, clock):
    clock.advance(ms=meter.interval_ms)
    run_poll(meter, clock)


# --- CRC and framing ---------------------------------------------------------

def test_crc_of_check_string_is_4b37():
    assert crc16(b"123456789") == 0x4B37


def test_crc_of_sdm_voltage_request_is_71cb():
    c = crc16(bytes.fromhex("010400000002"))
    assert bytes((c & 0xFF, c >> 8)) == bytes.fromhex("71cb")


def test_crc_of_modbus_spec_example_is_7687():
    c = crc16(bytes.fromhex("1103006b0003"))
    assert bytes((c & 0xFF, c >> 8)) == bytes.fromhex("7687")


def test_crc_over_a_frame_with_its_crc_is_zero():
    assert crc16(bytes.fromhex("01040000000271cb")) == 0


def test_crc_of_a_slice_equals_crc_of_the_bytes():
    buf = b"xx" + bytes.fromhex("1103006b0003") + b"yy"
    assert crc16(buf, 2, 8) == crc16(bytes.fromhex("1103006b0003"))


@given(st.binary(max_size=64))
def test_crc_matches_the_reference_definition(data):
    assert crc16(data) == crc16_ref(data)


def test_request_frame_bytes():
    uart = FakeUart()
    m = ModbusMaster(uart)
    m.start(1, 4, 0, 2, 0)
    assert uart.written == [bytes.fromhex("01040000000271cb")]


def test_rs485_driver_enable_is_raised_only_while_sending():
    levels = []

    class DE:
        def value(self, v):
            levels.append(v)

    uart = FakeUart()
    m = ModbusMaster(uart, de=DE())
    m.start(1, 4, 0, 2, 0)
    assert levels == [1, 0] and uart.flushes == 1


# --- register decoding and request planning -------------------------------

def test_decode_float32_big_endian():
    assert decode(struct.pack(">f", 230.5), 0, modbus.F32) == 230.5


def test_decode_signed_and_unsigned_integers():
    assert decode(b"\xff\xfe", 0, modbus.S16) == -2
    assert decode(b"\xff\xfe", 0, modbus.U16) == 0xFFFE
    assert decode(b"\xff\xff\xff\x9c", 0, modbus.S32) == -100
    assert decode(b"\x00\x01\x00\x00", 0, modbus.U32) == 65536
    assert decode(b"\x00\x00\x00\x00\x00\x12\xd6\x87", 0, modbus.U64) == 1234567


def test_sdm630_table_is_read_in_one_request():
    assert plan_blocks(SDM630[1]) == [(0, 74, tuple(sorted(SDM630[1], key=lambda e: e[1])))]


def test_abb_b23_table_is_read_in_two_requests():
    blocks = plan_blocks(ABB_B23[1])
    assert [(b[0], b[1]) for b in blocks] == [(0x5000, 4), (0x5B00, 0x3E)]


def test_registers_far_apart_go_in_separate_requests():
    table = ((modbus.V1, 0, modbus.F32, 1.0), (modbus.WH, 100, modbus.F32, 1.0))
    assert [(b[0], b[1]) for b in plan_blocks(table)] == [(0, 2), (100, 2)]


def test_a_request_never_exceeds_max_regs():
    table = tuple((modbus.V1, a, modbus.F32, 1.0) for a in range(0, 200, 2))
    assert max(b[1] for b in plan_blocks(table, max_regs=80)) <= 80


# --- the meter against a good slave ---------------------------------------

def test_sdm630_values_land_in_the_meter_interface():
    meter, _, _, clock = make_meter()
    run_poll(meter, clock)
    assert meter.ok and meter.error is None
    assert meter.voltage == pytest.approx([231.5, 229.0, 232.25])
    assert meter.current == pytest.approx([15.5, 16.0, 14.75])
    assert meter.power == pytest.approx([3500.0, 3600.0, 3400.0])
    assert meter.pf == pytest.approx([f32(0.98), f32(0.97), f32(0.99)])
    assert meter.power_w == 10500.0
    assert meter.frequency == pytest.approx(f32(50.02))
    assert meter.energy_wh == pytest.approx(12345500.0)


def test_sdm630_request_reads_input_registers_from_address_0():
    meter, slave, _, clock = make_meter()
    run_poll(meter, clock)
    assert slave.requests == [(4, 0, 74)]


def test_abb_b23_scaled_integers_land_in_the_meter_interface():
    slave = ModbusSlave(fc=3)
    slave.set_int(0x5000, 123456789, 4)  # 1234567.89 kWh
    slave.set_int(0x5B00, 2301, 2)
    slave.set_int(0x5B0C, 1605, 2)
    slave.set_int(0x5B14, -150000, 2)  # -1500 W (export)
    slave.set_int(0x5B16, 370000, 2)
    slave.set_int(0x5B2C, 4998, 1)
    slave.set_int(0x5B3B, -950, 1)
    meter, _, _, clock = make_meter(slave, regmap=ABB_B23)
    run_poll(meter, clock)
    assert meter.ok, meter.error
    assert slave.requests == [(3, 0x5000, 4), (3, 0x5B00, 0x3E)]
    assert meter.energy_wh == pytest.approx(1234567890.0)
    assert meter.voltage[0] == pytest.approx(230.1)
    assert meter.current[0] == pytest.approx(16.05)
    assert meter.power_w == pytest.approx(-1500.0)
    assert meter.power[0] == pytest.approx(3700.0)
    assert meter.frequency == pytest.approx(49.98)
    assert meter.pf[0] == pytest.approx(0.95)


def test_total_power_is_the_sum_of_phases_when_the_table_lacks_it():
    table = (4, tuple(e for e in SDM630[1] if e[0] != modbus.W))
    meter, _, _, clock = make_meter(regmap=table)
    run_poll(meter, clock)
    assert meter.power_w == pytest.approx(10500.0)


def test_reply_arriving_in_chunks_is_assembled():
    meter, _, _, clock = make_meter(chunk=7)
    run_poll(meter, clock)
    assert meter.ok and meter.energy_wh == pytest.approx(12345500.0)


def test_next_poll_waits_for_the_interval():
    meter, slave, _, clock = make_meter(interval_ms=1000)
    run_poll(meter, clock)
    for _ in range(10):
        clock.advance(ms=50)
        meter.step(clock.ms())
    assert len(slave.requests) == 1
    clock.advance(ms=500)
    meter.step(clock.ms())
    assert len(slave.requests) == 2


def test_second_block_request_waits_one_step_after_the_first_reply():
    slave = ModbusSlave(fc=3)
    meter, _, uart, clock = make_meter(slave, regmap=ABB_B23)
    meter.step(clock.ms())  # request 1, reply is there at once
    meter.step(clock.ms())  # reply 1 decoded
    assert len(uart.written) == 1
    meter.step(clock.ms())
    assert len(uart.written) == 2


def test_stray_bytes_before_a_request_are_dropped():
    meter, _, uart, clock = make_meter()
    uart.feed(b"\x01\x04\xff\x00")
    run_poll(meter, clock)
    assert meter.ok and meter.master.dropped == 4


# --- faults: error reported, last values kept, recovery -------------------

def fault_then_recover(fault):
    meter, slave, _, clock = make_meter()
    run_poll(meter, clock)
    good_energy = meter.energy_wh
    slave.faults = [fault]
    slave.set_f32(0x48, 20000.0)
    good_poll(meter, clock)
    failed = (meter.ok, meter.error, meter.energy_wh)
    good_poll(meter, clock)
    return failed, good_energy, meter


@pytest.mark.parametrize("fault,error", [
    ("bad_crc", "modbus bad crc"),
    ("truncated", "modbus short frame"),
    ("silent", "modbus timeout"),
    ("wrong_slave", "modbus wrong slave"),
    ("exception", "modbus exception 2"),
])
def test_bad_reply_reports_error_and_keeps_last_values(fault, error):
    (ok, err, energy), good_energy, _ = fault_then_recover(fault)
    assert ok is False
    assert err == error
    assert energy == good_energy


@pytest.mark.parametrize("fault", ["bad_crc", "truncated", "silent", "wrong_slave", "exception"])
def test_meter_recovers_on_the_next_good_reply(fault):
    _, _, meter = fault_then_recover(fault)
    assert meter.ok and meter.error is None
    assert meter.energy_wh == 20000000.0


def test_garbage_before_the_reply_is_skipped():
    meter, slave, _, clock = make_meter()
    slave.faults = ["garbage"]
    run_poll(meter, clock)
    assert meter.ok and meter.energy_wh == pytest.approx(12345500.0)


def test_errors_are_counted_by_kind():
    meter, slave, _, clock = make_meter()
    slave.faults = ["bad_crc", "silent", "exception", "wrong_slave"]
    for _ in range(4):
        good_poll(meter, clock)
    m = meter.master
    assert (m.crc_errors, m.timeouts, m.exceptions, m.frame_errors) == (1, 1, 1, 1)
    assert meter.failures == 4


def test_silent_slave_times_out_after_timeout_ms():
    meter, slave, _, clock = make_meter(timeout_ms=500)
    slave.faults = ["silent"]
    took = run_poll(meter, clock, step_ms=5)
    assert 500 <= took <= 510
    assert meter.error == "modbus timeout"


def test_corrupt_full_length_reply_fails_after_the_silence_gap_not_the_timeout():
    meter, slave, _, clock = make_meter(timeout_ms=500, gap_ms=30)
    slave.faults = ["bad_crc"]
    took = run_poll(meter, clock, step_ms=5)
    assert took <= 40


def test_a_wrong_function_in_a_reply_is_not_accepted():
    slave = sdm_slave()
    slave.fc = 3  # answers fc 4 with "illegal function"
    meter, _, _, clock = make_meter(slave)
    run_poll(meter, clock)
    assert not meter.ok and meter.error == "modbus exception 1"


def test_update_marks_values_stale_when_polling_stops():
    meter, _, _, clock = make_meter(stale_ms=10000)
    run_poll(meter, clock)
    meter.update(clock.ms())
    assert meter.ok
    clock.advance(ms=10001)
    meter.update(clock.ms())
    assert not meter.ok and meter.error == "modbus stale"


def test_run_task_polls_the_meter():
    async def main():
        slave = sdm_slave()
        meter = ModbusMeter(FakeUart(slave), interval_ms=20)
        task = asyncio.create_task(meter.run())
        for _ in range(100):
            await asyncio.sleep(0.005)
            if meter.polls >= 2:
                break
        task.cancel()
        return meter

    meter = asyncio.run(main())
    assert meter.ok and meter.polls >= 2


def test_run_task_survives_a_uart_that_raises():
    class BrokenUart(FakeUart):
        def write(self, buf):
            raise OSError(5)

    async def main():
        meter = ModbusMeter(BrokenUart(), interval_ms=10)
        task = asyncio.create_task(meter.run())
        await asyncio.sleep(0.05)
        alive = not task.done()
        task.cancel()
        return meter, alive

    meter, alive = asyncio.run(main())
    assert alive and not meter.ok and meter.error == "modbus driver error"


# --- fuzz -----------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=6))
def test_random_bytes_from_the_uart_never_raise(chunks):
    replies = list(chunks)

    def responder(req):
        return replies.pop(0) if replies else b""

    meter, _, _, clock = make_meter(slave=responder, chunk=13)
    for _ in range(len(chunks)):
        good_poll(meter, clock)
        assert meter.ok in (True, False)
        assert meter.ok or meter.error.startswith("modbus ")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mangled_replies_never_raise_and_never_yield_wrong_values(data):
    slave = sdm_slave()
    req = with_crc(bytes((1, 4, 0, 0, 0, 74)))
    frame = bytearray(slave.reply(req))
    op = data.draw(st.sampled_from(["flip", "cut", "insert", "prefix"]))
    pos = data.draw(st.integers(0, len(frame) - 1))
    if op == "flip":
        frame[pos] ^= data.draw(st.integers(1, 255))
    elif op == "cut":
        del frame[pos:]
    elif op == "insert":
        frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=20))
    else:
        frame[0:0] = data.draw(st.binary(min_size=1, max_size=40))
    meter, _, _, clock = make_meter(slave=lambda r: bytes(frame), chunk=data.draw(st.integers(0, 32)))
    run_poll(meter, clock)
    if meter.ok:
        # Only possible when the mutation left a valid frame in the bytes (e.g. a prefix).
        assert meter.energy_wh == pytest.approx(12345500.0)
        assert meter.voltage == pytest.approx([231.5, 229.0, 232.25])
    else:
        assert meter.error.startswith("modbus ")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 40))
def test_master_poll_survives_a_flood_longer_than_its_buffer(noise, chunk):
    uart = FakeUart(chunk=chunk)
    m = ModbusMaster(uart, rx_size=256)
    m.start(1, 4, 0, 74, 0)
    uart.feed(noise)
    t = 0
    r = BUSY
    while r == BUSY:
        r = m.poll(t)
        t += 5
    assert r in (DONE, FAILED)


# --- replies at line speed ------------------------------------------------

def timed_meter(**kw):
    clock = FakeClock()
    slave = sdm_slave()
    uart = FakeUart(slave, clock=clock, latency_ms=40, char_us=1042)  # 9600 8N1
    meter = ModbusMeter(uart, clock=clock.ms, **kw)
    return meter, slave, uart, clock


def test_reply_at_9600_baud_is_assembled_over_many_polls():
    meter, _, uart, clock = timed_meter()
    took = run_poll(meter, clock, step_ms=5)
    assert meter.ok, meter.error
    assert uart.reads > 10
    assert 40 + 153 * 1.042 <= took <= 40 + 153 * 1.042 + 10


def test_slow_slave_within_the_timeout_is_not_an_error():
    meter, _, uart, clock = timed_meter(timeout_ms=500)
    uart.latency_ms = 300
    run_poll(meter, clock, step_ms=5)
    assert meter.ok


def test_truncated_reply_at_line_speed_is_a_short_frame_at_the_timeout():
    meter, slave, _, clock = timed_meter(timeout_ms=500)
    slave.faults = ["truncated"]
    took = run_poll(meter, clock, step_ms=5)
    assert meter.error == "modbus short frame"
    assert 500 <= took <= 510


def test_reply_still_arriving_at_the_timeout_is_heard_out():
    meter, _, _, clock = timed_meter(timeout_ms=100)  # the reply takes 40 + 160 ms
    run_poll(meter, clock, step_ms=5)
    assert meter.ok, meter.error


def test_reply_arriving_after_the_timeout_is_dropped_before_the_next_request():
    meter, slave, uart, clock = timed_meter(timeout_ms=100, interval_ms=1000)
    uart.latency_ms = 150
    run_poll(meter, clock, step_ms=5)
    assert meter.error == "modbus timeout"
    uart.latency_ms = 40
    slave.set_f32(0x48, 20000.0)
    clock.advance(ms=1000)
    run_poll(meter, clock, step_ms=5)
    assert meter.ok and meter.energy_wh == 20000000.0
    assert meter.master.dropped == 153


def test_endless_stream_of_noise_ends_the_request():
    meter, _, uart, clock = timed_meter(timeout_ms=100)
    uart.responder = lambda req: bytes(range(256)) * 40  # ~10 s of bytes at 9600 baud
    took = run_poll(meter, clock, step_ms=5, limit_ms=20000)
    assert meter.error == "modbus bad frame"
    assert took <= 4 * 100 + 5
