#!/usr/bin/env python3
"""Generate the device-csr test vectors (core/tests/vectors/).

Run from the repository root:

    python3 core/tests/vectors/generate.py

Everything here is produced by tools that are independent of the project's
Rust code: the OpenSSL CLI (`openssl`, 3.x) and Python `cryptography`.
Expected values (canonical public key, fingerprint, device id, signature
algorithm) are always computed with Python `cryptography`.

Outputs (all rewritten on every run):
  keys/*.pem     test-only private keys; reused if present so that the public
                 keys (and the expected `publicKey` values) stay stable
  csr/*.der      CSRs / certificates / broken CSRs, exact bytes used in headers
  csr/*.pem      PEM form of the well-formed ones
  vectors.json   the single machine-readable file read by every test suite

ECDSA signatures are randomised, so signatures, fingerprints and headers change
on every run; names, structure and expected error codes do not.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

# cryptography warns about CNs longer than 64 chars even with _validate=False.
warnings.filterwarnings("ignore", message="Attribute's length")

HERE = Path(__file__).resolve().parent
KEYS_DIR = HERE / "keys"
CSR_DIR = HERE / "csr"
JSON_PATH = HERE / "vectors.json"

MAX_HEADER = 8192
SAN = x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string
BASIC_CONSTRAINTS = x509.oid.ExtensionOID.BASIC_CONSTRAINTS.dotted_string
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9:_-]{1,128}")

STATUS = {
    "missing_header": 400,
    "header_too_large": 400,
    "malformed_header": 400,
    "malformed_csr": 400,
    "unsupported_key": 400,
    "unsupported_algorithm": 400,
    "invalid_subject": 400,
    "invalid_device_id": 400,
    "subject_alt_name_requested": 400,
    "subject_not_cn_only": 400,
    "bad_signature": 403,
    "key_mismatch": 403,
    "invalid_public_key": 400,
}

SIG_ALG_NAMES = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
}

# --------------------------------------------------------------------------
# OpenSSL CLI
# --------------------------------------------------------------------------

# A minimal config so the host's openssl.cnf cannot add attributes/extensions.
_OPENSSL_CNF = tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False)
_OPENSSL_CNF.write("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n")
_OPENSSL_CNF.close()
_OPENSSL_ENV = dict(os.environ, OPENSSL_CONF=_OPENSSL_CNF.name)
atexit.register(os.unlink, _OPENSSL_CNF.name)


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["openssl", *args], input=stdin, capture_output=True, env=_OPENSSL_ENV
    )
    if proc.returncode != 0:
        sys.exit(f"openssl {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return proc.stdout


def openssl_csr(key: Path, subj: str, digest: str, *extra: str) -> bytes:
    """`openssl req -new -key KEY -subj SUBJ -DIGEST` -> CSR DER."""
    return openssl(
        "req", "-new", "-config", _OPENSSL_CNF.name, "-key", str(key),
        "-subj", subj, f"-{digest}", *extra, "-outform", "DER",
    )


# --------------------------------------------------------------------------
# Keys (reused when present)
# --------------------------------------------------------------------------

def key_path(name: str) -> Path:
    return KEYS_DIR / f"{name}.pem"


def load_key(name: str):
    return serialization.load_pem_private_key(key_path(name).read_bytes(), None)


def ensure_openssl_key(name: str, *genpkey_args: str):
    path = key_path(name)
    if not path.exists():
        openssl("genpkey", *genpkey_args, "-out", str(path))
    return load_key(name)


def ensure_python_key(name: str, make):
    path = key_path(name)
    if not path.exists():
        path.write_bytes(
            make().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return load_key(name)


# --------------------------------------------------------------------------
# Tiny DER helper (definite lengths only; enough for CSRs)
# --------------------------------------------------------------------------


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + der_len(len(content)) + content


def der_read(buf: bytes, off: int = 0) -> tuple[int, bytes, int]:
    """Read the TLV at buf[off:]; return (tag, content, offset after it)."""
    tag, length = buf[off], buf[off + 1]
    off += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[off : off + n], "big")
        off += n
    return tag, buf[off : off + length], off + length


def der_children(content: bytes) -> list[bytes]:
    """Split the content of a constructed value into its children (full TLVs)."""
    out, off = [], 0
    while off < len(content):
        start = off
        _, _, off = der_read(content, off)
        out.append(content[start:off])
    return out


def split_csr(der: bytes) -> tuple[bytes, bytes, bytes]:
    """CSR DER -> (CertificationRequestInfo TLV, AlgorithmIdentifier TLV, raw signature)."""
    tag, content, end = der_read(der)
    assert tag == 0x30 and end == len(der)
    tbs, alg, bitstring = der_children(content)
    tag, sig, _ = der_read(bitstring)
    assert tag == 0x03 and sig[0] == 0
    return tbs, alg, sig[1:]


def join_csr(tbs: bytes, alg: bytes, sig: bytes) -> bytes:
    return der_tlv(0x30, tbs + alg + der_tlv(0x03, b"\x00" + sig))


# --------------------------------------------------------------------------
# Encodings
# --------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64_nopad(data: bytes) -> str:
    return b64(data).rstrip("=")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def b64url_nopad(data: bytes) -> str:
    return b64url(data).rstrip("=")


def pem_wrap(der: bytes, label: str) -> str:
    body = b64(der)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def csr_pem(der: bytes) -> str:
    return pem_wrap(der, "CERTIFICATE REQUEST")


def spki_der(pub) -> bytes:
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_pem(pub) -> str:
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def canonical(pub) -> str:
    return b64(spki_der(pub))


def sec1(pub, compressed: bool = False) -> bytes:
    fmt = (
        serialization.PublicFormat.CompressedPoint
        if compressed
        else serialization.PublicFormat.UncompressedPoint
    )
    return pub.public_bytes(serialization.Encoding.X962, fmt)


def jwk(pub, **extra) -> str:
    nums = pub.public_numbers()
    size = (pub.curve.key_size + 7) // 8
    crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[pub.curve.name]
    obj = {"kty": "EC", "crv": crv, **extra}
    obj["x"] = b64url_nopad(nums.x.to_bytes(size, "big"))
    obj["y"] = b64url_nopad(nums.y.to_bytes(size, "big"))
    return json.dumps(obj, separators=(",", ":"))


def encodings_are_interesting(der: bytes) -> bool:
    """True if base64 of the DER and of the PEM text both need '=' padding and
    the DER's base64 uses '+' or '/'.

    Then the unpadded and URL-safe header variants really differ from the
    standard ones. (Base64 of ASCII PEM text can never contain '+' or '/', so
    for PEM only the padding differs.) Signatures are random, so the caller
    simply re-signs until this holds.
    """
    der_b64, pem_b64 = b64(der), b64(csr_pem(der).encode())
    return der_b64.endswith("=") and pem_b64.endswith("=") and ("+" in der_b64 or "/" in der_b64)


# --------------------------------------------------------------------------
# Independent expectation / self-check helpers (cryptography only)
# --------------------------------------------------------------------------


def expect_ok(der: bytes) -> dict:
    csr = x509.load_der_x509_csr(der)
    assert csr.is_signature_valid, "expected a valid self-signature"
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert len(cns) == 1 and DEVICE_ID_RE.fullmatch(cns[0].value), cns
    return {
        "deviceId": cns[0].value,
        "publicKey": canonical(csr.public_key()),
        "fingerprint": hashlib.sha256(csr.tbs_certrequest_bytes).hexdigest(),
        "signatureAlgorithm": SIG_ALG_NAMES[csr.signature_algorithm_oid],
    }


def profile(der: bytes) -> dict:
    """What cryptography thinks of a CSR; used to assert 'exactly one defect'."""
    csr = x509.load_der_x509_csr(der)
    pub = csr.public_key()
    curve = pub.curve.name if isinstance(pub, ec.EllipticCurvePublicKey) else type(pub).__name__
    cns = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return {
        "curve": curve,
        "alg": SIG_ALG_NAMES.get(csr.signature_algorithm_oid, csr.signature_algorithm_oid.dotted_string),
        "cn_count": len(cns),
        "cn_valid": len(cns) == 1 and bool(DEVICE_ID_RE.fullmatch(cns[0])),
        "sig_valid": _sig_valid(csr),
    }


def _sig_valid(csr: x509.CertificateSigningRequest) -> bool:
    # cryptography's is_signature_valid reports False for ecdsa-with-SHA1, so
    # verify that one by hand; everything else goes through cryptography.
    if csr.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA1:
        try:
            csr.public_key().verify(csr.signature, csr.tbs_certrequest_bytes, ec.ECDSA(hashes.SHA1()))
            return True
        except InvalidSignature:
            return False
    return csr.is_signature_valid


GOOD_PROFILE = {"curve": "secp256r1", "alg": "ecdsa-with-SHA256", "cn_count": 1, "cn_valid": True, "sig_valid": True}


def assert_one_defect(der: bytes, **defect) -> None:
    """The CSR equals a good P-256/SHA-256/one-valid-CN CSR except for `defect`."""
    got = profile(der)
    want = dict(GOOD_PROFILE)
    if "cn_count" in defect:
        want["cn_valid"] = False
    want.update(defect)
    for k, v in want.items():
        if v is None:  # "anything but the good value"
            assert got[k] != GOOD_PROFILE[k], (k, got)
        else:
            assert got[k] == v, (k, got, want)


def assert_not_csr(der: bytes) -> None:
    try:
        x509.load_der_x509_csr(der)
    except (ValueError, x509.InvalidVersion):
        return
    raise AssertionError("cryptography unexpectedly parsed a malformed CSR")


def selfcheck_header_decodes_to(header: str, der: bytes) -> None:
    """Sanity check of *our* header variants (not a reference implementation)."""
    s = header.strip()
    s = s.replace("-", "+").replace("_", "/")
    raw = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    if raw.startswith(b"-----BEGIN"):
        raw = x509.load_pem_x509_csr(raw).public_bytes(serialization.Encoding.DER)
    assert raw == der, "header does not round-trip to the CSR DER"


# --------------------------------------------------------------------------
# Vector collection
# --------------------------------------------------------------------------

CSR_VECTORS: list[dict] = []
KEY_VECTORS: list[dict] = []
AUTH_VECTORS: list[dict] = []


def _unique(vectors: list[dict], name: str) -> None:
    assert re.fullmatch(r"[a-z0-9_]+", name), name
    assert all(v["name"] != name for v in vectors), f"duplicate vector name {name}"


def err(code: str) -> dict:
    return {"error": code, "status": STATUS[code]}


def _policy(allow_p384: bool, subject_cn_only: bool) -> dict:
    # subjectCnOnly (the IoT Core mode's policy) is written only where it is on.
    return {"allowP384": allow_p384, **({"subjectCnOnly": True} if subject_cn_only else {})}


def csr_ok(name, description, header, der, allow_p384=False, subject_cn_only=False):
    _unique(CSR_VECTORS, name)
    selfcheck_header_decodes_to(header, der)
    CSR_VECTORS.append({"name": name, "description": description, "header": header,
                        **_policy(allow_p384, subject_cn_only), "expect": expect_ok(der)})


def csr_err(name, description, header, code, allow_p384=False, subject_cn_only=False):
    _unique(CSR_VECTORS, name)
    CSR_VECTORS.append({"name": name, "description": description, "header": header,
                        **_policy(allow_p384, subject_cn_only), "expect": err(code)})


def requested_extensions(der: bytes) -> set[str]:
    """The OIDs of the extensions a CSR requests, as cryptography reads them."""
    return {e.oid.dotted_string for e in x509.load_der_x509_csr(der).extensions}


def subject_beyond_cn(der: bytes) -> list[str]:
    """The subject's attribute OIDs other than CN, as cryptography reads them."""
    return [a.oid.dotted_string for a in x509.load_der_x509_csr(der).subject if a.oid != NameOID.COMMON_NAME]


def key_ok(name, description, text, pub):
    _unique(KEY_VECTORS, name)
    KEY_VECTORS.append({"name": name, "description": description, "input": text,
                        "expect": {"publicKey": canonical(pub)}})


def key_err(name, description, text, code):
    _unique(KEY_VECTORS, name)
    KEY_VECTORS.append({"name": name, "description": description, "input": text, "expect": err(code)})


def auth(name, description, header, registered, expect, allow_p384=False):
    _unique(AUTH_VECTORS, name)
    AUTH_VECTORS.append({"name": name, "description": description, "header": header,
                         "registeredKey": registered, "allowP384": allow_p384, "expect": expect})


def write_csr_file(name: str, der: bytes, pem: bool = False) -> None:
    (CSR_DIR / f"{name}.der").write_bytes(der)
    if pem:
        (CSR_DIR / f"{name}.pem").write_text(csr_pem(der))


# --------------------------------------------------------------------------
# Python-cryptography CSR builders
# --------------------------------------------------------------------------


def cn_name(*cns: str, extra: list[x509.NameAttribute] | None = None) -> x509.Name:
    attrs = list(extra or [])
    attrs += [x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False) for cn in cns]
    return x509.Name(attrs)


def py_csr(key, subject: x509.Name, digest=hashes.SHA256(), extensions=()) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    csr = builder.sign(key, digest)
    return csr.public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> None:
    KEYS_DIR.mkdir(parents=True, exist_ok=True)
    CSR_DIR.mkdir(parents=True, exist_ok=True)
    for old in CSR_DIR.iterdir():
        if old.suffix in (".der", ".pem"):
            old.unlink()

    # ---- keys ----
    k_dev = ensure_python_key("p256_device", lambda: ec.generate_private_key(ec.SECP256R1()))
    k_other = ensure_python_key("p256_other", lambda: ec.generate_private_key(ec.SECP256R1()))
    k_ossl = ensure_openssl_key("p256_openssl", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    k_p384 = ensure_openssl_key("p384_openssl", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
    ensure_openssl_key("rsa2048_openssl", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
    ensure_openssl_key("secp256k1_openssl", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1")
    k_ed = ensure_python_key("ed25519", ed25519.Ed25519PrivateKey.generate)
    k_p521 = ensure_python_key("p521", lambda: ec.generate_private_key(ec.SECP521R1()))
    assert isinstance(k_dev, ec.EllipticCurvePrivateKey) and k_dev.curve.name == "secp256r1"
    assert isinstance(k_ossl, ec.EllipticCurvePrivateKey) and k_ossl.curve.name == "secp256r1"
    assert isinstance(k_p384, ec.EllipticCurvePrivateKey) and k_p384.curve.name == "secp384r1"

    # ---- good P-256 CSRs, one per tool, in every header encoding ----
    for _ in range(200):
        der_ossl = openssl_csr(key_path("p256_openssl"), "/CN=sensor-ossl-0001", "sha256")
        if encodings_are_interesting(der_ossl):
            break
    else:
        sys.exit("could not get an OpenSSL CSR with padded base64 containing '+' or '/'")
    # cross-check: OpenSSL's own PEM output equals our PEM wrapping
    assert openssl("req", "-inform", "DER", "-outform", "PEM", stdin=der_ossl).decode() == csr_pem(der_ossl)

    for _ in range(200):
        der_py = py_csr(k_dev, cn_name("sensor-pyca-0001"))
        if encodings_are_interesting(der_py):
            break
    else:
        sys.exit("could not get a cryptography CSR with padded base64 containing '+' or '/'")
    assert x509.load_der_x509_csr(der_py).public_bytes(serialization.Encoding.PEM).decode() == csr_pem(der_py)

    write_csr_file("openssl_p256", der_ossl, pem=True)
    write_csr_file("python_p256", der_py, pem=True)

    for base, der, tool in (
        ("openssl_p256", der_ossl, "OpenSSL CLI (openssl req -new -sha256)"),
        ("python_p256", der_py, "Python cryptography (CertificateSigningRequestBuilder, SHA-256)"),
    ):
        pem = csr_pem(der)
        src = f"csr/{base}.der"
        csr_ok(f"{base}_der_b64", f"Good P-256 CSR by {tool} ({src}); header = standard base64 of DER, padded", b64(der), der)
        csr_ok(f"{base}_der_b64url_nopad", f"Good P-256 CSR by {tool} ({src}); header = URL-safe base64 of DER, no padding", b64url_nopad(der), der)
        csr_ok(f"{base}_pem_b64", f"Good P-256 CSR by {tool} ({src}); header = standard base64 of the PEM text", b64(pem.encode()), der)
        csr_ok(f"{base}_pem_b64url_nopad", f"Good P-256 CSR by {tool} ({src}); header = URL-safe base64 of the PEM text, no padding", b64url_nopad(pem.encode()), der)
        csr_ok(f"{base}_der_b64_whitespace", f"Good P-256 CSR by {tool} ({src}); standard base64 of DER surrounded by spaces, tabs and newlines", " \t\n" + b64(der) + "\n\t ", der)
        csr_ok(f"{base}_pem_b64url_whitespace", f"Good P-256 CSR by {tool} ({src}); URL-safe unpadded base64 of the PEM text surrounded by spaces/tabs/newline", "\t " + b64url_nopad(pem.encode()) + " \n", der)
        csr_ok(f"{base}_pem_crlf_b64", f"Good P-256 CSR by {tool} ({src}); PEM text with CRLF line endings, then standard base64", b64(pem.replace("\n", "\r\n").encode()), der)
    csr_ok("python_p256_der_b64_nopad", "Good P-256 CSR by Python cryptography (csr/python_p256.der); standard-alphabet base64 of DER with padding stripped", b64_nopad(der_py), der_py)
    csr_ok("python_p256_der_b64url_padded", "Good P-256 CSR by Python cryptography (csr/python_p256.der); URL-safe base64 of DER keeping '=' padding", b64url(der_py), der_py)

    # ---- other good CSRs ----
    der = openssl_csr(
        key_path("p256_openssl"), "/C=DE/O=Acme Devices GmbH/serialNumber=SN-0042/CN=sensor-ext-0042", "sha256",
        "-addext", "subjectAltName=DNS:sensor-ext-0042.devices.example,URI:urn:acme:sensor-ext-0042",
        "-addext", "keyUsage=critical,digitalSignature,keyAgreement",
    )
    write_csr_file("openssl_p256_extra_subject_and_extensions", der, pem=True)
    assert SAN in requested_extensions(der)
    csr_err("openssl_p256_extra_subject_and_extensions", "OpenSSL CLI: P-256 CSR with C, O, serialNumber besides CN and requested SAN + keyUsage extensions -> subject_alt_name_requested", b64(der), "subject_alt_name_requested")

    der = py_csr(
        k_dev, cn_name("sensor-py-ext-0042", extra=[
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Devices B.V."),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "SN-0042"),
        ]),
        extensions=[
            (x509.SubjectAlternativeName([x509.DNSName("sensor-py-ext-0042.devices.example"),
                                          x509.UniformResourceIdentifier("urn:acme:sensor-py-ext-0042")]), False),
            (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                           data_encipherment=False, key_agreement=True, key_cert_sign=False,
                           crl_sign=False, encipher_only=False, decipher_only=False), True),
        ],
    )
    write_csr_file("python_p256_extra_subject_and_extensions", der, pem=True)
    assert SAN in requested_extensions(der)
    csr_err("python_p256_extra_subject_and_extensions", "Python cryptography: P-256 CSR with C, O, serialNumber besides CN and requested SAN + keyUsage extensions -> subject_alt_name_requested", b64(der), "subject_alt_name_requested")

    # ---- what the CA chooses: a requested SAN is refused, other asks are ignored ----
    der = openssl_csr(key_path("p256_openssl"), "/CN=sensor-san-0042", "sha256",
                      "-addext", "subjectAltName=DNS:sensor-san-0042.devices.example")
    assert_one_defect(der)
    assert requested_extensions(der) == {SAN} and subject_beyond_cn(der) == []
    write_csr_file("openssl_p256_san_dns", der, pem=True)
    csr_err("openssl_p256_san_dns", "OpenSSL CLI: good P-256 CSR whose only addition is a requested subjectAltName (DNS) -> subject_alt_name_requested", b64(der), "subject_alt_name_requested")

    der = openssl_csr(key_path("p256_openssl"), "/O=Acme Devices/OU=Sensors/CN=sensor-ca-0042", "sha256",
                      "-addext", "basicConstraints=critical,CA:TRUE")
    assert_one_defect(der)
    assert requested_extensions(der) == {BASIC_CONSTRAINTS}
    assert x509.load_der_x509_csr(der).extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert subject_beyond_cn(der) == [NameOID.ORGANIZATION_NAME.dotted_string, NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string]
    write_csr_file("openssl_p256_ca_true_o_ou", der, pem=True)
    csr_ok("openssl_p256_ca_true_o_ou", "OpenSSL CLI: P-256 CSR with O and OU besides CN and a requested basicConstraints CA:TRUE; ok (the CA ignores them)", b64(der), der)
    csr_err("openssl_p256_ca_true_o_ou_subject_cn_only", "Same CSR (csr/openssl_p256_ca_true_o_ou.der) under the IoT Core mode's policy, subjectCnOnly = true -> subject_not_cn_only", b64(der), "subject_not_cn_only", subject_cn_only=True)
    csr_ok("python_p256_subject_cn_only", "Good P-256 CSR csr/python_p256.der (CN alone) under subjectCnOnly = true; ok", b64(der_py), der_py, subject_cn_only=True)

    der = py_csr(k_dev, cn_name("urn:acme:sensor_07-b:rev-2"))
    write_csr_file("python_p256_device_id_punctuation", der, pem=True)
    csr_ok("python_p256_device_id_punctuation", "Python cryptography: device id containing ':', '_' and '-' (urn:acme:sensor_07-b:rev-2)", b64(der), der)

    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-"
    cn128 = (alphabet * 3)[:128]
    assert len(cn128) == 128
    der = py_csr(k_dev, cn_name(cn128))
    write_csr_file("python_p256_device_id_128_chars", der, pem=True)
    csr_ok("python_p256_device_id_128_chars", "Python cryptography (NameAttribute _validate=False): CN of exactly 128 allowed characters; ok (upper bound)", b64(der), der)

    der = py_csr(k_dev, cn_name("Z"))
    write_csr_file("python_p256_device_id_1_char", der, pem=True)
    csr_ok("python_p256_device_id_1_char", "Python cryptography: CN of a single character 'Z'; ok (lower bound)", b64(der), der)

    der = openssl_csr(key_path("p256_openssl"), "/CN=0123A1B2C3D4E5F6EE", "sha256")
    write_csr_file("openssl_p256_secure_element_id", der, pem=True)
    csr_ok("openssl_p256_secure_element_id", "OpenSSL CLI: secure-element-style serial number as device id (0123A1B2C3D4E5F6EE)", b64(der), der)

    der_p384 = openssl_csr(key_path("p384_openssl"), "/CN=gateway-p384-0001", "sha384")
    write_csr_file("openssl_p384_sha384", der_p384, pem=True)
    assert profile(der_p384) == dict(GOOD_PROFILE, curve="secp384r1", alg="ecdsa-with-SHA384")
    csr_ok("openssl_p384_sha384_allowed", "OpenSSL CLI: P-384 key with ecdsa-with-SHA384, allowP384 = true; ok", b64(der_p384), der_p384, allow_p384=True)
    csr_err("openssl_p384_sha384_not_allowed", "OpenSSL CLI: P-384 key with ecdsa-with-SHA384, allowP384 = false -> unsupported_key", b64(der_p384), "unsupported_key")

    # ---- signature defects ----
    tbs, alg, sig = split_csr(der_py)
    r, s = decode_dss_signature(sig)
    bad_sig = encode_dss_signature(r, s ^ 0xFF)  # flip the last byte of s; DER lengths unchanged
    assert len(bad_sig) == len(sig)
    der = join_csr(tbs, alg, bad_sig)
    assert_one_defect(der, sig_valid=False)
    write_csr_file("bad_signature", der)
    der_bad_sig = der
    csr_err("bad_signature", "csr/python_p256.der (Python cryptography) with the last byte of ECDSA s flipped (DER still valid) -> bad_signature", b64(der), "bad_signature")

    der = py_csr(k_dev, cn_name("sensor-alter-0001"))
    tbs, alg, sig = split_csr(der)
    assert tbs.count(b"sensor-alter-0001") == 1
    der = join_csr(tbs.replace(b"sensor-alter-0001", b"sensor-alter-0002"), alg, sig)
    assert_one_defect(der, sig_valid=False)
    write_csr_file("subject_altered_after_signing", der)
    csr_err("subject_altered_after_signing", "Python cryptography CSR for CN sensor-alter-0001, CN byte changed to sensor-alter-0002 after signing (hand-edited DER) -> bad_signature", b64(der), "bad_signature")

    # ---- structural defects ----
    der = der_py[:-10]
    assert_not_csr(der)
    write_csr_file("truncated", der)
    csr_err("truncated", "csr/python_p256.der (Python cryptography) with the last 10 bytes cut off -> malformed_csr", b64(der), "malformed_csr")

    der = der_py + b"\x00\x00"
    assert_not_csr(der)
    write_csr_file("trailing_bytes", der)
    csr_err("trailing_bytes", "csr/python_p256.der (Python cryptography) followed by two 0x00 bytes -> malformed_csr", b64(der), "malformed_csr")

    der_cert = openssl("req", "-x509", "-new", "-config", _OPENSSL_CNF.name, "-key", str(key_path("p256_openssl")),
                       "-subj", "/CN=sensor-ossl-0001", "-sha256", "-days", "3650", "-outform", "DER")
    x509.load_der_x509_certificate(der_cert)
    assert_not_csr(der_cert)
    cert_pem = pem_wrap(der_cert, "CERTIFICATE")
    (CSR_DIR / "certificate_not_csr.der").write_bytes(der_cert)
    (CSR_DIR / "certificate_not_csr.pem").write_text(cert_pem)
    csr_err("certificate_der_instead_of_csr", "OpenSSL CLI (req -x509): self-signed P-256 certificate DER instead of a CSR -> malformed_csr", b64(der_cert), "malformed_csr")
    csr_err("certificate_pem_instead_of_csr", "OpenSSL CLI (req -x509): the same certificate as PEM 'CERTIFICATE', base64'd -> malformed_csr", b64(cert_pem.encode()), "malformed_csr")

    tbs, alg, _ = split_csr(der_py)
    children = der_children(der_read(tbs)[1])
    assert children[0] == b"\x02\x01\x00"
    tbs_v2 = der_tlv(0x30, b"\x02\x01\x01" + b"".join(children[1:]))
    der = join_csr(tbs_v2, alg, k_dev.sign(tbs_v2, ec.ECDSA(hashes.SHA256())))
    k_dev.public_key().verify(split_csr(der)[2], tbs_v2, ec.ECDSA(hashes.SHA256()))  # properly re-signed
    assert_not_csr(der)  # cryptography itself refuses version != 0
    write_csr_file("version_2", der)
    csr_err("version_2", "Hand-built DER from csr/python_p256.der with version field 1 (v2), re-signed with the same key by Python cryptography -> malformed_csr", b64(der), "malformed_csr")

    # ---- key / algorithm defects ----
    der = openssl_csr(key_path("rsa2048_openssl"), "/CN=sensor-rsa-0001", "sha256")
    assert_one_defect(der, curve="RSAPublicKey", alg=None)
    write_csr_file("rsa2048", der)
    csr_err("rsa2048", "OpenSSL CLI: RSA-2048 key, sha256WithRSAEncryption -> unsupported_key", b64(der), "unsupported_key")

    der = py_csr(k_ed, cn_name("sensor-ed25519-0001"), digest=None)
    assert_one_defect(der, curve="Ed25519PublicKey", alg=None)
    write_csr_file("ed25519", der)
    csr_err("ed25519", "Python cryptography: Ed25519 key (signature Ed25519) -> unsupported_key", b64(der), "unsupported_key")

    der = openssl_csr(key_path("secp256k1_openssl"), "/CN=sensor-k1-0001", "sha256")
    assert_one_defect(der, curve="secp256k1")
    write_csr_file("secp256k1", der)
    csr_err("secp256k1", "OpenSSL CLI: secp256k1 key with ecdsa-with-SHA256 -> unsupported_key", b64(der), "unsupported_key")

    der = py_csr(k_p521, cn_name("sensor-p521-0001"))
    assert_one_defect(der, curve="secp521r1")
    write_csr_file("p521", der)
    csr_err("p521", "Python cryptography: P-521 key with ecdsa-with-SHA256 -> unsupported_key", b64(der), "unsupported_key")

    der = openssl_csr(key_path("p256_openssl"), "/CN=sensor-sha1-0001", "sha1")
    assert_one_defect(der, alg="1.2.840.10045.4.1")
    write_csr_file("p256_sha1", der)
    csr_err("p256_sha1", "OpenSSL CLI (-sha1): P-256 key with ecdsa-with-SHA1 -> unsupported_algorithm", b64(der), "unsupported_algorithm")

    der = py_csr(k_dev, cn_name("sensor-sha384-0001"), digest=hashes.SHA384())
    assert_one_defect(der, alg="ecdsa-with-SHA384")
    write_csr_file("p256_sha384", der)
    csr_err("p256_sha384", "Python cryptography: P-256 key with ecdsa-with-SHA384 -> unsupported_algorithm", b64(der), "unsupported_algorithm")

    der = openssl_csr(key_path("p384_openssl"), "/CN=gateway-p384-0002", "sha256")
    assert profile(der) == dict(GOOD_PROFILE, curve="secp384r1")
    write_csr_file("p384_sha256", der)
    csr_err("p384_sha256", "OpenSSL CLI: P-384 key with ecdsa-with-SHA256, allowP384 = true -> unsupported_algorithm", b64(der), "unsupported_algorithm", allow_p384=True)

    # ---- subject / device id defects (all Python cryptography, P-256, SHA-256) ----
    der = py_csr(k_dev, x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Devices")]))
    assert_one_defect(der, cn_count=0)
    write_csr_file("no_cn", der)
    csr_err("no_cn", "Python cryptography: subject has only O=Acme Devices, no CN -> invalid_subject", b64(der), "invalid_subject")

    der = py_csr(k_dev, cn_name("sensor-two-0001", "sensor-two-0002"))
    assert_one_defect(der, cn_count=2)
    write_csr_file("two_cns", der)
    csr_err("two_cns", "Python cryptography: subject with two CN attributes (sensor-two-0001, sensor-two-0002) -> invalid_subject", b64(der), "invalid_subject")

    bad_ids = [
        ("cn_nul", "sensor\x00-0001", "CN containing a NUL byte"),
        ("cn_slash", "sensor/0001", "CN containing '/'"),
        ("cn_space", "sensor 0001", "CN containing a space"),
        ("cn_dot", "sensor.0001", "CN containing '.'"),
        ("cn_129_chars", cn128 + "x", "CN of 129 allowed characters (one over the limit)"),
        ("cn_control_char", "sensor\x07-0001", "CN containing the control character BEL (0x07)"),
        ("cn_non_ascii", "sensor-caf\u00e9", "CN containing non-ASCII 'é' (UTF8String)"),
        ("cn_empty", "", "CN present but empty (zero-length UTF8String)"),
    ]
    for name, cn, what in bad_ids:
        der = py_csr(k_dev, cn_name(cn))
        assert_one_defect(der, cn_valid=False)
        write_csr_file(name, der)
        csr_err(name, f"Python cryptography: {what} -> invalid_device_id", b64(der), "invalid_device_id")

    # ---- header-level defects ----
    csr_err("header_empty", "Empty header value -> missing_header", "", "missing_header")
    csr_err("header_whitespace_only", "Header of only spaces/tabs -> missing_header", " \t  \t ", "missing_header")
    csr_err("header_too_large", "8193 'A' characters (one over the 8192 limit) -> header_too_large", "A" * (MAX_HEADER + 1), "header_too_large")
    padded = b64(der_py) + " " * (MAX_HEADER + 1 - len(b64(der_py)))
    assert len(padded) == MAX_HEADER + 1
    csr_err("header_too_large_by_whitespace", "Valid base64 DER (csr/python_p256.der) right-padded with spaces to 8193 bytes: the limit applies to the raw value -> header_too_large", padded, "header_too_large")
    csr_err("header_8192_bytes_not_too_large", "Exactly 8192 'A' characters: not too large, decodes to zero bytes (neither DER nor PEM) -> malformed_header", "A" * MAX_HEADER, "malformed_header")
    pem_py = csr_pem(der_py)
    one_line = "".join(pem_py.splitlines())
    assert one_line.startswith("-----BEGIN CERTIFICATE REQUEST-----MI")
    csr_err("header_raw_pem_one_line", "Raw (not base64'd) PEM of csr/python_p256.pem with newlines removed -> malformed_header", one_line, "malformed_header")
    csr_err("header_raw_pem_multiline", "Raw (not base64'd) PEM text of csr/python_p256.pem, newlines included -> malformed_header", pem_py, "malformed_header")
    csr_err("header_not_base64", "Not base64 at all ('not*base64!') -> malformed_header", "not*base64!", "malformed_header")
    csr_err("header_base64_of_text", "Valid base64 of b'hello world' (neither DER nor PEM) -> malformed_header", b64(b"hello world"), "malformed_header")
    garbage = bytes.fromhex("3003020100") + b"junk\xff\xfe"
    csr_err("header_base64_der_garbage", "Valid base64 of bytes starting with 0x30 (30 03 02 01 00 + junk) that are not a CSR -> malformed_csr", b64(garbage), "malformed_csr")

    # ---- key vectors ----
    pub = k_dev.public_key()
    nums = pub.public_numbers()
    unc = sec1(pub)
    assert len(unc.hex()) == 130 and unc[0] == 4
    key_ok("p256_spki_pem", "P-256 key (keys/p256_device.pem) as SPKI PEM, by Python cryptography", spki_pem(pub), pub)
    key_ok("p256_spki_der_b64", "Same P-256 key as standard base64 of SPKI DER", b64(spki_der(pub)), pub)
    key_ok("p256_sec1_uncompressed_hex_lower", "Same P-256 key as SEC1 uncompressed point, lowercase hex (04||X||Y, 130 chars)", unc.hex(), pub)
    key_ok("p256_sec1_uncompressed_hex_upper", "Same P-256 key as SEC1 uncompressed point, uppercase hex", unc.hex().upper(), pub)
    key_ok("p256_sec1_compressed_hex", "Same P-256 key as SEC1 compressed point hex (02/03||X, 66 chars)", sec1(pub, compressed=True).hex(), pub)
    key_ok("p256_raw_xy_hex", "Same P-256 key as raw X||Y hex without 04 prefix (128 chars, as a secure element reports it)", unc[1:].hex(), pub)
    key_ok("p256_jwk", "Same P-256 key as a minimal JWK (kty, crv, x, y)", jwk(pub), pub)
    key_ok("p256_jwk_extra_members", "Same P-256 key as a JWK with extra members kid, use, alg", jwk(pub, kid="sensor-pyca-0001", use="sig", alg="ES256"), pub)
    ossl_spki = openssl("pkey", "-in", str(key_path("p256_openssl")), "-pubout").decode()
    key_ok("p256_spki_pem_openssl", "P-256 key keys/p256_openssl.pem as SPKI PEM written by OpenSSL CLI (openssl pkey -pubout)", ossl_spki, k_ossl.public_key())
    ossl_compressed = openssl("ec", "-in", str(key_path("p256_openssl")), "-pubout", "-conv_form", "compressed", "-outform", "DER")
    assert ossl_compressed[-33:] == sec1(k_ossl.public_key(), compressed=True)
    key_ok("p256_sec1_compressed_hex_openssl", "P-256 key keys/p256_openssl.pem as SEC1 compressed hex taken from OpenSSL CLI (openssl ec -conv_form compressed)", ossl_compressed[-33:].hex(), k_ossl.public_key())
    p384pub = k_p384.public_key()
    key_ok("p384_spki_pem", "P-384 key (keys/p384_openssl.pem) as SPKI PEM -> canonical P-384 SPKI", spki_pem(p384pub), p384pub)
    key_ok("p384_jwk", "Same P-384 key as JWK (crv P-384) -> canonical P-384 SPKI", jwk(p384pub), p384pub)

    key_err("garbage_text", "Arbitrary text -> invalid_public_key", "this is not a public key", "invalid_public_key")
    key_err("hex_wrong_length", "SEC1 uncompressed hex with the last byte missing (128 hex chars starting 04) -> invalid_public_key", unc[:-1].hex(), "invalid_public_key")
    off = bytearray(unc)
    off[-1] ^= 0x01
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(off))
        raise AssertionError("modified point is unexpectedly on the curve")
    except ValueError:
        pass
    key_err("point_not_on_curve", "SEC1 uncompressed hex of the P-256 key with the last byte of Y changed (point not on curve) -> invalid_public_key", bytes(off).hex(), "invalid_public_key")
    rsa_pub = load_key("rsa2048_openssl").public_key()
    key_err("rsa_spki_pem", "RSA-2048 public key as SPKI PEM -> unsupported_key", spki_pem(rsa_pub), "unsupported_key")
    key_err("ed25519_spki_pem", "Ed25519 public key as SPKI PEM -> unsupported_key", spki_pem(k_ed.public_key()), "unsupported_key")
    rn = rsa_pub.public_numbers()
    rsa_jwk = json.dumps({"kty": "RSA", "n": b64url_nopad(rn.n.to_bytes(256, "big")), "e": b64url_nopad(rn.e.to_bytes(3, "big"))}, separators=(",", ":"))
    key_err("jwk_kty_rsa", "JWK with kty RSA (the RSA-2048 key) -> unsupported_key", rsa_jwk, "unsupported_key")
    jwk_no_y = json.loads(jwk(pub))
    del jwk_no_y["y"]
    key_err("jwk_p256_missing_y", "JWK kty EC, crv P-256 without the y member -> invalid_public_key", json.dumps(jwk_no_y, separators=(",", ":")), "invalid_public_key")
    key_err("empty_string", "Empty string -> invalid_public_key", "", "invalid_public_key")

    # ---- authorize vectors ----
    header_py = b64(der_py)
    ok_py = expect_ok(der_py)
    for name, what, registered in (
        ("spki_pem", "SPKI PEM", spki_pem(pub)),
        ("spki_der_b64", "base64 SPKI DER", b64(spki_der(pub))),
        ("sec1_hex", "SEC1 uncompressed hex", unc.hex()),
        ("compressed_hex", "SEC1 compressed hex", sec1(pub, compressed=True).hex()),
        ("raw_xy_hex", "raw X||Y hex", unc[1:].hex()),
        ("jwk", "JWK", jwk(pub)),
    ):
        auth(f"authorize_ok_{name}", f"Good P-256 CSR csr/python_p256.der (Python cryptography) with its own key registered as {what} -> ok", header_py, registered, ok_py)
    auth("authorize_ok_openssl_csr_openssl_spki", "Good P-256 CSR csr/openssl_p256.der (OpenSSL CLI), PEM header, key registered as SPKI PEM from openssl pkey -pubout -> ok",
         b64(csr_pem(der_ossl).encode()), ossl_spki, expect_ok(der_ossl))
    auth("authorize_ok_p384_jwk", "P-384/SHA-384 CSR csr/openssl_p384_sha384.der (OpenSSL CLI), key registered as P-384 JWK, allowP384 = true -> ok",
         b64(der_p384), jwk(p384pub), expect_ok(der_p384), allow_p384=True)
    auth("authorize_key_mismatch", "Good P-256 CSR csr/python_p256.der, a different P-256 key (keys/p256_other.pem) registered as SPKI PEM -> key_mismatch",
         header_py, spki_pem(k_other.public_key()), err("key_mismatch"))
    auth("authorize_key_mismatch_jwk", "Good P-256 CSR csr/python_p256.der, a different P-256 key (keys/p256_other.pem) registered as JWK -> key_mismatch",
         header_py, jwk(k_other.public_key()), err("key_mismatch"))
    auth("authorize_bad_signature_right_key", "Bad-signature CSR (csr/bad_signature.der) with the right key registered as SPKI PEM -> bad_signature",
         b64(der_bad_sig), spki_pem(pub), err("bad_signature"))

    # ---- write JSON ----
    doc = {"generatedBy": "core/tests/vectors/generate.py", "csr": CSR_VECTORS, "keys": KEY_VECTORS, "authorize": AUTH_VECTORS}
    JSON_PATH.write_text(json.dumps(doc, indent=2, ensure_ascii=True) + "\n")

    # ---- OpenSSL cross-check of the files on disk ----
    # (OpenSSL 3.0 `req -verify` exits 0 even on failure, so read its message.)
    def openssl_verify(path: Path) -> str:
        proc = subprocess.run(["openssl", "req", "-inform", path.suffix[1:].upper(), "-in", str(path), "-noout", "-verify"],
                              capture_output=True, env=_OPENSSL_ENV)
        out = (proc.stdout + proc.stderr).decode()
        if "verify OK" in out:
            return "ok"
        if "verify failure" in out:
            return "failure"
        return "error"

    # Every file must self-verify except these (trailing_bytes and version_2
    # do verify: OpenSSL ignores data after the DER and checks the v2 signature).
    not_ok = {
        "bad_signature": "failure",
        "subject_altered_after_signing": "failure",
        "truncated": "error",
        "certificate_not_csr": "error",
    }
    for path in sorted(CSR_DIR.iterdir()):
        want = not_ok.get(path.stem, "ok")
        got = openssl_verify(path)
        assert got == want, f"openssl req -verify {path.name}: {got}, expected {want}"

    print(f"wrote {JSON_PATH.relative_to(HERE.parents[2])}: "
          f"{len(CSR_VECTORS)} csr, {len(KEY_VECTORS)} keys, {len(AUTH_VECTORS)} authorize vectors")
    print(f"openssl req -verify: {len(list(CSR_DIR.iterdir()))} files in csr/ checked (OK except bad_signature, subject_altered_after_signing, truncated, certificate_not_csr)")


if __name__ == "__main__":
    main()
