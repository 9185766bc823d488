"""Figures for ``make bench`` (section ``signing``): PDF signing and QR verification rates.

Each function measures in one process, on whatever core it runs, and
returns operations per second; the harness prints them side by side (issue
5: issuance through the API against the bare pyHanko B-B sign rate of the
same page, QR verifications against the raw ``cryptography`` P-256 verify
rate). Pairs that are compared are measured in alternating slices, so a
noisy neighbour slows both sides alike. No assertions: tests never time.

The bare-pyHanko baseline needs a private key in pyHanko's own
``SimpleSigner``; it uses a throw-away P-256 key generated here in memory
for the measurement and never stored — real agency keys stay in ``keys/``.

Run through the harness (``python -m benchmarks --only signing``) or as
``python -m benchmarks.signing``; ``benchmarks.certstore`` reuses
:func:`alternate` and :func:`bare_pyhanko_signer`.
"""

from __future__ import annotations

import datetime as _dt
import io
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.backend import public_jwk
from signing.pdf import CertificateDocument, render_certificate_pdf
from signing.qr import QrClaims, TrustedIssuer, TrustList, encode_qr_payload, verify_qr_payload

__all__ = [
    "alternate",
    "bare_pyhanko_sign_rate",
    "bare_pyhanko_signer",
    "yiwang_sign_rate",
    "qr_verify_rates",
    "sample_page",
    "run",
    "main",
]

_USCC = "91350100M000100Y43"


def _rate(fn: Callable[[], object], seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        fn()
        n += 1
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def alternate(
    a: Callable[[], object], b: Callable[[], object], *, seconds: float, slices: int = 10
) -> tuple[float, float]:
    """Rates of ``a`` and ``b`` measured in alternating slices of the same run."""
    ta = tb = 0.0
    na = nb = 0
    per = seconds / (2 * slices)
    for _ in range(slices):
        for fn, is_a in ((a, True), (b, False)):
            count = 0
            start = time.perf_counter()
            while time.perf_counter() - start < per:
                fn()
                count += 1
            spent = time.perf_counter() - start
            if is_a:
                ta, na = ta + spent, na + count
            else:
                tb, nb = tb + spent, nb + count
    return na / ta, nb / tb


@dataclass
class _ThrowAway:
    """A bench-only signer (``keys.backend.Signer`` protocol) with a self-issued certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    kid: str = "bench"
    algorithm: str = "ES256"
    uscc: str = _USCC

    @property
    def chain(self) -> list[x509.Certificate]:
        return []

    def sign(self, data: bytes, *, der: bool = False) -> bytes:
        sig = self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        if der:
            return sig
        r, s = decode_dss_signature(sig)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def public_key(self) -> PublicKeyTypes:
        return self.key.public_key()

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.public_key(), kid=self.kid, algorithm=self.algorithm)


def _throw_away() -> _ThrowAway:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "bench signer"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, _USCC),
        ]
    )
    start = _dt.datetime(2024, 1, 1, tzinfo=_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _dt.timedelta(days=3650))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return _ThrowAway(key=key, certificate=cert)


def _sample_claims(uscc: str = _USCC) -> QrClaims:
    return QrClaims(
        identifier=f"1.2.156.3005.2.JMHZ.{uscc}.000123.1.K",
        type_code="JMHZ",
        issuer_uscc=uscc,
        holder_name="张三丰",
        holder_code_masked="110101********123X",
        holder_code_type="111",
        valid_from=_dt.date(2026, 5, 1),
        valid_until=_dt.date(2036, 4, 30),
        issued_at=_dt.date(2026, 5, 1),
        status_list="1",
        status_index=98765,
        fields={"ad": "北京市东城区"},
    )


def sample_page(signer: object | None = None) -> bytes:
    """A rendered resident-certificate page (unsigned)."""
    s = signer or _throw_away()
    c = _sample_claims(getattr(s, "uscc", _USCC))
    doc = CertificateDocument(
        title_zh="居住证明",
        title_en="Certificate of Residence",
        holder_name=c.holder_name,
        holder_code_masked=c.holder_code_masked,
        issuer_name="北京市东城区公安分局",
        identifier=c.identifier,
        paper_serial="JZ2026-0000123",
        qr_text=encode_qr_payload(c, s),  # type: ignore[arg-type]
        issued_at=c.issued_at,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        fields=(("住址", "Address", "北京市东城区东华门街道南池子大街12号"),),
    )
    return render_certificate_pdf(doc)


def bare_pyhanko_sign_rate(page: bytes, *, seconds: float = 3.0) -> float:
    """pyHanko alone: SimpleSigner with the key parsed once, PAdES B-B, ``bytes_reserved``."""
    return _rate(bare_pyhanko_signer(page), seconds)


def bare_pyhanko_signer(page: bytes) -> Callable[[], bytes]:
    """One bare pyHanko B-B signature of ``page`` per call: what :func:`bare_pyhanko_sign_rate`
    times, for measuring it in :func:`alternate` slices beside something else."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    t = _throw_away()
    der_key = t.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert = asn1_x509.Certificate.load(t.certificate.public_bytes(serialization.Encoding.DER))
    simple = signers.SimpleSigner(
        signing_cert=cert,
        signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
        cert_registry=SimpleCertificateStore.from_certs([cert]),  # type: ignore[no-untyped-call]
    )
    meta = signers.PdfSignatureMetadata(
        field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )

    def once() -> bytes:
        out = io.BytesIO()
        signers.PdfSigner(meta, signer=simple).sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(page)), bytes_reserved=8192, output=out
        )
        return out.getvalue()

    return once


def yiwang_sign_rate(page: bytes, signer: object, *, seconds: float = 3.0) -> float:
    """:func:`signing.pades.sign_pdf` through the keys adapter (B-B)."""
    from signing.pades import sign_pdf

    return _rate(lambda: sign_pdf(page, signer), seconds)  # type: ignore[arg-type]


def qr_verify_rates(*, seconds: float = 4.0) -> tuple[float, float]:
    """``(verify_qr_payload per second, raw cryptography P-256 verify per second)``, alternating."""
    t = _throw_away()
    c = _sample_claims()
    text = encode_qr_payload(c, t)
    trust = TrustList(
        [
            TrustedIssuer.from_certificate(
                t.certificate, uscc=_USCC, name="bench", region="000000", allowed_types={"JMHZ"}
            )
        ]
    )
    now = _dt.datetime(2027, 1, 1, tzinfo=_dt.UTC)
    if not verify_qr_payload(text, trust, now=now).valid:
        raise RuntimeError("benchmark payload does not verify")
    data = b"x" * 200
    sig = t.key.sign(data, ec.ECDSA(hashes.SHA256()))
    pub = t.key.public_key()
    return alternate(
        lambda: verify_qr_payload(text, trust, now=now),
        lambda: pub.verify(sig, data, ec.ECDSA(hashes.SHA256())),
        seconds=seconds,
    )


def run(*, seconds: float = 3.0) -> dict[str, float]:
    """All figures, for the harness."""
    t = _throw_away()
    page = sample_page(t)
    bare = bare_pyhanko_signer(page)
    from signing.pades import sign_pdf

    bare_rate, ours = alternate(bare, lambda: sign_pdf(page, t), seconds=seconds, slices=6)
    qr, raw = qr_verify_rates(seconds=seconds)
    start = time.perf_counter()
    for _ in range(20):
        sample_page(t)
    render = 20 / (time.perf_counter() - start)
    return {
        "pyhanko_bb_sign_per_s": bare_rate,
        "signing_sign_pdf_per_s": ours,
        "render_plus_qr_per_s": render,
        "qr_verify_per_s": qr,
        "p256_verify_per_s": raw,
    }


def main() -> dict[str, float]:
    r = run()
    print(f"bare pyHanko B-B sign of the page     {r['pyhanko_bb_sign_per_s']:8.1f} /s")
    print(
        f"signing.pades.sign_pdf (keys adapter) {r['signing_sign_pdf_per_s']:8.1f} /s  ({r['signing_sign_pdf_per_s'] / r['pyhanko_bb_sign_per_s']:.2f}x)"
    )
    print(f"render page incl. QR payload          {r['render_plus_qr_per_s']:8.1f} /s")
    print(f"QR verifications (verify_qr_payload)  {r['qr_verify_per_s']:8.1f} /s")
    print(
        f"raw cryptography P-256 verify         {r['p256_verify_per_s']:8.1f} /s  (ratio {r['qr_verify_per_s'] / r['p256_verify_per_s']:.2f}x)"
    )
    return r  # for make bench's closing table (benchmarks.summary)


if __name__ == "__main__":
    main()
