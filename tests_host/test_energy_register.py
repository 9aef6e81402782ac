"""One energy register: `eto`, `wh`, Energy.Active.Import.Register and
meterStart/meterStop agree at every moment, across charging, stops, reboots and
power cuts, while `eto` never goes backwards (the whole application stepped
in-process with a fake clock, random sequences from hypothesis)."""
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests_host.app_stepper import AppStepper

DEAD_URL = "ws://127.0.0.1:9/ocpp/CP1"  # messages stay queued: the test reads them as pushed
SETS = [("ocppu", DEAD_URL), ("ocppe", True), ("MeterValuesSampledData", "Energy.Active.Import.Register")]
REGISTER = "Energy.Active.Import.Register"


class Run:
    """The charger through charges, stops and power cuts, with the checks made at every step."""

    def __init__(self, d, acs):
        self.d = d
        self.sets = SETS + [("acs", acs)]
        self.messages = []  # (action, payload) as the charger queued them
        self.eto_seen = 0
        self.session = None  # [eto before plug-in, index of the first message of the session]
        self.s = None
        self._boot("A", 0.0)

    def _boot(self, ev, meter_wh):
        self.s = AppStepper(self.d, self.sets, ev=ev, meter_wh=meter_wh)
        app = self.s.app
        app.clock.set(1700000000)
        q = app.tx_queue
        push = q.push

        def record(action, payload, tx_ref=None):
            self.messages.append((action, payload))
            return push(action, payload, tx_ref=tx_ref)
        q.push = record
        self.metering = [f.__self__ for f in app.tasks if type(f.__self__).__name__ == "Metering"][0]
        self.session = None
        self.check()
        if ev != "A":
            # Plugged across the cut: a new plug-in session begins at the first tick.
            self.session = [self.eto(), len(self.messages)]

    def eto(self):
        return self.s.app.settings.get("eto")

    def check(self):
        app = self.s.app
        eto, wh = self.eto(), app.settings.get("wh")
        assert isinstance(eto, int) and eto >= self.eto_seen, "eto went backwards: %d -> %d" % (self.eto_seen, eto)
        self.eto_seen = eto
        mv = self.metering.sample("Sample.Periodic", REGISTER)
        assert mv["sampledValue"][0]["value"] == str(eto)
        if self.session is not None:
            assert 0 <= wh <= eto - self.session[0], (wh, eto, self.session)
        # Every transaction so far: meterStop - meterStart >= 0, starts never below earlier stops.
        last = 0
        for action, p in self.messages:
            if action == "StartTransaction":
                assert p["meterStart"] >= last
                last = p["meterStart"]
            elif action == "StopTransaction":
                assert p["meterStop"] >= last and p["meterStop"] <= eto
                last = p["meterStop"]

    def session_energy(self):
        """Sum of meterStop - meterStart of the transactions started and stopped in this session."""
        total = 0
        start = None
        for action, p in self.messages[self.session[1]:]:
            if action == "StartTransaction":
                start = p["meterStart"]
            elif action == "StopTransaction" and start is not None:
                total += p["meterStop"] - start
                start = None
        return total, start

    def ev(self, state):
        w = self.s.world
        if w.ev == "A" and state != "A":
            self.session = [self.eto(), len(self.messages)]
        w.ev = state
        self.step(300)
        if state == "A" and self.session is not None:
            self.step(300)  # the transaction rules stop it (EVDisconnected)
            energy, running = self.session_energy()
            if running is None:
                assert self.s.app.settings.get("wh") == energy
            self.session = None

    def step(self, ms):
        for _ in range(max(1, ms // 100)):
            self.s.step(100)
            self.check()

    def cut(self, meter_keeps):
        """Power loss: RAM gone; an external meter keeps its register, an S0 count restarts."""
        w = self.s.world
        self.s.shutdown()
        self._boot(w.ev, w.meter.energy_wh if meter_keeps else 0.0)

    def reboot(self):
        app = self.s.app
        if app.transactions.current is not None:
            app.transactions.stop_now("Reboot")
        app.energy.flush(final=True)
        self.check()
        self.cut(True)


EVENTS = st.one_of(
    st.tuples(st.just("ev"), st.sampled_from("AABCC")),
    st.tuples(st.just("card"), st.none()),
    st.tuples(st.just("remote_stop"), st.none()),
    st.tuples(st.just("amps"), st.sampled_from([6, 10, 16, 32])),
    st.tuples(st.just("cut"), st.booleans()),
    st.tuples(st.just("reboot"), st.none()),
    st.tuples(st.just("wait"), st.integers(100, 20000)),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(acs=st.sampled_from([0, 1]), events=st.lists(EVENTS, min_size=8, max_size=30))
def test_every_energy_figure_comes_from_one_register(acs, events):
    with tempfile.TemporaryDirectory() as d:
        r = Run(d, acs)
        try:
            for what, v in events:
                t = r.s.app.transactions
                if what == "ev":
                    r.ev(v)
                elif what == "card":
                    if t.current is not None:
                        t.stop_now("Local", t.current.id_tag)
                    else:
                        t.grant("CARD1")
                    r.step(300)
                elif what == "remote_stop":
                    t.stop_now("Remote")
                    r.step(300)
                elif what == "amps":
                    r.s.world.ev_max_amps = v
                elif what == "cut":
                    r.cut(v)
                elif what == "reboot":
                    r.reboot()
                else:
                    r.step(v)
            if r.s.world.ev != "A":
                r.ev("A")
        finally:
            r.s.shutdown()


def test_session_energy_is_the_transaction_energy_after_unplugging():
    with tempfile.TemporaryDirectory() as d:
        r = Run(d, 0)
        try:
            r.ev("C")
            r.step(20000)
            wh = r.s.app.settings.get("wh")
            assert wh > 30
            r.ev("A")
            (start, stop) = [p for a, p in r.messages if a in ("StartTransaction", "StopTransaction")]
            assert r.s.app.settings.get("wh") == stop["meterStop"] - start["meterStart"]
        finally:
            r.s.shutdown()


def test_session_energy_never_exceeds_what_the_total_counted_since_plug_in():
    """The reported defect: wh from the meter's own reading ran ahead of eto."""
    with tempfile.TemporaryDirectory() as d:
        r = Run(d, 0)
        try:
            r.ev("C")
            for _ in range(50):
                r.s.step(100)
                eto, wh = r.eto(), r.s.app.settings.get("wh")
                assert wh <= eto - r.session[0]
        finally:
            r.s.shutdown()
