"""firmware/x509.py: PEM and the DER of certificates and private keys, checked against
what the `cryptography` package writes, on CPython and (the same checks) on MicroPython."""
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from firmware import x509
from tests_host.certs import pem_pair
from tests_host.mpy import run_mp


def _pem(label, body):
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, body, label)


@pytest.fixture(scope="module")
def material():
    """(name, cert PEM, key PEM) for each key kind and file format a charger meets."""
    from cryptography.hazmat.primitives import serialization
    out = []
    for name, key, fmt in (
            ("ec-p256-pkcs8", ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8),
            ("ec-p384-sec1", ec.generate_private_key(ec.SECP384R1()), serialization.PrivateFormat.TraditionalOpenSSL),
            ("rsa-pkcs8", rsa.generate_private_key(65537, 2048), serialization.PrivateFormat.PKCS8),
            ("rsa-pkcs1", rsa.generate_private_key(65537, 2048), serialization.PrivateFormat.TraditionalOpenSSL)):
        cert, _ = pem_pair("cn-" + name, key)
        out.append((name, cert, key.private_bytes(serialization.Encoding.PEM, fmt,
                                                  serialization.NoEncryption()).decode()))
    return out


def test_certificate_fields_are_read(tmp_path):
    from tests_host.test_tls_e2e import issue, make_ca
    ca = make_ca("Fields Root CA")
    leaf_pem, _ = issue(ca, "csms.example.net", client=False)
    root, = x509.load_certificates(ca[2])
    leaf, = x509.load_certificates(leaf_pem)
    assert root.ca is True and leaf.ca is False
    assert leaf.issuer == root.subject and root.issuer == root.subject
    assert leaf.dns_names == ["localhost"] and leaf.common_name == "csms.example.net"
    assert leaf.host_names() == ["localhost"]
    assert root.key_alg == x509.RSA and leaf.key_alg == x509.EC and leaf.curve == "P-256"
    assert root.not_before.endswith("Z") and len(leaf.serial) > 0


def test_every_key_format_matches_its_certificate_and_not_another(material):
    for name, cert_pem, key_pem in material:
        cert = x509.load_certificates(cert_pem)[0]
        for other, _, other_key in material:
            assert x509.key_matches(cert, x509.load_private_key(other_key)) is (other == name), (name, other)


def test_a_chain_gives_every_certificate(material):
    certs = x509.load_certificates("comment before\n" + material[0][1] + material[2][1])
    assert [c.common_name for c in certs] == ["cn-ec-p256-pkcs8", "cn-rsa-pkcs8"]


MALFORMED_CERTS = [
    ("not a PEM at all", "not PEM"),
    (_pem("CERTIFICATE", "MIIB$$$$"), "not base64"),
    (_pem("CERTIFICATE", "MIIB"), "certificate 1: DER"),  # a SEQUENCE header, then nothing
    (_pem("CERTIFICATE", "AAAA"), "not an X.509 certificate"),
    (_pem("CERTIFICATE", "MAMCAQE="), "not an X.509 certificate"),  # SEQUENCE { INTEGER 1 }
    ("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n", "not closed"),
    (_pem("PRIVATE KEY", "MAMCAQE="), "where a CERTIFICATE was expected"),
]


@pytest.mark.parametrize("text,reason", MALFORMED_CERTS)
def test_malformed_certificates_are_refused_with_the_reason(text, reason):
    with pytest.raises(ValueError) as e:
        x509.load_certificates(text)
    assert reason in str(e.value)


def test_a_truncated_certificate_is_refused(material):
    cert = material[0][1]
    lines = cert.strip().splitlines()
    cut = "\n".join(lines[:-3] + [lines[-1]])  # two lines of the body gone
    with pytest.raises(ValueError):
        x509.load_certificates(cut)


def test_private_key_refusals(material):
    with pytest.raises(ValueError, match="encrypted"):
        x509.load_private_key(_pem("ENCRYPTED PRIVATE KEY", "MAMCAQE="))
    with pytest.raises(ValueError, match="one private key"):
        x509.load_private_key(material[0][2] + material[1][2])
    with pytest.raises(ValueError, match="not a private key"):
        x509.load_private_key(material[0][1])
    with pytest.raises(ValueError, match="headers"):
        x509.load_private_key("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n"
                              "-----END RSA PRIVATE KEY-----\n")


def test_micropython_reads_the_same(material, tmp_path):
    """The walker runs on the device's runtime: same fields, same verdicts."""
    data = {"material": material, "bad": [t for t, _ in MALFORMED_CERTS]}
    (tmp_path / "in.json").write_text(json.dumps(data))
    code = """
import json
from firmware import x509
d = json.load(open(%r))
out = []
for name, cert, key in d["material"]:
    c = x509.load_certificates(cert)[0]
    out.append([name, c.common_name, c.curve, x509.key_matches(c, x509.load_private_key(key))])
errors = 0
for t in d["bad"]:
    try:
        x509.load_certificates(t)
    except ValueError:
        errors += 1
out.append(errors)
print(json.dumps(out))
""" % str(tmp_path / "in.json")
    got = json.loads(run_mp(code).strip().splitlines()[-1])
    assert got[-1] == len(MALFORMED_CERTS)
    assert got[:-1] == [[n, "cn-" + n, {"ec-p256-pkcs8": "P-256", "ec-p384-sec1": "P-384"}.get(n), True]
                        for n, _, _ in material]
