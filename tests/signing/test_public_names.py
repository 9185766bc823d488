"""signing.qr and signing.pades are packages now; what callers import from them stays put."""

from __future__ import annotations

import subprocess
import sys

import pytest

import signing.pades
import signing.qr
from signing.pades import bounds, cms, context, ltv, sign, tsa, verify
from signing.qr import claims, codec, draw, trust
from signing.qr import verify as qr_verify

# The public names the single modules offered, which certstore and the tests import.
QR_NAMES = {
    claims: ["IDENTIFIER_ROOT", "CHINA_TZ", "QrClaims"],
    codec: [
        "PREFIX",
        "MAX_QR_VERSION",
        "MAX_TEXT_LENGTH",
        "DecodedPayload",
        "qr_kid",
        "encode_qr_payload",
        "decode_qr_payload",
    ],
    trust: ["TrustedIssuer", "TrustList"],
    qr_verify: ["CHECK_NAMES", "Check", "QrVerification", "verify_qr_payload"],
    draw: ["QrCode", "make_qr", "qr_matrix", "qr_svg", "qr_png"],
}
PADES_NAMES = {
    bounds: ["PdfLimits", "PdfTooComplex", "check_pdf_bounds"],
    cms: ["KeysCmsSigner", "cms_signer"],
    context: ["make_validation_context"],
    sign: ["sign_pdf", "PADES_LEVELS", "add_archive_timestamp"],
    tsa: ["KeysTimeStamper"],
    ltv: ["LongTermResult", "TimestampInfo", "last_timestamp", "validate_long_term"],
    verify: ["PDF_CHECK_NAMES", "PdfCheck", "PdfVerification", "verify_pdf"],
}


@pytest.mark.parametrize(
    ("package", "names"), [(signing.qr, QR_NAMES), (signing.pades, PADES_NAMES)]
)
def test_every_name_of_the_old_module_is_the_owning_modules_object(
    package: object, names: dict[object, list[str]]
) -> None:
    for module, wanted in names.items():
        for name in wanted:
            assert getattr(package, name) is getattr(module, name), name
    assert sorted(package.__all__) == sorted(n for ns in names.values() for n in ns)  # type: ignore[attr-defined]


def test_pades_keeps_offering_the_errors_callers_catch_through_it() -> None:
    from signing.errors import PdfError, SigningError

    assert signing.pades.SigningError is SigningError
    assert signing.pades.PdfError is PdfError


def test_importing_signing_qr_loads_neither_pyhanko_nor_reportlab() -> None:
    code = (
        "import sys, signing.qr, signing.qr.draw; "
        "print(sorted(m for m in ('pyhanko', 'reportlab') if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
