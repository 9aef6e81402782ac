"""wss:// end to end: the simulated charger verifies the CSMS's certificate (ocppsc)
on both runtimes, or refuses an untrusted one."""
import json

import pytest

from tests_host.certs import make_cert
from tests_host.harness import CsmsThread

pytestmark = pytest.mark.e2e


@pytest.fixture
def tls_csms(tmp_path):
    server_ctx, cert_pem, _ = make_cert(tmp_path, "csms")
    c = CsmsThread(ssl=server_ctx)
    yield c, cert_pem.read_text()
    violations = list(c.csms.violations)
    c.close()
    assert violations == []


def test_wss_with_server_certificate_from_ocppsc(sims, runtime, tmp_path, tls_csms):
    csms, pem = tls_csms
    sim = sims(runtime, tmp_path / "flash", url=csms.url("TLS1"), sets=["ocppsc=" + json.dumps(pem)]).start()
    csms.wait_received("BootNotification", 1, cp_id="TLS1")
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))


def test_wss_refuses_an_untrusted_server(sims, runtime, tmp_path, tls_csms):
    csms, _ = tls_csms
    _, other_pem, _ = make_cert(tmp_path, "other")
    sim = sims(runtime, tmp_path / "flash", url=csms.url("TLS2"),
               sets=["ocppsc=" + json.dumps(other_pem.read_text())]).start()
    st = sim.wait_status(lambda s: s["ocpple"] and "failed" in s["ocpple"], keys=("ocpple", "ocppc"))
    assert st["ocppc"] is False
    assert not csms.received("BootNotification", "TLS2")


def test_wss_without_verification_when_ocppss_is_set(sims, runtime, tmp_path, tls_csms):
    csms, _ = tls_csms
    sim = sims(runtime, tmp_path / "flash", url=csms.url("TLS3"), sets=["ocppss=true"]).start()
    csms.wait_received("BootNotification", 1, cp_id="TLS3")
