"""Pin map of the ESP32-S3-DevKitC-1 board (GPIO numbers); the wiring table is in README.md.

Chosen to avoid the strapping pins (0, 3, 45, 46), the flash and octal PSRAM
pins of N8R8/N16R8 modules (26-37), the native USB pins (19, 20) and UART0 of
the USB-serial bridge (43, 44); analog inputs are on ADC1 (GPIO 1-10), because
ADC2 cannot be read while Wi-Fi runs.
"""
from firmware.compat import const

CP_PWM = const(4)  # pilot oscillator, to the +-12 V op-amp driver
CP_ADC = const(1)  # ADC1_CH0: conditioned pilot level
CONTACTOR = const(5)  # main contactor coil driver, 1 = closed
CONTACTOR_FB = const(6)  # auxiliary (mirror) contact, 1 = closed
PHASE_RELAY = const(7)  # L2/L3 relay, 1 = three phases
RCM = const(15)  # RDC-DD module fault output (6 mA DC)
S0 = const(16)  # S0 pulse meter output
MODBUS_TX = const(17)  # UART1 to the RS-485 transceiver
MODBUS_RX = const(18)
MODBUS_DE = const(8)  # transceiver driver enable (DE and /RE tied)
LOCK = const(9)  # cable lock actuator, 1 = locked
LOCK_FB = const(10)  # lock position switch, 1 = locked
TEMP_ADC = const(2)  # ADC1_CH1: NTC divider near the terminals
LED = const(21)  # an external status LED (the DevKitC's own LED is an addressable RGB one)

MODBUS_UART = const(1)

# Pilot level conditioning, as on the ESP32-DevKitC carrier: the ADC sees zero_uv at
# 0 V on the pilot and uv_per_v more per pilot volt (measure each board).
CP_ZERO_UV = const(1650000)
CP_UV_PER_V = const(110000)
ADC_FULL_UV = const(3300000)  # 11 dB attenuation, raw 65535

# Inputs whose active level is low (open-collector outputs with pull-ups).
RCM_ACTIVE_LOW = True
LOCK_FB_ACTIVE_LOW = False
CONTACTOR_FB_ACTIVE_LOW = False
