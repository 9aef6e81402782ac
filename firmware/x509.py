"""PEM text and the DER structures of X.509 the charger reads: certificates (serial,
issuer, subject, validity, public key, basicConstraints, host names) and private keys
(algorithm, curve, public key), to check TLS material before it is stored or used.

    certs = load_certificates(pem_text)     # [Certificate], ValueError with a clear message
    key = load_private_key(pem_text)        # PrivateKey
    key_matches(certs[0], key)              # True / False / None (cannot tell)
"""
# Hand-written: MicroPython has no X.509 parser and the device needs a small one; this
# walks only the fields named above (DER is strict TLV, so a walker is a few lines).
import binascii

_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

# DER contents of the object identifiers used here.
RSA = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"  # rsaEncryption
EC = b"\x2a\x86\x48\xce\x3d\x02\x01"  # id-ecPublicKey
_CURVES = {  # the curves mbedTLS and OpenSSL both offer
    b"\x2a\x86\x48\xce\x3d\x03\x01\x07": "P-256",
    b"\x2b\x81\x04\x00\x22": "P-384",
    b"\x2b\x81\x04\x00\x23": "P-521",
}
_CN = b"\x55\x04\x03"
_BASIC_CONSTRAINTS = b"\x55\x1d\x13"
_SUBJECT_ALT_NAME = b"\x55\x1d\x11"

_SEQ = 0x30
_INT = 0x02
_BITS = 0x03
_OCTETS = 0x04
_OID = 0x06


def pem_blocks(text):
    """Every -----BEGIN X----- block of a PEM text -> [(label, DER bytes)].

    Text outside the blocks is ignored (tools put comments there); a block that is
    not closed, has headers (legacy encryption) or is not base64 raises ValueError."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode()
    out = []
    label = None
    body = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("-----BEGIN ") and line.endswith("-----"):
            if label is not None:
                raise ValueError("PEM block %s not closed" % label)
            label = line[11:-5]
            body = []
        elif line.startswith("-----END ") and line.endswith("-----"):
            if line[9:-5] != label:
                raise ValueError("PEM END %s without its BEGIN" % line[9:-5])
            out.append((label, _b64(label, "".join(body))))
            label = None
        elif label is not None and line:
            if ":" in line:
                raise ValueError("PEM %s has headers (an encrypted key?): not supported" % label)
            body.append(line)
    if label is not None:
        raise ValueError("PEM block %s not closed" % label)
    if not out:
        raise ValueError("not PEM: no -----BEGIN ...----- block")
    return out


def _b64(label, s):
    b = s.encode()
    if not b or len(b) % 4 or any(c not in _B64 for c in b) or b"=" in b.rstrip(b"="):
        raise ValueError("PEM %s: body is not base64" % label)
    return binascii.a2b_base64(b)


def read_tlv(buf, pos, end):
    """The DER element at buf[pos:end] -> (tag, value start, value end); ValueError when
    it is cut short or uses a form DER does not allow (indefinite or long tags)."""
    if pos + 2 > end:
        raise ValueError("DER cut short")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("DER tag form not supported")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 3 or pos + k > end:
            raise ValueError("DER bad length")
        n = 0
        for i in range(k):
            n = n << 8 | buf[pos + i]
        pos += k
    if pos + n > end:
        raise ValueError("DER cut short")
    return tag, pos, pos + n


def children(buf, start, end):
    """The elements inside a constructed value -> [(tag, start, end)]."""
    out = []
    while start < end:
        t = read_tlv(buf, start, end)
        out.append(t)
        start = t[2]
    return out


def _expect(el, tag, what):
    if el[0] != tag:
        raise ValueError(what)
    return el


def _uint(buf, el):
    """An INTEGER's magnitude without leading zero bytes (for comparing keys)."""
    s, e = el[1], el[2]
    while s < e - 1 and buf[s] == 0:
        s += 1
    return bytes(buf[s:e])


def _algorithm(buf, el, what):
    """AlgorithmIdentifier -> (algorithm OID, curve name or None)."""
    parts = children(buf, *_expect(el, _SEQ, what)[1:])
    if not parts:
        raise ValueError(what)
    oid = bytes(buf[parts[0][1]:parts[0][2]])
    curve = None
    if oid == EC:
        if len(parts) < 2 or parts[1][0] != _OID:
            raise ValueError("EC key without a named curve")
        curve = _CURVES.get(bytes(buf[parts[1][1]:parts[1][2]]))
        if curve is None:
            raise ValueError("EC curve not supported (P-256, P-384 or P-521)")
    elif oid != RSA:
        raise ValueError("key algorithm not supported (RSA or EC)")
    return oid, curve


class Certificate:
    """One X.509 certificate: fields as DER bytes (names, serial) or text (times)."""

    __slots__ = ("der", "serial", "issuer", "subject", "not_before", "not_after",
                 "key_alg", "curve", "public_key", "ca", "dns_names", "common_name")

    def __init__(self, der):
        self.der = der
        what = "not an X.509 certificate"
        top = read_tlv(der, 0, len(der))
        if top[0] != _SEQ or top[2] != len(der):
            raise ValueError(what)
        parts = children(der, top[1], top[2])
        if len(parts) != 3 or parts[0][0] != _SEQ or parts[1][0] != _SEQ or parts[2][0] != _BITS:
            raise ValueError(what)
        tbs = children(der, parts[0][1], parts[0][2])
        i = 1 if tbs and tbs[0][0] == 0xA0 else 0  # version [0], absent in v1
        if len(tbs) < i + 6:
            raise ValueError(what)
        serial, _sig, issuer, validity, subject, spki = tbs[i:i + 6]
        self.serial = _uint(der, _expect(serial, _INT, what))
        self.issuer = bytes(der[issuer[1]:issuer[2]])
        self.subject = bytes(der[subject[1]:subject[2]])
        times = children(der, *_expect(validity, _SEQ, what)[1:])
        if len(times) != 2 or any(t[0] not in (0x17, 0x18) for t in times):
            raise ValueError(what + ": bad validity")
        self.not_before, self.not_after = [bytes(der[t[1]:t[2]]).decode() for t in times]
        self.common_name = _common_name(der, _expect(subject, _SEQ, what))
        alg, key = children(der, *_expect(spki, _SEQ, what)[1:])[:2]
        self.key_alg, self.curve = _algorithm(der, alg, what)
        _expect(key, _BITS, what)
        self.public_key = bytes(der[key[1] + 1:key[2]])  # after the unused-bits byte
        self.ca = None
        self.dns_names = []
        for el in tbs[i + 6:]:
            if el[0] == 0xA3:
                self._extensions(der, children(der, el[1], el[2]))

    def _extensions(self, der, outer):
        if len(outer) != 1 or outer[0][0] != _SEQ:
            raise ValueError("bad certificate extensions")
        for ext in children(der, outer[0][1], outer[0][2]):
            f = children(der, *_expect(ext, _SEQ, "bad certificate extension")[1:])
            oid = bytes(der[f[0][1]:f[0][2]])
            val = _expect(f[-1], _OCTETS, "bad certificate extension")
            if oid == _BASIC_CONSTRAINTS:
                inner = children(der, *read_tlv(der, val[1], val[2])[1:])
                self.ca = bool(inner and inner[0][0] == 0x01 and der[inner[0][1]])
            elif oid == _SUBJECT_ALT_NAME:
                for g in children(der, *read_tlv(der, val[1], val[2])[1:]):
                    if g[0] == 0x82:  # dNSName
                        self.dns_names.append(bytes(der[g[1]:g[2]]).decode())

    def host_names(self):
        """The names a TLS client checks the server's host against: the DNS names of
        subjectAltName, else the subject's common name."""
        if self.dns_names:
            return self.dns_names
        return [self.common_name] if self.common_name else []


def _common_name(der, name):
    cn = None
    for rdn in children(der, name[1], name[2]):
        for atv in children(der, rdn[1], rdn[2]):
            f = children(der, atv[1], atv[2])
            if len(f) == 2 and bytes(der[f[0][1]:f[0][2]]) == _CN:
                try:
                    cn = bytes(der[f[1][1]:f[1][2]]).decode()
                except UnicodeError:
                    pass
    return cn


class PrivateKey:
    """A private key (PKCS#8, PKCS#1 RSA or SEC1 EC): its algorithm, curve, and the public
    key where the file holds it (RSA modulus and exponent; EC point when present)."""

    __slots__ = ("key_alg", "curve", "rsa", "ec_point")

    def __init__(self, label, der):
        self.curve = self.rsa = self.ec_point = None
        top = read_tlv(der, 0, len(der))
        if top[0] != _SEQ or top[2] != len(der):
            raise ValueError("not a private key")
        parts = children(der, top[1], top[2])
        if label == "PRIVATE KEY":
            if len(parts) < 3 or parts[2][0] != _OCTETS:
                raise ValueError("not a PKCS#8 private key")
            self.key_alg, self.curve = _algorithm(der, parts[1], "not a PKCS#8 private key")
            inner = read_tlv(der, parts[2][1], parts[2][2])
            parts = children(der, *_expect(inner, _SEQ, "not a private key")[1:])
        elif label == "RSA PRIVATE KEY":
            self.key_alg = RSA
        elif label == "EC PRIVATE KEY":
            self.key_alg = EC
        else:
            raise ValueError("PEM %s is not a private key" % label)
        if self.key_alg == RSA:
            if len(parts) < 9 or any(p[0] != _INT for p in parts[:9]):
                raise ValueError("not an RSA private key")
            self.rsa = (_uint(der, parts[1]), _uint(der, parts[2]))
        else:
            if len(parts) < 2 or parts[0][0] != _INT or parts[1][0] != _OCTETS:
                raise ValueError("not an EC private key")
            for p in parts[2:]:
                if p[0] == 0xA0:
                    curve = _CURVES.get(bytes(der[p[1] + 2:p[2]]))
                    if curve is None:
                        raise ValueError("EC curve not supported (P-256, P-384 or P-521)")
                    self.curve = curve
                elif p[0] == 0xA1:
                    bits = read_tlv(der, p[1], p[2])
                    self.ec_point = bytes(der[bits[1] + 1:bits[2]])
            if self.curve is None:
                raise ValueError("EC private key without its curve")


def load_certificates(text):
    """Every certificate of a PEM text (one or a chain) -> [Certificate]; ValueError when
    the text holds anything else or a certificate is malformed."""
    out = []
    for label, der in pem_blocks(text):
        if label != "CERTIFICATE":
            raise ValueError("PEM %s where a CERTIFICATE was expected" % label)
        try:
            out.append(Certificate(der))
        except (ValueError, IndexError, UnicodeError) as e:  # IndexError: a SEQUENCE too short
            raise ValueError("certificate %d: %s" % (len(out) + 1, str(e) or "malformed DER"))
    return out


def load_private_key(text):
    """The one private key of a PEM text -> PrivateKey; ValueError otherwise."""
    blocks = pem_blocks(text)
    if len(blocks) != 1:
        raise ValueError("expected one private key, found %d PEM blocks" % len(blocks))
    label, der = blocks[0]
    if label == "ENCRYPTED PRIVATE KEY":
        raise ValueError("encrypted private keys are not supported")
    try:
        return PrivateKey(label, der)
    except (IndexError, UnicodeError):
        raise ValueError("malformed private key")


def key_matches(cert, key):
    """True when key is the private key of cert's public key, False when it is not,
    None when the key file does not hold its public key (an EC key without it)."""
    if cert.key_alg != key.key_alg or cert.curve != key.curve:
        return False
    if key.rsa is not None:
        pub = read_tlv(cert.public_key, 0, len(cert.public_key))
        n, e = children(cert.public_key, pub[1], pub[2])[:2]
        return (_uint(cert.public_key, n), _uint(cert.public_key, e)) == key.rsa
    if key.ec_point is None:
        return None
    return key.ec_point == cert.public_key
