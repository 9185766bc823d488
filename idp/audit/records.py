"""What one audit record is: its checked fields, its canonical form and its MAC.

Owns the rules every record obeys before it reaches the chain (kind of the
form ``area.event``, no detail key that names a secret, no value that looks
like a full resident ID number, bounded text fields), the canonical JSON the
MAC is computed over, and the two digests a record can carry: HMAC-SHA256
under an ``idp-audit`` key (:func:`record_mac`), or the plain SHA-256 of
records written before the chain was keyed (:func:`record_hash`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keys.mac import MacKey

from ..models import AuditEvent, utcnow

__all__ = [
    "GENESIS_HASH",
    "HASHED",
    "KINDS",
    "MAC_PURPOSE",
    "Pending",
    "checked",
    "mac_input",
    "record_hash",
    "record_mac",
    "same_digest",
]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record."""

MAC_PURPOSE = "idp-audit"
"""The MAC key set that keys the chain (:meth:`keys.keyring.Keyring.mac_keyset`)."""

KINDS = frozenset(
    {
        "login.success",
        "login.failure",
        "login.locked",
        "login.totp_failure",
        "login.totp_success",
        "consent.granted",
        "consent.revoked",
        "token.issued",
        "token.refreshed",
        "token.revoked",
        "token.reuse_detected",
        "code.replayed",
        "session.ended",
        "logout.delivery_failed",
        "account.created",
        "account.imported",
        "account.password_set",
        "account.totp_enrolled",
        "account.totp_removed",
        "account.disabled",
        "admin.client_added",
        "admin.client_secret_rotated",
        "admin.client_deleted",
        "admin.sessions_ended",
        "admin.key_rotated",
    }
)
"""The kinds in use. Others are accepted if they look like ``area.event``."""

_KIND = re.compile(r"^[a-z_]+\.[a-z_.]+$")
_FORBIDDEN_KEYS = re.compile(
    r"(secret|password|passwd|token|code|otp|pin|cookie|id_number)$", re.IGNORECASE
)
_ALLOWED_KEYS = frozenset({"token_kind", "error_code", "status_code", "reason_code"})
_FULL_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")

HASHED = ("seq", "at", "kind", "actor", "subject", "client_id", "ip", "detail", "prev_hash")
"""The fields a record's MAC (or legacy hash) covers, besides ``key_id``."""


@dataclass(frozen=True)
class Pending:
    """A checked record waiting for its place in the chain."""

    at: dt.datetime
    kind: str
    actor: str | None
    subject: str | None
    client_id: str | None
    ip: str | None
    detail: dict[str, Any]


def checked(
    kind: str,
    *,
    actor: str | None,
    subject: str | None,
    client_id: str | None,
    ip: str | None,
    detail: Mapping[str, Any] | None,
) -> Pending:
    """The record to append, stamped now; :class:`ValueError` if any field breaks the rules."""
    if not _KIND.match(kind):
        raise ValueError(f"audit kind {kind!r} is not of the form area.event")
    clean = dict(detail or {})
    _check_clean(clean, "detail")
    for name, value, limit in (
        ("actor", actor, 200),
        ("subject", subject, 200),
        ("client_id", client_id, 64),
        ("ip", ip, 64),
    ):
        _check_clean(value, name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise ValueError(f"audit field {name} must be text of at most {limit} characters")
    return Pending(utcnow(), kind, actor, subject, client_id, ip, clean)


def _check_clean(value: Any, path: str) -> None:
    """Refuse detail that could carry a secret or an unmasked ID number."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"audit detail keys must be text ({path})")
            if _FORBIDDEN_KEYS.search(k) and k not in _ALLOWED_KEYS:
                raise ValueError(f"audit detail may not carry {k!r}")
            _check_clean(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_clean(v, f"{path}[{i}]")
    elif isinstance(value, str):
        if _FULL_ID_NUMBER.search(value):
            raise ValueError(f"audit field {path} looks like an unmasked ID number")
    elif isinstance(value, float):
        raise ValueError(f"audit detail {path}: use whole numbers or text, not floats")
    elif value is not None and not isinstance(value, bool | int):
        raise ValueError(f"audit detail {path} is not JSON text, number, list or object")


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _at_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _body(fields: Mapping[str, Any]) -> dict[str, Any]:
    body = {name: fields[name] for name in HASHED}
    body["at"] = _at_text(body["at"])
    return body


def _digest(fields: Mapping[str, Any]) -> str:
    """The unkeyed SHA-256 of records written before the chain was keyed."""
    return hashlib.sha256(_canonical(_body(fields))).hexdigest()


def mac_input(fields: Mapping[str, Any], key_id: str) -> bytes:
    """The bytes a record's MAC is computed over: its :data:`HASHED` fields and ``key_id``."""
    body = _body(fields)
    body["key_id"] = key_id
    return _canonical(body)


def record_hash(event: AuditEvent) -> str:
    """SHA-256 hex over the canonical JSON of an unkeyed (pre-keying) ``event``."""
    return _digest({name: getattr(event, name) for name in HASHED})


def record_mac(event: AuditEvent, key: MacKey) -> str:
    """HMAC-SHA256 hex of ``event`` under ``key`` (what its ``hash`` must be)."""
    return key.digest(mac_input({name: getattr(event, name) for name in HASHED}, key.kid))


def same_digest(a: str | None, b: str) -> bool:
    """Constant-time comparison of two hex digests; ``a`` may be missing."""
    return a is not None and hmac.compare_digest(a.encode(), b.encode())
