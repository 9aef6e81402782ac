"""OCPP BlinkRepeat and LightIntensity, applied to the charger's status LED."""
from firmware.settings import INT, OCPP, PERSIST, RW


def define_keys(settings):
    d = settings.define
    d("BlinkRepeat", INT, 3, RW | PERSIST | OCPP, 0, 20)
    d("LightIntensity", INT, 100, RW | PERSIST | OCPP, 0, 100)


class LedKeys:
    def __init__(self, settings, led):
        """led: the controller's StatusLed, or None on a board without one."""
        self.settings = settings
        self.led = led
        settings.watch("LightIntensity", self._apply)
        settings.watch("BlinkRepeat", self._apply)
        self._apply(None)

    def _apply(self, _setting):
        led = self.led
        if led is None:
            return
        led.set_intensity(self.settings.get("LightIntensity"))
        led.set_blink_repeat(self.settings.get("BlinkRepeat"))
