"""Offline verification of a QR payload against a trust list: the named checks.

``format`` (the text decodes, :mod:`signing.qr.codec`), ``signature`` (the key
id is in the :class:`~signing.qr.trust.TrustList` and the COSE signature
verifies), ``issuer_trusted``, ``type_allowed`` and ``validity``; each is a
:class:`Check` with a reason in the result. Certificate status is not here:
certstore adds it from the status list (issue 6).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import NamedTuple

from ..cose import verify_signature
from ..errors import PayloadError
from .claims import CHINA_TZ, QrClaims
from .codec import PREFIX, decode_qr_payload
from .trust import TrustedIssuer, TrustList

__all__ = ["CHECK_NAMES", "Check", "QrVerification", "verify_qr_payload"]

logger = logging.getLogger(__name__)

_OK = itemgetter(1)  # Check.ok, read at C speed

CHECK_NAMES = ("format", "signature", "issuer_trusted", "type_allowed", "validity")


class Check(NamedTuple):
    """One named verification step and its outcome (immutable)."""

    name: str
    ok: bool
    reason: str
    """In English; says why it failed (or what was confirmed)."""


@dataclass(frozen=True)
class QrVerification:
    """The outcome of :func:`verify_qr_payload`: valid only if every check passed."""

    valid: bool
    checks: list[Check]
    claims: QrClaims | None
    issuer: TrustedIssuer | None
    kid: bytes | None = None

    def check(self, name: str) -> Check | None:
        for c in self.checks:
            if c.name == name:
                return c
        return None

    def with_check(self, check: Check) -> QrVerification:
        """A copy with one more check (certstore adds ``status``)."""
        checks = [*self.checks, check]
        return replace(self, checks=checks, valid=all(c.ok for c in checks))


def _aware(now: _dt.datetime) -> _dt.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=_dt.UTC)


def _skipped(names: Iterable[str], why: str) -> list[Check]:
    return [Check(n, False, f"not checked: {why}") for n in names]


def _format_ok(algorithm: str) -> Check:
    return Check("format", True, f"a well-formed {PREFIX} payload ({algorithm})")


# Check tuples are immutable: the passing ones that say the same thing every time are
# built once (per algorithm, per trusted issuer) instead of for every scan.
_FORMAT_OK = {alg: _format_ok(alg) for alg in ("ES256", "EdDSA")}


class _Passed(NamedTuple):
    """The passing checks of one trusted issuer under one key id."""

    signature: Check
    issuer_trusted: Check
    type_allowed: dict[str, Check]
    first_day: _dt.date
    """The signer certificate's validity as UTC dates (what the issue date is compared with)."""
    last_day: _dt.date


# Keyed by everything an entry is made of, so it can never describe another issuer;
# certstore rebuilds its TrustedIssuer objects per verification, hence not their ids.
_PASSED: dict[tuple[bytes, str, str, str, frozenset[str], _dt.datetime, _dt.datetime], _Passed] = {}
_PASSED_MAX = 4096


def _passed(issuer: TrustedIssuer, kid: bytes) -> _Passed:
    key = (
        kid,
        issuer.uscc,
        issuer.name,
        issuer.region,
        issuer.allowed_types,
        issuer.not_before,
        issuer.not_after,
    )
    entry = _PASSED.get(key)
    if entry is not None:
        return entry
    entry = _Passed(
        Check("signature", True, f"signed by key {kid.hex()} of {issuer.uscc}"),
        Check(
            "issuer_trusted",
            True,
            f"{issuer.name} ({issuer.uscc}, region {issuer.region}) is in the trust list",
        ),
        {
            t: Check("type_allowed", True, f"{issuer.uscc} may issue type {t}")
            for t in issuer.allowed_types
        },
        issuer.not_before.date(),
        issuer.not_after.date(),
    )
    if len(_PASSED) >= _PASSED_MAX:
        _PASSED.clear()
    _PASSED[key] = entry
    return entry


def verify_qr_payload(
    text: str,
    trust: TrustList,
    *,
    now: _dt.datetime,
    skew: _dt.timedelta = _dt.timedelta(minutes=5),
) -> QrVerification:
    """Verify a QR text offline against ``trust``.

    Checks, in order (each named in the result, with a reason):

    ``format``
        The text is a well-formed ``YW1:`` payload.
    ``signature``
        The ``kid`` is in the trust list and the COSE signature verifies
        under that issuer's key.
    ``issuer_trusted``
        The signing issuer is the one the payload names, and its signer
        certificate was valid on the issue date.
    ``type_allowed``
        That issuer may issue this certificate type.
    ``validity``
        ``now`` lies between the start of ``valid_from`` and the end of
        ``valid_until`` (China Standard Time), allowing ``skew``.

    Certificate status (revoked, suspended) comes from the status list
    (issue 6); certstore adds it with :meth:`QrVerification.with_check`.
    """
    now = _aware(now)
    try:
        decoded = decode_qr_payload(text)
    except PayloadError as exc:
        checks = [
            Check("format", False, str(exc)),
            *_skipped(CHECK_NAMES[1:], "the payload could not be read"),
        ]
        return QrVerification(valid=False, checks=checks, claims=None, issuer=None)
    claims = decoded.claims
    kid = decoded.kid
    checks = [_FORMAT_OK.get(decoded.algorithm) or _format_ok(decoded.algorithm)]
    issuer = trust.get(kid)
    if issuer is None:
        checks.append(
            Check(
                "signature",
                False,
                f"key id {kid.hex()} is not in the trust list: unknown signer",
            )
        )
        checks += _skipped(("issuer_trusted", "type_allowed"), "the signer is unknown")
        checks.append(_validity(claims, now, skew))
        return QrVerification(valid=False, checks=checks, claims=claims, issuer=None, kid=kid)
    passed = _passed(issuer, kid)
    problem = verify_signature(decoded.message, issuer.public_key)
    checks.append(passed.signature if problem is None else Check("signature", False, problem))
    checks.append(_issuer_check(claims, issuer, passed))
    type_ok = passed.type_allowed.get(claims.type_code)
    if type_ok is not None:
        checks.append(type_ok)
    else:
        checks.append(
            Check(
                "type_allowed",
                False,
                f"{issuer.uscc} is not allowed to issue type {claims.type_code}",
            )
        )
    checks.append(_validity(claims, now, skew))
    valid = all(map(_OK, checks))
    if not valid:
        logger.info(
            "QR payload from kid %s failed: %s",
            kid.hex(),
            ", ".join(c.name for c in checks if not c.ok),
        )
    return QrVerification(valid, checks, claims, issuer, kid)


def _issuer_check(claims: QrClaims, issuer: TrustedIssuer, passed: _Passed) -> Check:
    if claims.issuer_uscc != issuer.uscc:
        return Check(
            "issuer_trusted",
            False,
            f"the payload names issuer {claims.issuer_uscc} but was signed by {issuer.uscc}'s key",
        )
    issued = claims.issued_at
    if not passed.first_day <= issued <= passed.last_day:
        return Check(
            "issuer_trusted",
            False,
            f"the signer certificate of {issuer.uscc} was not valid on the issue date {issued.isoformat()}",
        )
    return passed.issuer_trusted


def _validity(claims: QrClaims, now: _dt.datetime, skew: _dt.timedelta) -> Check:
    # Valid from the start of valid_from to the end of valid_until, China time,
    # with the skew allowed on both sides. China time has no daylight saving, so
    # converting once and moving by the skew there gives the same dates.
    china = now.astimezone(CHINA_TZ)
    if (china + skew).date() < claims.valid_from:
        return Check("validity", False, f"not valid before {claims.valid_from.isoformat()}")
    until = claims.valid_until
    if until is None:
        return Check("validity", True, f"valid from {claims.valid_from.isoformat()}, no end date")
    if (china - skew).date() > until:
        return Check("validity", False, f"expired at the end of {until.isoformat()}")
    return Check(
        "validity", True, f"valid from {claims.valid_from.isoformat()} to {until.isoformat()}"
    )
