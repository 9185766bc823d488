"""PAdES signatures on certificate PDFs through pyHanko: sign and verify.

Signing (ETSI EN 319 142-1 baseline levels):

* **B-B** — a CMS signature (``/SubFilter /ETSI.CAdES.detached``) by the
  agency's signer certificate, the chain embedded;
* **B-T** — plus an RFC 3161 signature timestamp from a TSA;
* **B-LT** — plus the validation data (chain, CRLs) in the document security
  store, so the PDF verifies offline for years;
* **B-LTA** — plus a document timestamp over all of it, renewed before its TSA
  certificate expires (:func:`add_archive_timestamp`), so the PDF verifies for
  decades, long after the agency's signer certificate expired.

One package, one module per concern:

* :mod:`signing.pades.cms` — :class:`KeysCmsSigner`, the pyHanko ``Signer``
  over a ``keys`` signer (the private key stays in ``keys/``), its B-B CMS
  template and the per-certificate adapter cache (:func:`cms_signer`);
* :mod:`signing.pades.sign` — :func:`sign_pdf` at B-B, B-T, B-LT or B-LTA, and
  :func:`add_archive_timestamp` (the renewal);
* :mod:`signing.pades.tsa` — :class:`KeysTimeStamper`, an RFC 3161 responder
  over a ``keys`` signer (the local TSA's answers);
* :mod:`signing.pades.ltv` — :func:`validate_long_term` (pyHanko's ETSI
  B-LTA validation at any time) and :func:`last_timestamp`;
* :mod:`signing.pades.context` — the offline validation context (trust
  roots, CRLs) that B-LT signing and verification share;
* :mod:`signing.pades.bounds` — size and structure bounds checked on the raw
  bytes before anything is parsed;
* :mod:`signing.pades.verify` — :func:`verify_pdf`: pyHanko's validator with
  its difference analysis, as named checks.

Every name callers used from the single module ``signing.pades`` is
importable from here (``signing.pades.sign_pdf`` is looked up on this package
at call time, so tests may replace it here).
"""

from __future__ import annotations

from ..errors import PdfError as PdfError
from ..errors import SigningError as SigningError
from .bounds import PdfLimits, PdfTooComplex, check_pdf_bounds
from .cms import KeysCmsSigner, cms_signer
from .context import make_validation_context
from .ltv import LongTermResult, TimestampInfo, last_timestamp, validate_long_term
from .sign import PADES_LEVELS, add_archive_timestamp, sign_pdf
from .tsa import KeysTimeStamper
from .verify import PDF_CHECK_NAMES, PdfCheck, PdfVerification, verify_pdf

__all__ = [
    "PdfLimits",
    "PdfTooComplex",
    "check_pdf_bounds",
    "KeysCmsSigner",
    "PdfCheck",
    "PdfVerification",
    "PDF_CHECK_NAMES",
    "cms_signer",
    "make_validation_context",
    "sign_pdf",
    "PADES_LEVELS",
    "add_archive_timestamp",
    "KeysTimeStamper",
    "LongTermResult",
    "TimestampInfo",
    "last_timestamp",
    "validate_long_term",
    "verify_pdf",
]
