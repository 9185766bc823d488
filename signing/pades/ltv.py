"""Long-term validation of a certificate PDF (PAdES B-LTA), and reading its timestamp chain.

:func:`validate_long_term` runs pyHanko's ETSI EN 319 102-1 §5.6.3 algorithm
(``ades_lta_validation``: the document timestamps as the evidence record, the
DSS as the validation data, the past-validation time slide) at any time: a
verifier in twenty years, long after the agency's signer certificate and the
first TSA certificate expired, gets ``PASSED`` as long as the *last* document
timestamp's TSA certificate is still valid then and the chain of timestamps
is unbroken. :func:`last_timestamp` says which TSA certificate that is and
when it expires — what the renewal job (``certstore ltv``) watches.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import crl as asn1_crl
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer

from ..errors import PdfError
from .context import asn1_cert

__all__ = ["LongTermResult", "TimestampInfo", "last_timestamp", "validate_long_term"]

_KEY_USAGE = KeyUsageConstraints(
    key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
)
# Revocation data for the end-entity certificates (agency signer, TSA) is required; a CA
# certificate is checked when it names where its status is published (ours have the ARL).
_REVOCATION = RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
    intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED,
)


@dataclass(frozen=True)
class TimestampInfo:
    """The last timestamp of a PDF: a document timestamp (B-LTA) or the signature's (B-T/B-LT)."""

    kind: str
    """``document`` or ``signature``."""
    time: _dt.datetime
    tsa_certificate: x509.Certificate
    document_timestamps: int
    """How many document timestamps the PDF carries (0 below B-LTA)."""

    @property
    def tsa_not_after(self) -> _dt.datetime:
        return self.tsa_certificate.not_valid_after_utc


@dataclass(frozen=True)
class LongTermResult:
    """The outcome of :func:`validate_long_term`."""

    valid: bool
    indication: str
    """ETSI indication and sub-indication, e.g. ``PASSED`` or ``INDETERMINATE/NO_POE``."""
    summary: str
    """pyHanko's one-line status summary (for logs and reports, never shown to citizens as is)."""
    validation_time: _dt.datetime
    signature_time: _dt.datetime | None
    """The best proven time of the signature (its timestamp's time when that validated)."""
    oldest_archive_timestamp: _dt.datetime | None
    """The oldest document timestamp that validated: the evidence of existence the chain starts at."""


def _reader(pdf: bytes) -> PdfFileReader:
    try:
        return PdfFileReader(io.BytesIO(pdf), strict=False)
    except Exception as exc:
        raise PdfError(f"not a readable PDF: {exc}") from exc


def validate_long_term(
    pdf: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    crls: Sequence[bytes] = (),
    at: _dt.datetime | None = None,
) -> LongTermResult:
    """Validate the (first) signature of ``pdf`` as PAdES B-LTA at ``at`` (default now), offline.

    ``crls`` is the revocation data the verifier holds *now* (for the last
    document timestamp's TSA certificate, which is validated at ``at``);
    everything older comes from the PDF's DSS, with the document timestamps
    as proof of existence. A B-B or B-T file fails once its certificates'
    revocation data is stale or they have expired; that is the point.

    Known limit (pyHanko 0.38, whose AdES API is marked incubating): once the
    TSA certificate of an *earlier* document timestamp has expired, its past
    validation finds no revocation data for it (the leaf-revocation lookup of
    ``_ades_past_signature_validation`` matches no CRL when the TSA is issued
    by an intermediate CA), so such a renewed chain reports
    ``INDETERMINATE/OUT_OF_BOUNDS_NO_POE`` although the newer timestamp covers
    it; tests/certstore/test_ltv.py checks the newer timestamp on its own.
    """
    reader = _reader(pdf)
    signatures = reader.embedded_regular_signatures
    if not signatures:
        raise PdfError("the PDF carries no signature")
    when = at or _dt.datetime.now(_dt.UTC)
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[asn1_cert(c) for c in trust_roots]),
        revinfo_policy=CertRevTrustPolicy(_REVOCATION),
    )
    knowledge = LocalKnowledge(
        known_crls=[CRLContainer(asn1_crl.CertificateList.load(c)) for c in crls]
    )
    spec = PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=policy,
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
            local_knowledge=knowledge,
            key_usage_settings=_KEY_USAGE,
        )
    )
    timing = ValidationTimingInfo(
        validation_time=when, best_signature_time=when, point_in_time_validation=False
    )
    result = asyncio.run(ades_lta_validation(signatures[0], spec, timing_info=timing))
    status = result.ades_subindic
    indication = (
        "PASSED"
        if isinstance(status, AdESPassed)
        else f"{type(status).__name__.removeprefix('AdES').upper()}/{status.name}"
    )
    api = result.api_status
    proven = result.best_signature_time if result.best_signature_time < when else None
    return LongTermResult(
        valid=isinstance(status, AdESPassed),
        indication=indication,
        summary=api.summary() if api is not None else indication,
        validation_time=when,
        signature_time=proven,
        oldest_archive_timestamp=result.oldest_evidence_record_timestamp,
    )


def last_timestamp(pdf: bytes) -> TimestampInfo | None:
    """The PDF's last timestamp and its TSA certificate, or ``None`` for a B-B file.

    Reads the structure only (no validation): cheap enough to run over every
    stored certificate when listing what is due for renewal.
    """
    reader = _reader(pdf)
    doc_ts = reader.embedded_timestamp_signatures
    if doc_ts:
        last = doc_ts[-1]
        return TimestampInfo(
            "document", _tst_time(last.signed_data), _cert(last.signer_cert), len(doc_ts)
        )
    sigs = reader.embedded_regular_signatures
    token = _signature_timestamp(sigs[0].signer_info) if sigs else None
    if token is None:
        return None
    signer_infos = token["signer_infos"]
    sid = signer_infos[0]["sid"]
    for c in token["certificates"]:
        cert = c.chosen
        if sid.name == "issuer_and_serial_number":
            found = cert.issuer == sid.chosen["issuer"] and cert.serial_number == sid.chosen["serial_number"].native
        else:  # subject_key_identifier
            found = cert.key_identifier == sid.chosen.native
        if found:
            return TimestampInfo("signature", _tst_time(token), _cert(cert), 0)
    raise PdfError("the signature timestamp does not carry its TSA certificate")


def _signature_timestamp(signer_info):  # type: ignore[no-untyped-def]
    """The SignedData of the RFC 3161 token in the signature's unsigned attributes, if any."""
    attrs = signer_info["unsigned_attrs"]
    for attr in attrs if attrs.native is not None else ():
        if attr["type"].native == "signature_time_stamp_token":
            return attr["values"][0]["content"]
    return None


def _tst_time(signed_data) -> _dt.datetime:  # type: ignore[no-untyped-def]
    gen_time: _dt.datetime = signed_data["encap_content_info"]["content"].parsed["gen_time"].native
    return gen_time


def _cert(cert) -> x509.Certificate:  # type: ignore[no-untyped-def]
    return x509.load_der_x509_certificate(cert.dump())
