"""A citizen's own TOTP enrolment and recovery codes (issue 18 §4).

Self-enrolment has two steps: :func:`begin` makes a secret and hands the page
a sealed token (the secret AEAD-encrypted together with the citizen's id), so
nothing is stored until :func:`finish` has seen a code from the app. Then the
secret replaces any earlier one and ten new recovery codes replace the old:
they are returned once for the page and kept only as a keyed HMAC (the PII
protector's blind index), each usable once (:func:`use_recovery_code`).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from typing import TYPE_CHECKING

import pyotp
import sqlalchemy as sa

from keys.errors import KeysError

from .db import rowcount
from .models import Citizen, RecoveryCode, utcnow

if TYPE_CHECKING:
    from .accounts import AccountService, TotpEnrolment

__all__ = ["begin", "finish", "use_recovery_code", "recovery_codes_left", "matched_step", "RECOVERY_CODES"]

RECOVERY_CODES = 10
_PENDING_PURPOSE = "totp-pending"
_CODE_PURPOSE = "recovery_code"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


def matched_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The RFC 6238 time step ``code`` is right for (the one before, now, the next), or ``None``.

    Constant-time compares. Whoever stores the secret claims the step
    atomically (``> last accepted step``), so a code is accepted once
    (RFC 6238 §5.2): citizens (:class:`~idp.accounts.AccountService`) and
    staff (:mod:`idp.staff.accounts`) alike.
    """
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step_now = int(time.time() if at is None else at) // totp.interval
    matched: int | None = None
    for step in (step_now - 1, step_now, step_now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step
    return matched


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def _normalise(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


def begin(accounts: AccountService, citizen: Citizen) -> tuple[TotpEnrolment, str]:
    """A new secret for the page (QR code) and the sealed token its form carries back."""
    from .accounts import TotpEnrolment

    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=citizen.id_number_masked, issuer_name=accounts.totp_issuer)
    sealed = accounts.pii.encrypt(f"{citizen.id}:{secret}", purpose=_PENDING_PURPOSE)
    return TotpEnrolment(secret=secret, uri=uri), base64.urlsafe_b64encode(sealed).decode()


def pending_enrolment(accounts: AccountService, citizen: Citizen, token: str) -> TotpEnrolment | None:
    """The enrolment a token carries, if it is this citizen's and untampered."""
    from .accounts import TotpEnrolment

    try:
        owner, _, secret = accounts.pii.decrypt(
            base64.urlsafe_b64decode(token.encode()), purpose=_PENDING_PURPOSE
        ).partition(":")
    except (KeysError, ValueError):
        return None
    if owner != str(citizen.id) or not secret:
        return None
    uri = pyotp.TOTP(secret).provisioning_uri(name=citizen.id_number_masked, issuer_name=accounts.totp_issuer)
    return TotpEnrolment(secret=secret, uri=uri)


def finish(accounts: AccountService, citizen: Citizen, token: str, code: str) -> list[str] | None:
    """Switch TOTP on once ``code`` matches the pending secret; the new recovery codes, or ``None``."""
    enrolment = pending_enrolment(accounts, citizen, token)
    code = (code or "").strip().replace(" ", "")
    if enrolment is None or not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(enrolment.secret)
    if not totp.verify(code, valid_window=1):
        return None
    codes = [_new_code() for _ in range(RECOVERY_CODES)]
    with accounts.db.session() as s:
        row = s.get(Citizen, citizen.id)
        if row is None:
            return None
        row.totp_secret_enc = accounts.pii.encrypt(enrolment.secret, purpose="totp")
        row.totp_last_step = None
        s.execute(sa.delete(RecoveryCode).where(RecoveryCode.citizen_id == citizen.id))
        s.add_all(
            RecoveryCode(citizen_id=citizen.id, code_hash=accounts.pii.blind_index(c, purpose=_CODE_PURPOSE))
            for c in (_normalise(c) for c in codes)
        )
        accounts._audit(s, "account.totp_enrolled", actor="citizen", subject=row.id_number_masked,
                        detail={"recovery_codes": RECOVERY_CODES})
    return codes


def use_recovery_code(accounts: AccountService, citizen_id: int, code: str) -> bool:
    """True once per code (an atomic claim of an unused one)."""
    normal = _normalise(code)
    if len(normal) != 10:
        return False
    claim = (
        sa.update(RecoveryCode)
        .where(
            RecoveryCode.citizen_id == citizen_id,
            RecoveryCode.code_hash == accounts.pii.blind_index(normal, purpose=_CODE_PURPOSE),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    with accounts.db.session() as s:
        return rowcount(s.execute(claim)) == 1


def recovery_codes_left(accounts: AccountService, citizen_id: int) -> int:
    with accounts.db.session() as s:
        return int(s.scalar(
            sa.select(sa.func.count()).select_from(RecoveryCode)
            .where(RecoveryCode.citizen_id == citizen_id, RecoveryCode.used_at.is_(None))
        ) or 0)
