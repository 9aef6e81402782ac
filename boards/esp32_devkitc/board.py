"""ESP32-DevKitC board: builds the evse drivers from machine.* per pins.py.

Only imported on the device (the only place that imports machine). Other
ESP32 boards reuse it with their own pin map (`PINS`, see boards/esp32_s3_devkitc).
The meter is chosen by the application: it builds an S0Meter on s0_pin() or a
ModbusMeter on modbus_uart() and passes it in, or sets drivers.meter later.
"""
import math

from machine import ADC, PWM, UART, Pin, unique_id

from boards.esp32_devkitc import pins
from firmware.evse.drivers import Drivers


class HardInput:
    """An input pin whose interrupt runs as a hard IRQ, seen active-high.

    Hard: the handler runs at once in the interrupt, not when the interpreter
    gets round to it. Only for handlers that allocate nothing (the RCM and S0
    ones, both heap_lock tested); active_low inverts value() for the handler.
    """
    IRQ_FALLING = Pin.IRQ_FALLING
    IRQ_RISING = Pin.IRQ_RISING

    def __init__(self, pin, active_low=False):
        self._pin = pin
        self._inv = 1 if active_low else 0
        self._handler = None
        self._cb = self._call  # bound once: an ISR must not allocate

    def value(self):
        return self._pin.value() ^ self._inv

    def irq(self, handler=None, trigger=Pin.IRQ_RISING | Pin.IRQ_FALLING):
        # The handler gets this wrapper, so its value() reads the active level.
        self._handler = handler
        return self._pin.irq(handler=self._cb if handler else None, trigger=trigger, hard=True)

    def _call(self, _pin):
        self._handler(self)


class ActiveLow:
    """An input whose active level is low, seen as 1 when active."""

    def __init__(self, pin):
        self._pin = pin

    def value(self):
        return 1 - self._pin.value()


class PilotSampler:
    """Pilot high and low level (mV) from a burst of ADC reads spanning a PWM period.

    A read_u16 takes tens of microseconds, so a short low phase (duty above
    90 %) may fall between reads: then the low level is reported as None and
    the diode check waits for a lower duty.
    """

    def __init__(self, adc, pwm, samples=64, pins=pins):
        self.adc = adc
        self._read = adc.read_u16  # bound once
        self._pwm = pwm
        self._n = samples

        # mV = (raw * a - b) >> shift: the pin constants folded into one fixed-point
        # line whose products stay below 2**29 for any raw 0..65535, because a
        # larger int is a heap object on the ESP32 (small ints are 31-bit there).
        k = pins.ADC_FULL_UV * 1000 / (65535 * pins.CP_UV_PER_V)  # mV per raw step
        off = pins.CP_ZERO_UV * 1000 / pins.CP_UV_PER_V  # pilot mV subtracted at raw 0
        shift = 0
        while 65535 * k * (2 << shift) < (1 << 29) and abs(off) * (2 << shift) < (1 << 29):
            shift += 1
        self._a = int(k * (1 << shift) + 0.5)
        self._b = int(off * (1 << shift) + 0.5) - ((1 << shift) >> 1)  # rounds to the nearest mV
        self._shift = shift

    def _mv(self, raw):
        return (raw * self._a - self._b) >> self._shift

    def read(self):
        r = self._read
        hi = 0
        lo = 65535
        for _ in range(self._n):
            v = r()
            if v > hi:
                hi = v
            if v < lo:
                lo = v
        high = self._mv(hi)
        low = self._mv(lo)
        duty = self._pwm.duty_u16()
        if 58982 < duty < 65535 and low > -10000:
            low = None  # low phase under 100 us: not caught, not a diode fault
        return high, low


class NtcSensor:
    """NTC thermistor from 3.3 V through r_fixed, NTC to ground; Beta equation."""

    def __init__(self, adc, r_fixed=10000, r25=10000, beta=3950):
        self._adc = adc
        self.r_fixed = r_fixed
        self.r25 = r25
        self.beta = beta

    def read_c(self):
        raw = self._adc.read_u16()
        if raw < 200 or raw > 65335:
            return None  # open or shorted sensor
        r = self.r_fixed * raw / (65535 - raw)
        return 1 / (1 / 298.15 + math.log(r / self.r25) / self.beta) - 273.15


def _input(gpio, active_low, pull=None):
    # GPIO 34-39 have no internal pulls: their lines need external resistors.
    p = Pin(gpio, Pin.IN, pull)
    return ActiveLow(p) if active_low else p


class Esp32Board:
    model = "OpenWallbox-ESP32"
    PINS = pins  # the pin map; a board with another one sets its own

    def __init__(self, meter=None):
        pins = self.PINS
        self.serial = "".join("%02x" % b for b in unique_id())
        # Outputs start in their safe state: contactor open, +12 V steady, no lock.
        contactor = Pin(pins.CONTACTOR, Pin.OUT, value=0)
        pwm = PWM(Pin(pins.CP_PWM), freq=1000, duty_u16=65535)
        self.pwm = pwm
        adc = ADC(Pin(pins.CP_ADC), atten=ADC.ATTN_11DB)
        temp_adc = ADC(Pin(pins.TEMP_ADC), atten=ADC.ATTN_11DB)
        self.drivers = Drivers(
            pilot_pwm=pwm,
            pilot_adc=PilotSampler(adc, pwm, pins=pins),
            contactor=contactor,
            contactor_feedback=_input(pins.CONTACTOR_FB, pins.CONTACTOR_FB_ACTIVE_LOW),
            phase_relay=Pin(pins.PHASE_RELAY, Pin.OUT, value=1),
            # Its ISR opens the contactor itself: a hard IRQ does that within microseconds.
            rcm=HardInput(Pin(pins.RCM, Pin.IN), pins.RCM_ACTIVE_LOW),
            lock=Pin(pins.LOCK, Pin.OUT, value=0),
            lock_feedback=_input(pins.LOCK_FB, pins.LOCK_FB_ACTIVE_LOW, Pin.PULL_DOWN),
            led=Pin(pins.LED, Pin.OUT, value=0),
            temperature=NtcSensor(temp_adc),
            meter=meter,
        )
        self._wdt = None

    def s0_pin(self):
        # GPIO 39 is input only with no internal pull: the S0 line needs an external pull-up.
        # Hard IRQ: the pulse is stamped when it happens, not when the loop is free.
        return HardInput(Pin(self.PINS.S0, Pin.IN))

    def modbus_uart(self, baudrate=9600):
        """(uart, de_pin) for a ModbusMeter on the RS-485 transceiver."""
        p = self.PINS
        uart = UART(p.MODBUS_UART, baudrate=baudrate, tx=p.MODBUS_TX, rx=p.MODBUS_RX)
        return uart, Pin(p.MODBUS_DE, Pin.OUT, value=0)

    def start_watchdog(self, timeout_ms=10000):
        # A reset puts every output back to its safe default (contactor open).
        from machine import WDT
        self._wdt = WDT(timeout=timeout_ms)

    def feed_watchdog(self):
        if self._wdt is not None:
            self._wdt.feed()
