"""Current limits from several sources; the offer is the minimum over them.

A source is named by whoever sets it ("amp", "ama", "tcl", "temp", an OCPP
charging schedule, a load balancer, ...) and says what it means for the
charger's status when it stops the charging (a go-e modelStatus: energy limit,
OCPP, load management, ...). Each holds amps and optionally a phase count;
setting amps None removes the source. Work happens on set(), never per tick.
"""
from firmware.evse.codes import ModelStatus


class CurrentLimits:
    def __init__(self, max_amps):
        self._max_da = int(max_amps * 10)
        self._src = {}  # source -> (deci_amps, phases or None, modelStatus)
        self.deci_amps = self._max_da
        self.source = None  # the source that sets deci_amps (None: the hardware rating)
        self.status = None  # its modelStatus, None with the hardware rating
        self.phases = None  # fewest phases any source asked for, None: no wish

    def set(self, source, amps, phases=None, status=ModelStatus.LOAD_MANAGEMENT):
        """Returns None, or a message when the value is refused (nothing changes then).

        status: the go-e modelStatus reported while this source keeps the offer below 6 A."""
        if not isinstance(source, str) or not source:
            return "limit source must be a name"
        if amps is None:
            self._src.pop(source, None)
            self._recompute()
            return None
        if isinstance(amps, bool) or not isinstance(amps, (int, float)) or not (0 <= amps <= 1000):
            return "%s: amps must be a number 0..1000" % source
        if phases is not None and (isinstance(phases, bool) or phases not in (1, 2, 3)):
            return "%s: phases must be 1, 2 or 3" % source
        # Round down to 0.1 A so an offer never exceeds the limit.
        self._src[source] = (int(amps * 10 + 1e-6), phases, status)
        self._recompute()
        return None

    def get(self, source):
        """(amps, phases) of one source, or None."""
        v = self._src.get(source)
        if v is None:
            return None
        return v[0] / 10, v[1]

    def _recompute(self):
        da = self._max_da
        src = None
        st = None
        ph = None
        for name, (a, p, s) in self._src.items():
            if a < da:
                da = a
                src = name
                st = s
            if p is not None and (ph is None or p < ph):
                ph = p
        self.deci_amps = da
        self.source = src
        self.status = st
        self.phases = ph
