"""Signing a certificate PDF as PAdES (ETSI EN 319 142-1 baseline B-B, B-T, B-LT, B-LTA).

The signature is made by :func:`signing.pades.cms.cms_signer` (the key stays
in ``keys/``); ``bytes_reserved`` is always passed, which skips pyHanko's
dry-run signature. A signed PDF is never post-processed, only extended by
incremental updates (the DSS, document timestamps: :func:`add_archive_timestamp`).
"""

from __future__ import annotations

import io
import logging

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError as PyHankoPdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps import TimestampRequestError
from pyhanko_certvalidator import ValidationContext

from keys.backend import Signer

from ..errors import PdfError, SigningError
from .cms import cms_signer

__all__ = ["PADES_LEVELS", "sign_pdf", "add_archive_timestamp", "timestamper_for"]

logger = logging.getLogger(__name__)

class _OfflineOnPurpose(logging.Filter):
    """pyHanko warns on every B-LT/B-LTA signature that it embeds validation data without
    fetching any; ours comes from the region's own CRLs on purpose (make_validation_context),
    so the warning would be noise in every issuance's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_OfflineOnPurpose())

PADES_LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
"""The baseline levels :func:`sign_pdf` makes; each adds to the one before."""

# Room for the CMS blob: a 3-certificate EC chain and signed attributes take
# ~3 KB; an RFC 3161 token with its TSA chain another ~2-5 KB.
_BYTES_RESERVED = 8192
_BYTES_RESERVED_TSA = 24576
_TIMESTAMPERS: dict[str, timestamps.HTTPTimeStamper] = {}


def timestamper_for(url: str) -> timestamps.HTTPTimeStamper:
    """The (cached) RFC 3161 client for the TSA at ``url``."""
    ts = _TIMESTAMPERS.get(url)
    if ts is None:
        ts = _TIMESTAMPERS[url] = timestamps.HTTPTimeStamper(url, timeout=10)
    return ts


def _level(level: str | None, timestamper: object, vc: ValidationContext | None) -> str:
    if level is None:  # the historical behaviour: what the arguments allow
        return "B-B" if timestamper is None else "B-T" if vc is None else "B-LT"
    if level not in PADES_LEVELS:
        raise SigningError(f"unknown PAdES level {level!r}; use one of {', '.join(PADES_LEVELS)}")
    if level != "B-B" and timestamper is None:
        raise SigningError(f"PAdES {level} needs a timestamp authority")
    if level in ("B-LT", "B-LTA") and vc is None:
        raise SigningError(f"PAdES {level} needs a validation context (the chain's CRLs)")
    return level


def sign_pdf(
    pdf: bytes,
    signer: Signer,
    *,
    field_name: str = "Signature1",
    reason: str = "Issued electronic certificate 签发电子证照",
    location: str | None = None,
    timestamper_url: str | None = None,
    validation_context: ValidationContext | None = None,
    level: str | None = None,
    timestamper: timestamps.TimeStamper | None = None,
) -> bytes:
    """Sign ``pdf`` as PAdES with the agency ``signer`` (``keys.pki.AgencySigner``).

    ``level`` is one of :data:`PADES_LEVELS`; without it the arguments decide,
    as before: B-B; B-T with ``timestamper_url`` (an RFC 3161 TSA); B-LT when a
    ``validation_context`` (:func:`make_validation_context`, with the CRLs) is
    given too. B-LTA is B-LT plus a document timestamp over the whole file,
    validation data included, which :func:`add_archive_timestamp` renews.
    ``timestamper`` (any pyHanko ``TimeStamper``) replaces ``timestamper_url``.
    """
    if timestamper is None and timestamper_url:
        timestamper = timestamper_for(timestamper_url)
    level = _level(level, timestamper, validation_context)
    if level == "B-B":
        timestamper = None
    adapter = cms_signer(signer)
    lt = level in ("B-LT", "B-LTA")
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=adapter.md_algorithm,
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
        embed_validation_info=lt,
        validation_context=validation_context if lt else None,
        use_pades_lta=level == "B-LTA",
        signer_key_usage={"digital_signature", "non_repudiation"},
    )
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
    logger.info("signed PDF (%s) for %s", level, getattr(signer, "uscc", signer.kid))
    return out.getvalue()


def add_archive_timestamp(
    pdf: bytes,
    *,
    validation_context: ValidationContext,
    timestamper_url: str | None = None,
    timestamper: timestamps.TimeStamper | None = None,
) -> bytes:
    """Renew a B-LTA PDF: validation data for its last timestamp, then a new document timestamp.

    pyHanko's ``update_archival_timestamp_chain``: the last timestamp in the
    file (document or signature timestamp) is validated with
    ``validation_context`` — its TSA certificate must still be valid — its
    chain and revocation data go into the DSS, and a new document timestamp
    covers everything. Incremental: every earlier signature stays intact.
    """
    if timestamper is None:
        if not timestamper_url:
            raise SigningError("an archive timestamp needs a timestamp authority")
        timestamper = timestamper_for(timestamper_url)
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    except Exception as exc:
        raise PdfError(f"not a readable PDF: {exc}") from exc
    out = io.BytesIO()
    try:
        signers.PdfTimeStamper(timestamper).update_archival_timestamp_chain(
            reader, validation_context, in_place=False, output=out
        )
    except TimestampRequestError as exc:
        raise SigningError(f"the timestamp authority did not answer properly: {exc}") from exc
    except (PyHankoSigningError, OSError) as exc:
        raise SigningError(f"the archive timestamp failed: {exc}") from exc
    except PyHankoPdfError as exc:
        raise PdfError(f"the PDF cannot be timestamped: {exc}") from exc
    except Exception as exc:  # the last timestamp did not validate (pyhanko_certvalidator errors)
        raise SigningError(f"the last timestamp does not validate: {type(exc).__name__}: {exc}") from exc
    return out.getvalue()
