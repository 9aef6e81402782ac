"""Pin map of the ESP32-DevKitC board (GPIO numbers); the wiring table is in README.md.

Chosen to avoid the flash pins (6-11), the PSRAM pins of WROVER modules (16, 17)
and the strapping pins that must stay low or high at reset (0, 5, 12, 15); ADC
inputs are on ADC1, because ADC2 cannot be read while Wi-Fi runs.
"""
from firmware.compat import const

CP_PWM = const(25)  # pilot oscillator, to the +-12 V op-amp driver
CP_ADC = const(36)  # SENSOR_VP, ADC1_CH0: conditioned pilot level
CONTACTOR = const(26)  # main contactor coil driver, 1 = closed
CONTACTOR_FB = const(34)  # auxiliary (mirror) contact, 1 = closed; input only
PHASE_RELAY = const(27)  # L2/L3 relay, 1 = three phases
RCM = const(35)  # RDC-DD module fault output (6 mA DC); input only
S0 = const(39)  # SENSOR_VN: S0 pulse meter output; input only
MODBUS_TX = const(22)  # UART2 to the RS-485 transceiver
MODBUS_RX = const(21)
MODBUS_DE = const(23)  # transceiver driver enable (DE and /RE tied)
LOCK = const(19)  # cable lock actuator, 1 = locked
LOCK_FB = const(18)  # lock position switch, 1 = locked
TEMP_ADC = const(33)  # ADC1_CH5: NTC divider near the terminals
LED = const(2)  # on-board LED of the DevKitC

MODBUS_UART = const(2)

# Pilot level conditioning: the ADC sees zero_uv at 0 V on the pilot and
# uv_per_v more per pilot volt (divider + offset from 3.3 V; measure each board).
CP_ZERO_UV = const(1650000)
CP_UV_PER_V = const(110000)
ADC_FULL_UV = const(3300000)  # 11 dB attenuation, raw 65535

# Inputs whose active level is low (open-collector outputs with pull-ups).
RCM_ACTIVE_LOW = True
LOCK_FB_ACTIVE_LOW = False
CONTACTOR_FB_ACTIVE_LOW = False
