"""Must show: a PDF signed with an agency signer is valid and trusted for poppler's pdfsig.

pyHanko signs here through a minimal adapter over :class:`keys.pki.AgencySigner`
(the private key stays in the key backend); poppler checks the result with
an NSS database that trusts only the region root.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore
from reportlab.pdfgen import canvas

from keys import pki
from keys.keyring import Keyring

pytestmark = pytest.mark.external

USCC = "91350100M000100Y43"


class _AgencyPdfSigner(signers.Signer):
    """pyHanko's one hook, answered by our signer (which never shows its key)."""

    def __init__(self, agency: pki.AgencySigner) -> None:
        def load(cert: object) -> asn1_x509.Certificate:
            return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))  # type: ignore[attr-defined]

        self._agency = agency
        super().__init__(
            signing_cert=load(agency.certificate),
            cert_registry=SimpleCertificateStore.from_certs([load(c) for c in agency.chain]),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
        )

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        assert digest_algorithm == "sha256"
        return self._agency.sign(data, der=True)


def _blank_pdf() -> bytes:
    out = io.BytesIO()
    c = canvas.Canvas(out)
    c.drawString(72, 720, "Yiwang test certificate")
    c.showPage()
    c.save()
    return out.getvalue()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)  # noqa: S603


def test_pdf_signed_by_agency_is_valid_and_trusted_in_pdfsig(
    keyring: Keyring, tmp_path: Path
) -> None:
    if not (shutil.which("pdfsig") and shutil.which("certutil")):
        pytest.skip("needs poppler-utils (pdfsig) and libnss3-tools (certutil)")
    region = pki.init_region(keyring, region="350100", name="福州市")
    agency = pki.issue_signer(keyring, uscc=USCC, name="福州市市场监督管理局")

    writer = IncrementalPdfFileWriter(io.BytesIO(_blank_pdf()))
    signed = signers.sign_pdf(
        writer,
        signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256"),
        signer=_AgencyPdfSigner(agency),
    )
    pdf = tmp_path / "signed.pdf"
    pdf.write_bytes(signed.getvalue())

    nssdb = tmp_path / "nssdb"
    nssdb.mkdir()
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(region.root.public_bytes(Encoding.PEM))
    assert _run("certutil", "-N", "--empty-password", "-d", f"sql:{nssdb}").returncode == 0
    added = _run(
        "certutil",
        "-A",
        "-n",
        "region-root",
        "-t",
        "CT,C,C",
        "-i",
        str(root_pem),
        "-d",
        f"sql:{nssdb}",
    )
    assert added.returncode == 0, added.stderr

    # pdfsig exits 0 even for a broken signature (docs/design.md): read its text.
    result = _run("pdfsig", "-nssdir", f"sql:{nssdb}", "-no-ocsp", str(pdf))
    assert "Signature is Valid." in result.stdout, result.stdout + result.stderr
    assert "Certificate is Trusted." in result.stdout, result.stdout + result.stderr
    assert "福州市市场监督管理局" in result.stdout

    # Control: without the root in the database the same PDF is not trusted.
    empty = tmp_path / "empty"
    empty.mkdir()
    _run("certutil", "-N", "--empty-password", "-d", f"sql:{empty}")
    untrusted = _run("pdfsig", "-nssdir", f"sql:{empty}", "-no-ocsp", str(pdf))
    assert "Signature is Valid." in untrusted.stdout
    assert "Certificate is Trusted." not in untrusted.stdout
