#!/usr/bin/env python3
"""Generate the manufacturer-manifest fixtures (core/tests/manifests/).

Run from the repository root:

    python3 core/tests/manifests/generate.py

Everything here is made with Python `cryptography` (48.0.0 when these were made),
independently of the project's Rust code. Keys come from fixed scalars and ECDSA
signatures are deterministic (RFC 6979), so a run reproduces the same bytes.

The manifests mimic Microchip Trust&GO / TrustFLEX manifests: a JSON array of
signed entries {payload, protected, header: {uniqueId}, signature}, each a JWS
(ES256) whose protected header names the manifest signer certificate by
`x5t#S256` (base64url SHA-256 of its DER) and `kid` (base64url of its subject
key identifier). The payload's `publicKeySet.keys` holds the device key with
kid "0" and its `x5c` chain [device certificate, device CA certificate]
(standard base64 DER), plus the keys of slots "1" and "2" without certificates.

Outputs (all rewritten on every run):
  signer.pem, signer.der        the manifest signer certificate (self-signed)
  other_signer.pem              a second signer that no test passes by default
  valid.json                    3 good entries, each with an x5c chain
  tampered_payload.json         [good entry, entry whose payload changed after signing]
  unknown_signer.json           1 entry signed by other_signer
  unique_id_mismatch.json       1 entry whose header.uniqueId differs from the payload's
  device_certificate_key_mismatch.json
                                1 entry whose device certificate holds another key
  device_certificate_wrong_issuer.json
                                1 entry whose device certificate was signed by a CA
                                other than the next certificate in x5c
  serial_number_not_printable.json
                                1 good entry whose device certificate carries a
                                serialNumber PrintableString with '_' and '@' (invalid
                                for PrintableString) in its subject and in a SAN
                                directoryName, as real Microchip device certificates do
  serial_number_not_printable.der
                                that device certificate alone
  expected.json                 device ids and canonical keys (base64 SPKI DER) of the
                                entries that must import, computed here
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
NOT_AFTER = datetime.datetime(2049, 12, 31, tzinfo=datetime.timezone.utc)

# The serialNumber attribute as cryptography can encode it, and the value patched in
# afterwards (same length) that PrintableString does not allow ('_' and '@').
SERIAL_PLACEHOLDER = "eui48-0004A3-0BEEF-mchp"
SERIAL_NOT_PRINTABLE = "eui48_0004A3@0BEEF_mchp"
assert len(SERIAL_PLACEHOLDER) == len(SERIAL_NOT_PRINTABLE)


def key(scalar: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar, ec.SECP256R1())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def spki_b64(public_key) -> str:
    return base64.b64encode(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()


# --------------------------------------------------------------------------
# Tiny DER helper (definite lengths only; enough to re-sign a TBSCertificate)
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
    out, off = [], 0
    while off < len(content):
        start = off
        _, _, off = der_read(content, off)
        out.append(content[start:off])
    return out


# --------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------


def ca_certificate(ca_key, common_name: str, serial: int) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Manufacturer"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    public = ca_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(ca_key, hashes.SHA256(), ecdsa_deterministic=True)
    )


def device_certificate(
    device_public, unique_id: str, ca_cert, ca_key, serial: int, serial_number_attr: bool
) -> bytes:
    """A device certificate DER; with `serial_number_attr`, a serialNumber attribute
    that is not a valid PrintableString sits in the subject and in a SAN directoryName."""
    subject = [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Manufacturer"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"sn{unique_id}"),
    ]
    if serial_number_attr:
        subject.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, SERIAL_PLACEHOLDER))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(device_public)
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
    )
    if serial_number_attr:
        san_name = x509.Name(
            [x509.NameAttribute(NameOID.SERIAL_NUMBER, SERIAL_PLACEHOLDER)]
        )
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DirectoryName(san_name)]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256(), ecdsa_deterministic=True)
    if not serial_number_attr:
        return der(cert)
    # cryptography refuses to encode '_' or '@' in a PrintableString: patch the signed
    # part (same length, so no length changes) and sign it again.
    tbs = cert.tbs_certificate_bytes
    placeholder = SERIAL_PLACEHOLDER.encode()
    assert tbs.count(b"\x13" + bytes([len(placeholder)]) + placeholder) == 2
    tbs = tbs.replace(placeholder, SERIAL_NOT_PRINTABLE.encode())
    _, content, _ = der_read(der(cert))
    _, algorithm, _ = der_children(content)
    signature = ca_key.sign(tbs, ECDSA)
    ca_key.public_key().verify(signature, tbs, ECDSA)
    return der_tlv(0x30, tbs + algorithm + der_tlv(0x03, b"\x00" + signature))


# --------------------------------------------------------------------------
# Manifest entries
# --------------------------------------------------------------------------


def jwk(kid: str, public, x5c: list[bytes] | None = None) -> dict:
    numbers = public.public_numbers()
    out = {
        "kid": kid,
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    if x5c is not None:
        out["x5c"] = [base64.b64encode(c).decode() for c in x5c]
    return out


def payload(unique_id: str, keys: list[dict]) -> dict:
    return {
        "version": 1,
        "model": "ATECC608B",
        "partNumber": "ATECC608B-TNGTLSU-G",
        "manufacturer": {
            "organizationName": "Example Manufacturer",
            "organizationalUnitName": "Secure Products Group",
        },
        "provisioner": {
            "organizationName": "Example Manufacturer",
            "organizationalUnitName": "Secure Products Group",
        },
        "distributor": {
            "organizationName": "Example Manufacturer",
            "organizationalUnitName": "Example Direct",
        },
        "groupId": "TESTGROUP0000001",
        "provisioningTimestamp": "2024-01-01T00:00:00.000Z",
        "uniqueId": unique_id,
        "publicKeySet": {"keys": keys},
    }


def encode_json(value: dict) -> str:
    return b64url(json.dumps(value).encode())


def signed_entry(payload_b64: str, signer_key, signer_cert, header_unique_id: str) -> dict:
    ski = signer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    protected = encode_json(
        {
            "typ": "JWT",
            "alg": "ES256",
            "kid": b64url(ski.value.digest),
            "x5t#S256": b64url(hashlib.sha256(der(signer_cert)).digest()),
        }
    )
    r, s = decode_dss_signature(signer_key.sign(f"{protected}.{payload_b64}".encode(), ECDSA))
    return {
        "payload": payload_b64,
        "protected": protected,
        "header": {"uniqueId": header_unique_id},
        "signature": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
    }


def write_json(name: str, value) -> None:
    (HERE / name).write_text(json.dumps(value, indent=2) + "\n")


def main() -> None:
    signer_key = key(0x5161_6E65_7201)
    other_signer_key = key(0x0751_6E65_7202)
    ca_key = key(0xCA01)
    other_ca_key = key(0xCA02)

    signer = ca_certificate(signer_key, "Example Manifest Signer 01", 0x5101)
    other_signer = ca_certificate(other_signer_key, "Example Manifest Signer 02", 0x5102)
    ca = ca_certificate(ca_key, "Example Device CA 2C00", 0xCA01)
    other_ca = ca_certificate(other_ca_key, "Example Device CA FFFF", 0xCA02)

    pem = serialization.Encoding.PEM
    (HERE / "signer.pem").write_bytes(signer.public_bytes(pem))
    (HERE / "signer.der").write_bytes(der(signer))
    (HERE / "other_signer.pem").write_bytes(other_signer.public_bytes(pem))

    serial = iter(range(0x1000, 0x2000))

    def device(index: int, *, cert_key=None, issuer_key=None, serial_number_attr=False):
        """(unique id, device key, payload dict) for device `index`."""
        unique_id = f"0123{index:012x}ee"
        device_key = key(0xD0_0000 + index)
        certificate = device_certificate(
            (cert_key or device_key).public_key(), unique_id, ca, issuer_key or ca_key,
            next(serial), serial_number_attr,
        )
        keys = [
            jwk("0", device_key.public_key(), [certificate, der(ca)]),
            jwk("1", key(0xD1_0000 + index).public_key()),
            jwk("2", key(0xD2_0000 + index).public_key()),
        ]
        if index % 2 == 0:
            # kid "0" is not always first: the parser must pick by kid, not by position.
            keys[0], keys[1] = keys[1], keys[0]
        return unique_id, device_key, payload(unique_id, keys)

    def entry(body: dict, unique_id: str, *, signed_by=(signer_key, signer)) -> dict:
        return signed_entry(encode_json(body), *signed_by, unique_id)

    expected: dict[str, list[dict]] = {}

    def expect(name: str, devices) -> None:
        expected[name] = [
            {"deviceId": unique_id, "publicKey": spki_b64(device_key.public_key())}
            for unique_id, device_key, _ in devices
        ]

    good = [device(i) for i in (1, 2, 3)]
    write_json("valid.json", [entry(body, uid) for uid, _, body in good])
    expect("valid.json", good)

    first, victim = device(4), device(5)
    attacker = key(0xBAD)
    signed = entry(victim[2], victim[0])
    tampered = json.loads(json.dumps(victim[2]))
    for k in tampered["publicKeySet"]["keys"]:
        if k["kid"] == "0":
            k.update({c: jwk("0", attacker.public_key())[c] for c in ("x", "y")})
    signed["payload"] = encode_json(tampered)
    write_json("tampered_payload.json", [entry(first[2], first[0]), signed])
    expect("tampered_payload.json", [first])

    uid, _, body = device(6)
    write_json(
        "unknown_signer.json", [entry(body, uid, signed_by=(other_signer_key, other_signer))]
    )

    uid, _, body = device(7)
    write_json("unique_id_mismatch.json", [entry(body, "0123000000000099ee")])

    uid, _, body = device(8, cert_key=key(0xD3_0008))
    write_json("device_certificate_key_mismatch.json", [entry(body, uid)])

    uid, _, body = device(9, issuer_key=other_ca_key)
    write_json("device_certificate_wrong_issuer.json", [entry(body, uid)])

    odd = device(10, serial_number_attr=True)
    write_json("serial_number_not_printable.json", [entry(odd[2], odd[0])])
    odd_cert = next(k for k in odd[2]["publicKeySet"]["keys"] if k["kid"] == "0")["x5c"][0]
    (HERE / "serial_number_not_printable.der").write_bytes(base64.b64decode(odd_cert))
    expect("serial_number_not_printable.json", [odd])

    write_json("expected.json", expected)


if __name__ == "__main__":
    main()
