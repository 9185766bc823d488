"""A credential's ``status`` claim and its check against the IETF Token Status List (issue 15 §1).

draft-ietf-oauth-status-list §6: a Referenced Token (here an SD-JWT VC) names
its entry as ``"status": {"status_list": {"idx": <int>, "uri": "<list URI>"}}``;
the Status List Token at ``uri`` (a JWT, ``typ: statuslist+jwt``, §5.1) holds
``status_list {bits, lst}``, ``lst`` the ZLIB-compressed packed entries.

The list is the one the QR payload already points into
(:mod:`signing.statuslist` packs, signs and verifies it; certstore serves it at
``<public url>/status-lists/<id>``): a certificate has ONE private random
position, and its QR code and every credential issued for it carry that same
position. So revoking or suspending the certificate changes the credential's
status through the very bits a QR verifier reads, and nothing else is
published: no second list, no per-credential entry a verifier could tell from
the certificate's.

This module is the piece both sides of OpenID4VCI / OpenID4VP share: the
issuer builds the claim with :func:`status_claim`, a verifier reads it with
:func:`parse_status_claim` and checks it with :func:`credential_status`
(signature, ``sub`` = ``uri``, expiry and age by
:func:`signing.statuslist.verify_status_list_token`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .statuslist import INVALID, SUSPENDED, VALID, StatusListError, verify_status_list_token

__all__ = [
    "MEDIA_TYPE",
    "StatusReference",
    "status_claim",
    "parse_status_claim",
    "credential_status",
    "status_name",
]

MEDIA_TYPE = "application/statuslist+jwt"
"""What the list is served as (draft §8.1); a client may send it in ``Accept``."""
_NAMES = {VALID: "valid", INVALID: "invalid", SUSPENDED: "suspended"}
_MAX_URI = 2048


@dataclass(frozen=True)
class StatusReference:
    """Where a credential's status lives: the list's URI and the entry's index."""

    uri: str
    idx: int


def status_claim(uri: str, idx: int) -> dict[str, Any]:
    """The Referenced Token's ``status`` claim (draft §6.1)."""
    ref = _checked(uri, idx)
    return {"status_list": {"idx": ref.idx, "uri": ref.uri}}


def _checked(uri: Any, idx: Any) -> StatusReference:
    if type(idx) is not int or idx < 0:
        raise StatusListError("status_list.idx must be a non-negative integer", reason="format")
    if not isinstance(uri, str) or not uri or len(uri) > _MAX_URI:
        raise StatusListError("status_list.uri must be a URI", reason="format")
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise StatusListError("status_list.uri must be an http(s) URI without a fragment", reason="format")
    return StatusReference(uri=uri, idx=idx)


def parse_status_claim(status: Any) -> StatusReference:
    """The reference in a credential's ``status`` claim, or :class:`StatusListError` (``format``)."""
    if not isinstance(status, Mapping) or not isinstance(status.get("status_list"), Mapping):
        raise StatusListError("the credential has no status.status_list", reason="format")
    entry = status["status_list"]
    return _checked(entry.get("uri"), entry.get("idx"))


def credential_status(
    token: str,
    reference: StatusReference,
    keys: Sequence[PublicKeyTypes],
    *,
    now: dt.datetime,
    max_age: dt.timedelta,
) -> int:
    """The status value (``VALID``, ``INVALID``, ``SUSPENDED`` …) of ``reference`` in ``token``.

    ``token`` is the Status List Token fetched from ``reference.uri``; ``keys``
    are the issuer's keys (from the trust list). Raises
    :class:`StatusListError` when the token cannot be trusted (signature,
    ``sub`` other than the referenced URI, expired, older than ``max_age``) or
    the index is outside the list: the status is then unknown, never "valid".
    """
    verified = verify_status_list_token(token, keys, uri=reference.uri, now=now, max_age=max_age)
    return verified.status(reference.idx)


def status_name(value: int) -> str:
    """``valid``, ``invalid``, ``suspended`` (draft §7.1), or ``status 0xNN`` for the application range."""
    return _NAMES.get(value, f"status 0x{value:02x}")
