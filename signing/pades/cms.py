"""The pyHanko ``Signer`` over a ``keys`` signer, and its cache: the key never leaves ``keys/``.

:class:`KeysCmsSigner`'s one hook, ``async_sign_raw``, calls our
``Signer.sign(data, der=True)``, so a key in an HSM signs the same way. For a
plain B-B signature it reuses the CMS skeleton of its first signature
(:class:`_CmsTemplate`); :func:`cms_signer` builds one adapter per signer
certificate and chain and keeps it (docs/design.md, "pyhanko speed").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from asn1crypto import algos as asn1_algos
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from keys.backend import Signer

from ..errors import SigningError
from .context import asn1_cert

__all__ = ["KeysCmsSigner", "cms_signer"]

_MECHANISMS = {
    "ES256": ("sha256_ecdsa", "sha256"),
    "RS256": ("sha256_rsa", "sha256"),
    "EdDSA": ("ed25519", "sha512"),
}
_SHA256 = hashes.SHA256()


class KeysCmsSigner(signers.Signer):
    """pyHanko ``Signer`` over a ``keys`` signer: the key never leaves ``keys/``."""

    def __init__(
        self, signer: Signer, certificate: x509.Certificate, chain: Sequence[x509.Certificate]
    ) -> None:
        mechanism = _MECHANISMS.get(signer.algorithm)
        if mechanism is None:
            raise SigningError(f"cannot sign a PDF with a {signer.algorithm} key")
        signing_cert = asn1_cert(certificate)
        registry = SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [signing_cert, *(asn1_cert(c) for c in chain)]
        )
        super().__init__(
            signing_cert=signing_cert,
            cert_registry=registry,
            signature_mechanism=asn1_algos.SignedDigestAlgorithm({"algorithm": mechanism[0]}),
            embed_roots=True,
        )
        self._keys_signer = signer
        self.md_algorithm = mechanism[1]
        self._templates: dict[str, _CmsTemplate] = {}

    async def async_sign(
        self,
        data_digest: bytes,
        digest_algorithm: str,
        dry_run: bool = False,
        use_pades: bool = False,
        timestamper: Any = None,
        signed_attr_settings: Any = None,
        is_pdf_sig: bool = True,
        encap_content_info: Any = None,
    ) -> cms.ContentInfo:
        """B-B fast path: after the first signature, reuse its CMS skeleton.

        Building the CMS with asn1crypto costs more than half of a B-B
        signature; for a given certificate everything but the document
        digest and the signature value is the same every time. The first
        signature (and every one with a timestamp, validation data or other
        extras) goes through pyHanko unchanged, and its output is the template.
        """
        plain = (
            not dry_run
            and use_pades
            and timestamper is None
            and is_pdf_sig
            and encap_content_info is None
            and (
                signed_attr_settings is None
                or (
                    signed_attr_settings.adobe_revinfo_attr is None
                    and signed_attr_settings.cades_signed_attrs is None
                )
            )
            and self.signed_attr_prov_spec is None
            and self.unsigned_attr_prov_spec is None
            and not self._attribute_certs
        )
        template = self._templates.get(digest_algorithm) if plain else None
        if template is not None:
            signed_attrs = template.signed_attrs(data_digest)
            signature = await self.async_sign_raw(signed_attrs, digest_algorithm)
            return template.content_info(signed_attrs, signature)
        result: cms.ContentInfo = await super().async_sign(
            data_digest,
            digest_algorithm,
            dry_run=dry_run,
            use_pades=use_pades,
            timestamper=timestamper,
            signed_attr_settings=signed_attr_settings,
            is_pdf_sig=is_pdf_sig,
            encap_content_info=encap_content_info,
        )
        if plain:
            self._templates[digest_algorithm] = _CmsTemplate(result, data_digest)
        return result

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if digest_algorithm != self.md_algorithm:
            raise SigningError(
                f"{self._keys_signer.algorithm} signs with {self.md_algorithm}, not {digest_algorithm}"
            )
        if dry_run:
            return bytes(256 if self._keys_signer.algorithm == "RS256" else 72)
        return self._keys_signer.sign(data, der=True)


class _CmsTemplate:
    """The CMS SignedData of one B-B signature, minus digest and signature.

    The signed attributes (content type, message digest, ESS
    signing-certificate-v2 — no signing time under PAdES) are pyHanko's own
    DER with the fixed-length message digest at a known offset; the rest is
    reused as parsed asn1crypto objects, which serialize without re-encoding.
    """

    def __init__(self, content_info: cms.ContentInfo, digest: bytes) -> None:
        signed_data = content_info["content"]
        signer_info = signed_data["signer_infos"][0]
        attrs_der = cms.CMSAttributes(list(signer_info["signed_attrs"])).dump()
        if attrs_der.count(digest) != 1:
            raise SigningError("cannot locate the message digest in the signed attributes")
        offset = attrs_der.index(digest)
        self._prefix: bytes = attrs_der[:offset]
        self._suffix: bytes = attrs_der[offset + len(digest) :]
        self._digest_len = len(digest)
        self._sid = signer_info["sid"]
        self._digest_algorithm = signer_info["digest_algorithm"]
        self._signature_algorithm = signer_info["signature_algorithm"]
        self._digest_algorithms = signed_data["digest_algorithms"]
        self._encap = signed_data["encap_content_info"]
        self._certificates = signed_data["certificates"]
        self._version = signed_data["version"]

    def signed_attrs(self, digest: bytes) -> bytes:
        if len(digest) != self._digest_len:
            raise SigningError("unexpected digest length")
        return self._prefix + digest + self._suffix

    def content_info(self, signed_attrs: bytes, signature: bytes) -> cms.ContentInfo:
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": self._sid,
                "digest_algorithm": self._digest_algorithm,
                "signed_attrs": cms.CMSAttributes.load(signed_attrs),
                "signature_algorithm": self._signature_algorithm,
                "signature": signature,
            }
        )
        signed_data = cms.SignedData(
            {
                "version": self._version,
                "digest_algorithms": self._digest_algorithms,
                "encap_content_info": self._encap,
                "certificates": self._certificates,
                "signer_infos": cms.SignerInfos([signer_info]),
            }
        )
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})


_cache_lock = threading.Lock()
_SIGNER_CACHE: dict[tuple[bytes, ...], KeysCmsSigner] = {}


def cms_signer(signer: Signer) -> KeysCmsSigner:
    """The cached pyHanko adapter for an agency signer (``certificate`` and ``chain`` attributes).

    Cached by certificate and chain, not by signer object: ``keys`` may hand
    out a fresh signer object for the same key each time, and the adapter's
    parsed certificates and CMS skeleton stay valid for any signer holding
    the certificate's key.
    """
    certificate = getattr(signer, "certificate", None)
    chain = list(getattr(signer, "chain", []))
    if not isinstance(certificate, x509.Certificate):
        raise SigningError("a PDF signer needs its certificate (keys.pki.AgencySigner)")
    key = (
        certificate.fingerprint(_SHA256),
        *(c.fingerprint(_SHA256) for c in chain),
        signer.algorithm.encode(),
    )
    adapter = _SIGNER_CACHE.get(key)
    if adapter is None:
        adapter = KeysCmsSigner(signer, certificate, chain)
        with _cache_lock:
            if len(_SIGNER_CACHE) > 256:
                _SIGNER_CACHE.clear()
            _SIGNER_CACHE[key] = adapter
    elif adapter._keys_signer is not signer:
        adapter._keys_signer = signer
    return adapter
