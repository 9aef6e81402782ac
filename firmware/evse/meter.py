"""The meter interface every energy meter driver implements.

The charge controller, OCPP MeterValues and the go-e `nrg`/`eto` keys read
these attributes; a driver keeps them current. All lists are created once and
updated in place, so readers may hold a reference to them.

Units: energy_wh is the meter's own import register in Wh (it may restart at 0:
EnergyCounter turns it into the charger's persistent total); power_w total
active power in W; per-phase lists are L1, L2, L3 in V, A, W and power factor
0..1; frequency in Hz or None when the meter cannot measure it. ok is False
while the last reading failed (values then hold the last good reading) and
error says why ("modbus timeout", ...), None when ok.
"""


class Meter:
    def __init__(self):
        self.energy_wh = 0.0
        self.power_w = 0.0
        self.voltage = [0.0, 0.0, 0.0]
        self.current = [0.0, 0.0, 0.0]
        self.power = [0.0, 0.0, 0.0]
        self.pf = [0.0, 0.0, 0.0]
        self.frequency = None
        self.ok = False
        self.error = None

    def update(self, now_ms):
        """Called from the control loop: cheap, never blocks."""

    async def run(self):
        """Background polling task for drivers that need one; returns at once otherwise."""
