"""Signing a certificate PDF as PAdES (ETSI EN 319 142-1 baseline B-B, B-T, B-LT).

The signature is made by :func:`signing.pades.cms.cms_signer` (the key stays
in ``keys/``); ``bytes_reserved`` is always passed, which skips pyHanko's
dry-run signature. A signed PDF is never post-processed.
"""

from __future__ import annotations

import io
import logging

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError as PyHankoPdfError
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps import TimestampRequestError
from pyhanko_certvalidator import ValidationContext

from keys.backend import Signer

from ..errors import PdfError, SigningError
from .cms import cms_signer

__all__ = ["sign_pdf"]

logger = logging.getLogger(__name__)

# Room for the CMS blob: a 3-certificate EC chain and signed attributes take
# ~3 KB; an RFC 3161 token with its TSA chain another ~2-5 KB.
_BYTES_RESERVED = 8192
_BYTES_RESERVED_TSA = 24576
_TIMESTAMPERS: dict[str, timestamps.HTTPTimeStamper] = {}


def _timestamper(url: str) -> timestamps.HTTPTimeStamper:
    ts = _TIMESTAMPERS.get(url)
    if ts is None:
        ts = _TIMESTAMPERS[url] = timestamps.HTTPTimeStamper(url, timeout=10)
    return ts


def sign_pdf(
    pdf: bytes,
    signer: Signer,
    *,
    field_name: str = "Signature1",
    reason: str = "Issued electronic certificate 签发电子证照",
    location: str | None = None,
    timestamper_url: str | None = None,
    validation_context: ValidationContext | None = None,
) -> bytes:
    """Sign ``pdf`` as PAdES with the agency ``signer`` (``keys.pki.AgencySigner``).

    B-B by default; B-T with ``timestamper_url`` (an RFC 3161 TSA); B-LT when
    a ``validation_context`` (see :func:`make_validation_context`, with the
    CRLs) is given too.
    """
    adapter = cms_signer(signer)
    lt = validation_context is not None and timestamper_url is not None
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=adapter.md_algorithm,
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
        embed_validation_info=lt,
        validation_context=validation_context if lt else None,
        signer_key_usage={"digital_signature", "non_repudiation"},
    )
    timestamper = _timestamper(timestamper_url) if timestamper_url else None
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except Exception as exc:
        raise PdfError(f"not a readable PDF: {exc}") from exc
    pdf_signer = signers.PdfSigner(meta, signer=adapter, timestamper=timestamper)
    out = io.BytesIO()
    try:
        pdf_signer.sign_pdf(
            writer,
            bytes_reserved=_BYTES_RESERVED_TSA if timestamper else _BYTES_RESERVED,
            output=out,
        )
    except TimestampRequestError as exc:
        raise SigningError(f"the timestamp authority did not answer properly: {exc}") from exc
    except (PyHankoSigningError, OSError) as exc:
        raise SigningError(f"PDF signing failed: {exc}") from exc
    except PyHankoPdfError as exc:
        raise PdfError(f"the PDF cannot be signed: {exc}") from exc
    level = "B-LT" if lt else "B-T" if timestamper else "B-B"
    logger.info("signed PDF (%s) for %s", level, getattr(signer, "uscc", signer.kid))
    return out.getvalue()
