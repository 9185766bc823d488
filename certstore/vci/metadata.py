"""What certstore tells wallets about itself as an OpenID4VCI 1.0 credential issuer.

* :func:`issuer_metadata`: ``/.well-known/openid-credential-issuer`` (§12.2):
  one credential configuration per certificate type, format ``dc+sd-jwt``,
  a ``vct`` per type, display names in zh-CN and en, claims metadata (the
  type's fields, the holder, the identifier and paper serial), the scope the
  idp grants for it, and the two authorization servers: the idp (the citizen
  signs in there: authorization code flow) and certstore itself (the token
  endpoint of the pre-authorized code flow).
* :func:`authorization_server_metadata`: certstore's own RFC 8414 document,
  naming only its token endpoint and the pre-authorized code grant.
* :func:`type_metadata`: the SD-JWT VC Type Metadata at the ``vct`` URL
  (draft-ietf-oauth-sd-jwt-vc §6).

No Flask here: the web layer serves what these functions return.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from keys.dpop import ALGORITHMS as DPOP_ALGORITHMS
from signing.sdjwt_issue import FORMAT

from ..types import CertificateType

__all__ = [
    "PRE_AUTHORIZED_GRANT",
    "PROOF_ALGORITHMS",
    "BATCH_SIZE",
    "config_id",
    "type_of_config",
    "scope_of",
    "vct_of",
    "issuer_metadata",
    "authorization_server_metadata",
    "type_metadata",
    "HOLDER_CLAIMS",
]

PRE_AUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
PROOF_ALGORITHMS = ("ES256", "EdDSA")
"""Key proofs are accepted with these algorithms only (never ``none``, never HMAC)."""
BATCH_SIZE = 10
"""Most credentials one request may ask for (§12.2.4 ``batch_credential_issuance``)."""
_SUFFIX = "_sd_jwt"
_CONFIG = re.compile(r"([0-9A-Z]{2,24})" + _SUFFIX)

HOLDER_CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("identifier", "证照标识", "Certificate identifier"),
    ("paper_serial", "纸质证照编号", "Paper serial number"),
    ("holder_name", "持证主体", "Holder"),
    ("holder_code", "持证主体代码", "Holder's ID number or credit code"),
    ("holder_code_type", "持证主体代码类型", "Kind of holder code"),
)
"""Claims every credential has besides its type's fields: (name, zh-CN label, en label)."""


def config_id(type_code: str) -> str:
    """``JZZM`` → ``JZZM_sd_jwt``: the credential configuration of a certificate type."""
    return type_code + _SUFFIX


def type_of_config(configuration_id: Any) -> str | None:
    """The type code of a configuration id, or ``None`` for anything else."""
    if not isinstance(configuration_id, str):
        return None
    m = _CONFIG.fullmatch(configuration_id)
    return m.group(1) if m else None


def scope_of(type_code: str) -> str:
    """The idp scope that lets a wallet receive this type: the citizen's own consent to read it."""
    return f"certs:read:{type_code}"


def vct_of(public_url: str, type_code: str) -> str:
    return f"{public_url}/vct/{type_code}"


def _display(zh: str, en: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": zh, "locale": "zh-CN", **extra}, {"name": en, "locale": "en", **extra}]


def _claims(spec: CertificateType) -> list[dict[str, Any]]:
    out = [{"path": [name], "display": _display(zh, en)} for name, zh, en in HOLDER_CLAIMS]
    for f in spec.ordered_fields():
        out.append({"path": [f.name], "mandatory": bool(f.required), "display": _display(f.label_zh, f.label_en)})
    return out


def _configuration(public_url: str, spec: CertificateType) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "scope": scope_of(spec.code),
        "vct": vct_of(public_url, spec.code),
        "cryptographic_binding_methods_supported": ["jwk"],
        "credential_signing_alg_values_supported": ["ES256"],
        "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": list(PROOF_ALGORITHMS)}},
        # OpenID4VCI 1.0 §12.2.4: display and claims live under credential_metadata.
        "credential_metadata": {
            "display": _display(spec.name_zh, spec.name_en, description=spec.description or spec.name_en),
            "claims": _claims(spec),
        },
    }


def issuer_metadata(public_url: str, idp_issuer: str, types: Iterable[CertificateType]) -> dict[str, Any]:
    """The Credential Issuer Metadata (OpenID4VCI 1.0 §12.2.4)."""
    return {
        "credential_issuer": public_url,
        "authorization_servers": [idp_issuer, public_url],
        "credential_endpoint": f"{public_url}/vci/credential",
        "nonce_endpoint": f"{public_url}/vci/nonce",
        "batch_credential_issuance": {"batch_size": BATCH_SIZE},
        "display": _display("电子证照库", "Yiwang e-certificates"),
        "credential_configurations_supported": {config_id(t.code): _configuration(public_url, t) for t in types},
    }


def authorization_server_metadata(public_url: str) -> dict[str, Any]:
    """certstore as the authorization server of the pre-authorized code flow only (RFC 8414 §2)."""
    return {
        "issuer": public_url,
        "token_endpoint": f"{public_url}/vci/token",
        "grant_types_supported": [PRE_AUTHORIZED_GRANT],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        # OpenID4VCI 1.0 §12.3: a wallet needs no client id to redeem a pre-authorized code.
        "pre-authorized_grant_anonymous_access_supported": True,
        # RFC 9449 §5.1: a wallet may bind the token to a DPoP key (the credential endpoint then wants proofs)
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
    }


def type_metadata(public_url: str, spec: CertificateType) -> dict[str, Any]:
    """SD-JWT VC Type Metadata (draft-ietf-oauth-sd-jwt-vc §6) at the ``vct`` URL."""
    return {
        "vct": vct_of(public_url, spec.code),
        "name": spec.name_en,
        "description": spec.description or spec.name_en,
        "display": [
            {"locale": "zh-CN", "name": spec.name_zh},
            {"locale": "en", "name": spec.name_en},
        ],
        "claims": [
            {"path": c["path"], "display": [{"locale": d["locale"], "label": d["name"]} for d in c["display"]],
             "sd": "always"}
            for c in _claims(spec)
        ],
    }
