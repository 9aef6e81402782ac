import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RUNTIMES = ["micropython", "cpython"]


@pytest.fixture
def csms():
    from tests_host.harness import CsmsThread
    c = CsmsThread()
    yield c
    c.close_checked()  # every frame the charger sent must validate against the official schemas


@pytest.fixture(params=RUNTIMES)
def runtime(request):
    return request.param


@pytest.fixture
def sims():
    """Start simulators; every one is killed at the end of the test."""
    started = []

    def make(runtime, state_dir, **kw):
        from tests_host.harness import Sim
        s = Sim(runtime, state_dir, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.kill()
        # Shown by pytest only when the test failed.
        print("---- simulator output (%s, %s) ----\n%s" % (s.runtime, s.state_dir, s.log(80)))


@pytest.fixture(scope="module", params=RUNTIMES)
def api(request, tmp_path_factory):
    """The HTTP API without sockets (tests_host/api_rig.py), one charger per module and runtime."""
    from tests_host.api_inprocess import start
    a = start(request.param, tmp_path_factory.mktemp("api-" + request.param))
    yield a
    a.close()
