"""The go-e charger keys (amp, car, nrg, ...) over the charge controller.

Each key is defined in the one settings registry, so the HTTP API, the REPL
config module and OCPP all see and validate the same values.
"""
from firmware.settings import INT, JSON, NULL, PERSIST, RW, W


def _nrg(meter):
    """go-e `nrg`: always 16 entries, plain units (V, A, W, percent)."""
    if meter is None:
        return [0] * 16
    v, a, w, pf = meter.voltage, meter.current, meter.power, meter.pf
    return [round(v[0]), round(v[1]), round(v[2]), 0,
            round(a[0], 2), round(a[1], 2), round(a[2], 2),
            round(w[0]), round(w[1]), round(w[2]), 0, round(meter.power_w),
            round(pf[0] * 100), round(pf[1] * 100), round(pf[2] * 100), 0]


def define_keys(settings, controller, energy, reboot, max_amps=32):
    s = settings

    def apply_amp(st):
        controller.set_limit("amp", st.value)

    def check_amp(v):
        ama = s.get("ama")
        if v > ama:
            return "value %d exceeds ama %d" % (v, ama)
        return None

    s.define("ama", INT, max_amps, RW | PERSIST, 6, max_amps)
    s.define("amp", INT, min(16, max_amps), RW | PERSIST, 6, max_amps, check=check_amp)
    s.watch("amp", apply_amp)
    s.watch("ama", lambda st: controller.set_limit("ama", st.value))
    controller.set_limit("amp", s.get("amp"))
    controller.set_limit("ama", s.get("ama"))

    # rst: any value reboots (clients send 1, true or "true").
    s.define("rst", JSON, None, W | NULL)
    s.watch("rst", lambda st: reboot())

    st = s.status
    st("car", lambda: controller.car)
    st("err", lambda: controller.err)
    st("modelStatus", lambda: controller.model_status)
    st("nrg", lambda: _nrg(controller.meter))
    st("eto", lambda: energy.total_wh)
