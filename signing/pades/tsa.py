"""An RFC 3161 time-stamping authority over a ``keys`` signer: the answers, not the HTTP.

pyHanko's :class:`~pyhanko.sign.timestamps.dummy_client.DummyTimeStamper`
builds genuine RFC 3161 responses (TSTInfo with the request's imprint and
nonce, a random serial, ``genTime``; a CMS SignedData with content type,
signing time, ESS signing-certificate and message digest) from a certificate
and a private key object. We keep its construction and replace only the
signature, which goes through our :class:`keys.backend.Signer` (so the TSA key
can sit in an HSM like the agency keys) and may be ECDSA, which the dummy
does not do. :func:`answer` turns request bytes into response bytes; the
HTTP service around it is ``certstore tsa serve`` (:mod:`certstore.tsa`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.sign.general import as_signing_certificate, simple_cms_attribute
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from keys.backend import Signer

from ..errors import SigningError
from .context import asn1_cert

__all__ = ["KeysTimeStamper", "answer", "TSA_POLICY"]

logger = logging.getLogger(__name__)

TSA_POLICY = "1.3.6.1.4.1.4146.2.2"
"""The TSA policy OID in every TSTInfo (pyHanko's default; a production TSA states its own)."""

_SIGNATURE = {"ES256": ("sha256", "sha256_ecdsa"), "RS256": ("sha256", "sha256_rsa")}


class KeysTimeStamper(DummyTimeStamper):
    """pyHanko's RFC 3161 responder, signing through a ``keys`` signer (ES256 or RS256)."""

    def __init__(
        self, signer: Signer, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = ()
    ) -> None:
        if signer.algorithm not in _SIGNATURE:
            raise SigningError(f"a TSA key is ES256 or RS256, not {signer.algorithm}")
        self._keys_signer = signer
        super().__init__(
            tsa_cert=asn1_cert(certificate),
            tsa_key=None,  # type: ignore[arg-type]  # never used: _sign_tst_info is ours
            certs_to_embed=[asn1_cert(c) for c in chain],  # type: ignore[arg-type]
            override_md=_SIGNATURE[signer.algorithm][0],
        )

    def _sign_tst_info(
        self, tst_info_data: bytes, md_algorithm: str, dt: _dt.datetime
    ) -> tuple[bytes, cms.CMSAttributes]:
        signed_attrs = cms.CMSAttributes(
            [
                simple_cms_attribute("content_type", "tst_info"),
                simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(dt)})),
                simple_cms_attribute("signing_certificate", as_signing_certificate(self.tsa_cert)),
                simple_cms_attribute("message_digest", hashlib.new(md_algorithm, tst_info_data).digest()),
            ]
        )
        return self._keys_signer.sign(signed_attrs.dump(), der=True), signed_attrs

    def _build_signed_data(
        self, tst_info_data: bytes, md_algorithm: str, signature: bytes, signed_attrs: cms.CMSAttributes
    ) -> dict[str, Any]:
        data: dict[str, Any] = super()._build_signed_data(tst_info_data, md_algorithm, signature, signed_attrs)
        # The dummy names RSA PKCS#1 v1.5 whatever the key; name what our key did.
        info = data["signer_infos"][0]
        info["signature_algorithm"] = algos.SignedDigestAlgorithm(
            {"algorithm": _SIGNATURE[self._keys_signer.algorithm][1]}
        )
        return data

    @property
    def certificate(self) -> asn1_x509.Certificate:
        return self.tsa_cert


def answer(stamper: KeysTimeStamper, request: bytes) -> bytes:
    """The DER ``TimeStampResp`` for a DER ``TimeStampReq``; a malformed request gets ``rejection``.

    RFC 3161 §2.4.2: a request that cannot be parsed is answered with status
    ``rejection`` and ``badDataFormat``, never with an exception.
    """
    try:
        req = tsp.TimeStampReq.load(request)
        req.native  # noqa: B018 - parse the whole structure now, not lazily later
        if req["version"].native != "v1":
            raise ValueError("version")
        imprint = req["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in ("sha256", "sha384", "sha512"):
            return _reject("bad_alg")
        if len(imprint["hashed_message"].native) != {"sha256": 32, "sha384": 48, "sha512": 64}[algorithm]:
            raise ValueError("imprint length")
    except (ValueError, TypeError, KeyError):
        return _reject("bad_data_format")
    resp: tsp.TimeStampResp = stamper.request_tsa_response(req)
    return bytes(resp.dump())


class _Rejection(core.Sequence):
    """A ``TimeStampResp`` without its token (asn1crypto's own type requires one)."""

    _fields = [("status", tsp.PKIStatusInfo)]


def _reject(reason: str) -> bytes:
    status = tsp.PKIStatusInfo({"status": "rejection", "fail_info": tsp.PKIFailureInfo({reason})})
    return bytes(_Rejection({"status": status}).dump())
