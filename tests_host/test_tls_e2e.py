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
    c.close_checked()


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


# ---- certificates from a CA, set over HTTP; mutual TLS ---------------------------------

def _name(cn):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "AT"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Charging Network GmbH"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn="Example Charging Root CA 2025"):
    """An RSA-4096 root CA like a real operator's: its PEM is about 2 KB."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256()))
    return key, cert, cert.public_bytes(serialization.Encoding.PEM).decode()


def issue(ca, cn, client):
    """A leaf certificate signed by ca: (cert PEM, key PEM) of a server or a client."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID
    ca_key, ca_cert, _ = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=90))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                               else ExtendedKeyUsageOID.SERVER_AUTH]), False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False))
    if not client:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
    cert = b.sign(ca_key, hashes.SHA256())
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


@pytest.fixture(scope="module")
def ca():
    return make_ca()


def server_context(tmp_path, ca, client_ca_pem=None):
    import ssl
    cert, key = issue(ca, "csms.example.net", client=False)
    (tmp_path / "srv.pem").write_text(cert)
    (tmp_path / "srv-key.pem").write_text(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp_path / "srv.pem"), str(tmp_path / "srv-key.pem"))
    if client_ca_pem:
        ctx.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: only chargers with a certificate of this CA
        ctx.load_verify_locations(cadata=client_ca_pem)
    return ctx


@pytest.fixture
def csms_of(ca, tmp_path):
    started = []

    def make(client_ca_pem=None):
        c = CsmsThread(ssl=server_context(tmp_path, ca, client_ca_pem))
        started.append(c)
        return c
    yield make
    for c in started:
        c.close_checked()


def post_set(sim, **kv):
    import urllib.parse
    import urllib.request
    body = urllib.parse.urlencode({k: json.dumps(v) for k, v in kv.items()}).encode()
    req = urllib.request.Request(sim.base + "/api/set", body, {"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def test_root_ca_of_2kb_set_by_post_lets_the_charger_connect(sims, runtime, tmp_path, ca, csms_of):
    csms = csms_of()
    pem = ca[2]
    assert len(pem) > 1800  # a GET request line of 1 KB could never carry it
    sim = sims(runtime, tmp_path / "flash", url=csms.url("CA1"), sets=["ocppg=false"]).start()
    sim.wait_status(lambda s: s["ocpple"] and "no CA" in s["ocpple"], keys=("ocpple",))
    assert post_set(sim, ocppsc=pem) == (200, {"ocppsc": True})
    assert sim.status("ocppsc") == {"ocppsc": pem}
    csms.wait_received("BootNotification", 1, cp_id="CA1")  # the new CA applies at once
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))


def test_mutual_tls_with_client_certificate_from_ocppcc_ocppck(sims, runtime, tmp_path, ca, csms_of):
    client_ca = make_ca("Example Charger Fleet CA")
    csms = csms_of(client_ca[2])
    sim = sims(runtime, tmp_path / "flash", url=csms.url("MTLS1"), sets=["ocppg=false"]).start()
    assert post_set(sim, ocppsc=ca[2]) == (200, {"ocppsc": True})
    # Without a client certificate the CSMS refuses the handshake.
    st = sim.wait_status(lambda s: s["ocpple"] and "failed" in s["ocpple"], keys=("ocpple", "ocppc"))
    assert st["ocppc"] is False and not csms.received("BootNotification", "MTLS1")
    cert, key = issue(client_ca, "charger-0042", client=True)
    assert post_set(sim, ocppcc=cert, ocppck=key) == (200, {"ocppcc": True, "ocppck": True})
    csms.wait_received("BootNotification", 1, cp_id="MTLS1")
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    assert key.splitlines()[1] not in "\n".join(sim.output)
    assert sim.status("ocppck") == {"ocppck": None}


def test_client_certificate_of_another_ca_is_refused(sims, runtime, tmp_path, ca, csms_of):
    client_ca = make_ca("Example Charger Fleet CA")
    csms = csms_of(client_ca[2])
    cert, key = issue(ca, "charger-0043", client=True)  # not from the fleet CA
    sim = sims(runtime, tmp_path / "flash", url=csms.url("MTLS2"), sets=["ocppg=false"]).start()
    assert post_set(sim, ocppsc=ca[2], ocppcc=cert, ocppck=key)[0] == 200
    st = sim.wait_status(lambda s: s["ocpple"] and "failed" in s["ocpple"], keys=("ocpple", "ocppc"))
    assert st["ocppc"] is False and not csms.received("BootNotification", "MTLS2")


def test_without_ca_and_without_global_store_the_charger_does_not_connect(sims, runtime, tmp_path, ca, csms_of):
    csms = csms_of()
    sim = sims(runtime, tmp_path / "flash", url=csms.url("NOCA"), sets=["ocppg=false"]).start()
    st = sim.wait_status(lambda s: s["ocpple"] and "no CA" in s["ocpple"], keys=("ocpple", "ocppc"))
    assert st["ocppc"] is False and not csms.received("BootNotification", "NOCA")


def test_ocppg_verifies_against_the_default_ca_store(sims, tmp_path, ca, csms_of, monkeypatch):
    # The CPython simulator's default store follows SSL_CERT_FILE; the device has none of its own.
    (tmp_path / "store.pem").write_text(ca[2])
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "store.pem"))
    csms = csms_of()
    sims("cpython", tmp_path / "flash", url=csms.url("STORE"), sets=["ocppg=true"]).start()
    csms.wait_received("BootNotification", 1, cp_id="STORE")


def test_changing_tls_settings_reconnects_with_them(sims, runtime, tmp_path, ca, csms_of):
    csms = csms_of()
    sim = sims(runtime, tmp_path / "flash", url=csms.url("RECON"), sets=["ocppss=true"]).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    other = make_ca("Some Other Root CA")[2]
    # A healthy connection is dropped and made anew: the CSMS is not from that CA.
    assert post_set(sim, ocppsc=other, ocppg=False, ocppss=False)[0] == 200
    st = sim.wait_status(lambda s: s["ocppc"] is False and s["ocpple"] and "failed" in s["ocpple"],
                         keys=("ocpple", "ocppc"))
    assert "RECON" in st["ocpple"]


# ---- ocppcn: a server certificate that names another host ------------------------------

def wrong_name_server(tmp_path):
    """A server context whose self-signed certificate names csms.wrong-name.example only
    (the charger connects to 127.0.0.1), and that certificate's PEM."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csms.wrong-name.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("csms.wrong-name.example")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (tmp_path / "wrong.pem").write_text(pem)
    (tmp_path / "wrong-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp_path / "wrong.pem"), str(tmp_path / "wrong-key.pem"))
    return ctx, pem


@pytest.fixture
def wrong_name_csms(tmp_path):
    ctx, pem = wrong_name_server(tmp_path)
    c = CsmsThread(ssl=ctx)
    yield c, pem
    c.close_checked()


def test_ocppcn_connects_to_a_server_whose_certificate_names_another_host(sims, runtime, tmp_path, wrong_name_csms):
    csms, pem = wrong_name_csms
    sim = sims(runtime, tmp_path / "flash", url=csms.url("CN1"),
               sets=["ocppg=false", "ocppcn=true", "ocppsc=" + json.dumps(pem)]).start()
    csms.wait_received("BootNotification", 1, cp_id="CN1")
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))


def test_without_ocppcn_a_certificate_for_another_host_is_refused(sims, runtime, tmp_path, wrong_name_csms):
    csms, pem = wrong_name_csms
    sim = sims(runtime, tmp_path / "flash", url=csms.url("CN2"),
               sets=["ocppg=false", "ocppsc=" + json.dumps(pem)]).start()
    st = sim.wait_status(lambda s: s["ocpple"] and "failed" in s["ocpple"], keys=("ocpple", "ocppc"))
    assert "mismatch" in st["ocpple"] or "does not match" in st["ocpple"]  # CPython / mbedTLS wording
    assert st["ocppc"] is False and not csms.received("BootNotification", "CN2")


def test_ocppcn_still_verifies_the_certificate_chain(sims, runtime, tmp_path, wrong_name_csms):
    csms, _ = wrong_name_csms
    other = make_cert(tmp_path, "other")[1].read_text()
    sim = sims(runtime, tmp_path / "flash", url=csms.url("CN3"),
               sets=["ocppg=false", "ocppcn=true", "ocppsc=" + json.dumps(other)]).start()
    st = sim.wait_status(lambda s: s["ocpple"] and "failed" in s["ocpple"], keys=("ocpple", "ocppc"))
    assert st["ocppc"] is False and not csms.received("BootNotification", "CN3")


# ---- certificate material checked when written -----------------------------------------

def test_malformed_or_mismatched_tls_material_is_refused_and_the_previous_kept(sims, runtime, tmp_path):
    from tests_host.certs import pem_pair
    sim = sims(runtime, tmp_path / "flash").start()
    cert, key = pem_pair("charger-1")
    assert post_set(sim, ocppsc=cert, ocppcc=cert, ocppck=key) == (200, {"ocppsc": True, "ocppcc": True,
                                                                        "ocppck": True})
    code, body = post_set_error(sim, ocppsc="not a PEM")
    assert code == 500 and body == {"ocppsc": "ocppsc: not PEM: no -----BEGIN ...----- block"}
    code, body = post_set_error(sim, ocppsc=cert.replace("\n", "\n!", 3))
    assert code == 500 and "not base64" in body["ocppsc"]
    code, body = post_set_error(sim, ocppck=pem_pair("charger-2")[1])
    assert code == 500 and "do not belong together" in body["ocppck"]
    code, body = sim.get("/api/set?ocppcc=%22-----BEGIN%20CERTIFICATE-----%5CnAAAA%5Cn-----END%20CERTIFICATE-----%22")
    assert code == 500 and "not an X.509 certificate" in body["ocppcc"]
    assert sim.status("ocppsc", "ocppcc") == {"ocppsc": cert, "ocppcc": cert}
    assert json.loads((tmp_path / "flash" / "settings.json").read_text())["ocppck"] == key


def post_set_error(sim, **kv):
    import urllib.error
    try:
        return post_set(sim, **kv)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ---- SecurityProfile over OCPP (whitepaper A05) ----------------------------------------

AUTH_KEY = "0123456789abcdef0123456789abcdef"


def profile_of(csms, cp_id):
    conf = csms.call(cp_id, "GetConfiguration", {"key": ["SecurityProfile"]})["configurationKey"]
    return conf[0]["value"]


def connections(csms, cp_id):
    return [c for c in csms.csms.connections if c.id == cp_id]


def test_security_profile_cannot_be_lowered_over_ocpp(sims, runtime, tmp_path, tls_csms):
    csms, pem = tls_csms
    sims(runtime, tmp_path / "flash", url=csms.url("SP1"),
         sets=["ocppg=false", "ocppsc=" + json.dumps(pem), "AuthorizationKey=" + json.dumps(AUTH_KEY),
               "SecurityProfile=2"]).start()
    csms.wait_received("BootNotification", 1, cp_id="SP1")
    assert csms.csms.auth_headers[-1].startswith("Basic ")
    for lower in ("1", "0", "2"):
        assert csms.call("SP1", "ChangeConfiguration", {"key": "SecurityProfile", "value": lower}) == \
            {"status": "Rejected"}
    assert profile_of(csms, "SP1") == "2"
    assert len(connections(csms, "SP1")) == 1  # no reconnect either


def test_raising_the_security_profile_reconnects_with_it(sims, runtime, tmp_path, tls_csms):
    csms, pem = tls_csms
    sims(runtime, tmp_path / "flash", url=csms.url("SP2"),
         sets=["ocppg=false", "ocppss=true", "ocppsc=" + json.dumps(pem),
               "AuthorizationKey=" + json.dumps(AUTH_KEY), "SecurityProfile=1"]).start()
    csms.wait_received("BootNotification", 1, cp_id="SP2")
    assert csms.call("SP2", "ChangeConfiguration", {"key": "SecurityProfile", "value": "3"}) == \
        {"status": "Rejected"}  # no client certificate
    assert csms.call("SP2", "ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}) == \
        {"status": "Accepted"}
    csms.wait_for(lambda: len(connections(csms, "SP2")) == 2)
    assert profile_of(csms, "SP2") == "2"
    csms.wait_for(lambda: json.loads((tmp_path / "flash" / "settings.json").read_text())
                  .get("SecurityProfile") == 2)


def test_a_raised_profile_that_cannot_connect_falls_back_to_the_previous(sims, runtime, tmp_path, tls_csms):
    csms, _ = tls_csms
    # Profile 1 connects without verifying the server (ocppss); profile 2 always verifies,
    # and ocppsc is not the CSMS's certificate: the raise cannot connect.
    other = make_cert(tmp_path, "other")[1].read_text()
    sim = sims(runtime, tmp_path / "flash", url=csms.url("SP3"),
               sets=["ocppg=false", "ocppss=true", "ocppsc=" + json.dumps(other),
                     "AuthorizationKey=" + json.dumps(AUTH_KEY), "SecurityProfile=1"]).start()
    csms.wait_received("BootNotification", 1, cp_id="SP3")
    assert csms.call("SP3", "ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}) == \
        {"status": "Accepted"}
    csms.wait_for(lambda: len(connections(csms, "SP3")) == 2, timeout=60)
    assert profile_of(csms, "SP3") == "1"
    assert "back to 1" in "\n".join(sim.output)
    assert json.loads((tmp_path / "flash" / "settings.json").read_text())["SecurityProfile"] == 1
