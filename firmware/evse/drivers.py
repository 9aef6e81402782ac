"""The hardware the charge controller drives, as one plain namespace.

A board fills it; parts a board lacks stay None. Interfaces (all small, like machine.*):
  pilot_pwm           duty_u16(v), freq(hz)  (machine.PWM): +12 V at 100 %
  pilot_adc           read() -> (high_mv, low_mv): pilot levels over one sample batch
                      (low_mv None when the low phase was too short to catch)
  contactor           value(v)  1 = closed
  contactor_feedback  value()   1 = closed (mirror contact); None: no weld detection
  phase_relay         value(v)  1 = L2/L3 connected (3 phases); None: fixed phases
  rcm                 value()   1 = residual current (6 mA DC) detected; irq(handler=) optional
  lock                value(v)  1 = locked; None: no cable lock
  lock_feedback       value()   1 = locked
  led                 value(v)
  temperature         read_c() -> degrees C or None
  meter               the meter interface (firmware/evse/meter.py)
The ChargeController built on them sets `controller` to itself, so a board can
report what the firmware made of its hardware (the simulator's /sim/status).
"""


class Drivers:
    def __init__(self, pilot_pwm=None, pilot_adc=None, contactor=None, contactor_feedback=None,
                 phase_relay=None, rcm=None, lock=None, lock_feedback=None, led=None,
                 temperature=None, meter=None):
        self.pilot_pwm = pilot_pwm
        self.pilot_adc = pilot_adc
        self.contactor = contactor
        self.contactor_feedback = contactor_feedback
        self.phase_relay = phase_relay
        self.rcm = rcm
        self.lock = lock
        self.lock_feedback = lock_feedback
        self.led = led
        self.temperature = temperature
        self.meter = meter
        self.controller = None
