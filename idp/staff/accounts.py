"""Staff accounts: add, list, disable, reset the second factor, sign in (issue 13 §1).

A clerk or hotline agent signs in with a username, an Argon2id password
(:class:`idp.passwords.PasswordHasher`, the citizens' policy
:func:`idp.account_fields.check_password_policy`) and a TOTP code, all three
on one form: the second factor is required, so an account is created with
its TOTP secret (shown once to the operator, stored AEAD-encrypted) and
cannot exist without one. Failed sign-ins count in :class:`idp.throttle.Throttle`
under the keyed blind index of the username typed (``staff:`` namespace, so
a username never shares counters with an ID number), computed whether or not
the account exists; one Argon2id verification is done whatever happens.

Every sign-in (success, failure, lock) and every change is an audit record
(``staff.*``); the subject is ``staff:<username>``, never a secret.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyotp
import sqlalchemy as sa

from ..account_fields import check_password_policy, clean_name
from ..db import Database, rowcount
from ..errors import Conflict, InvalidInput, NotFound
from ..models import utcnow
from ..passwords import PasswordHasher
from ..second_factor import matched_step
from .models import STAFF_KINDS, SUBJECT_PREFIX, StaffAccount

if TYPE_CHECKING:
    from keys.pii import PiiProtector

    from ..audit import AuditLog
    from ..throttle import Throttle

__all__ = ["StaffService", "StaffLogin", "StaffEnrolment", "StaffView", "clean_username", "TOTP_PURPOSE"]

logger = logging.getLogger(__name__)

TOTP_PURPOSE = "staff-totp"
"""PII purpose of the staff TOTP secrets (other keys than the citizens' ``totp``)."""
_USERNAME_PURPOSE = "staff-username"
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_username(username: str | None) -> str:
    """Lower case, 3-64 of ``a-z 0-9 . _ -``, starting with a letter or digit; else ``InvalidInput``."""
    value = (username or "").strip().lower()
    if not _USERNAME.fullmatch(value):
        raise InvalidInput("a username is 3-64 characters of a-z 0-9 . _ - starting with a letter or digit")
    return value


def clean_kind(kind: str | None) -> str:
    value = (kind or "").strip().lower()
    if value not in STAFF_KINDS:
        raise InvalidInput("the kind is clerk (a service counter) or agent (a hotline)")
    return value


def clean_office(office: str | None) -> str:
    value = (office or "").strip()
    if not value or len(value) > 200 or _CONTROL.search(value):
        raise InvalidInput("the office (counter or hotline name) is 1-200 characters on one line")
    return value


@dataclass(frozen=True)
class StaffEnrolment:
    """The TOTP secret of a new or reset account: shown once to the operator, never stored in clear."""

    username: str
    secret: str
    uri: str

    def __repr__(self) -> str:
        return f"StaffEnrolment({self.username!r}, <secret>)"


@dataclass(frozen=True)
class StaffView:
    """What the sign-in, the tokens and the CLI need of an account (no secret)."""

    id: int
    public_id: str
    username: str
    display_name: str
    kind: str
    office: str
    disabled: bool

    @property
    def sub(self) -> str:
        return SUBJECT_PREFIX + self.public_id

    @classmethod
    def of(cls, row: StaffAccount) -> StaffView:
        return cls(row.id, row.public_id, row.username, row.display_name, row.kind, row.office, row.disabled)


@dataclass(frozen=True)
class StaffLogin:
    """The answer of :meth:`StaffService.login`: ``ok``, ``invalid`` (one answer for any wrong part) or ``throttled``."""

    status: str
    staff: StaffView | None = None
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class StaffService:
    """Staff accounts on the database, the PII protector, the hasher, the throttle and the audit log."""

    def __init__(self, db: Database, pii: PiiProtector, hasher: PasswordHasher, *, audit: AuditLog | None = None,
                 throttle: Throttle | None = None, totp_issuer: str = "Yiwang staff") -> None:
        self.db = db
        self.pii = pii
        self.hasher = hasher
        self.audit = audit
        self.throttle = throttle
        self.totp_issuer = totp_issuer

    @classmethod
    def of(cls, services: Any) -> StaffService:
        """Built on :class:`idp.services.Services` (the same database, keys, hasher, throttle, audit)."""
        return cls(services.db, services.pii, services.hasher, audit=services.audit, throttle=services.throttle)

    # -------------------------------------------------------------- changes

    def _enrolment(self, username: str) -> tuple[StaffEnrolment, bytes]:
        secret = pyotp.random_base32()
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=self.totp_issuer)
        return StaffEnrolment(username, secret, uri), self.pii.encrypt(secret, purpose=TOTP_PURPOSE)

    def add(self, username: str, display_name: str, kind: str, office: str, password: str, *,
            actor: str = "admin") -> tuple[StaffView, StaffEnrolment]:
        """Create an account with its TOTP secret; ``InvalidInput`` or ``Conflict``."""
        username = clean_username(username)
        display_name = clean_name(display_name)
        kind, office = clean_kind(kind), clean_office(office)
        check_password_policy(password)
        enrolment, sealed = self._enrolment(username)
        row = StaffAccount(username=username, display_name=display_name, kind=kind, office=office,
                           password_hash=self.hasher.hash(password), totp_secret_enc=sealed, created_at=utcnow())
        try:
            with self.db.session() as s:
                if s.scalar(sa.select(StaffAccount.id).where(StaffAccount.username == username)) is not None:
                    raise Conflict(f"a staff account {username!r} already exists")
                s.add(row)
                s.flush()
                self._audit(s, "staff.created", actor=actor, subject=SUBJECT_PREFIX + username,
                            detail={"kind": kind, "office": office})
                view = StaffView.of(row)
        except sa.exc.IntegrityError:
            raise Conflict(f"a staff account {username!r} already exists") from None
        logger.info("staff account created: %s (%s)", username, kind)
        return view, enrolment

    def list(self, *, include_disabled: bool = True) -> list[StaffView]:
        query = sa.select(StaffAccount).order_by(StaffAccount.username)
        if not include_disabled:
            query = query.where(StaffAccount.disabled.is_(False))
        with self.db.session() as s:
            return [StaffView.of(r) for r in s.scalars(query)]

    def _require(self, s: Any, username: str) -> StaffAccount:
        row: StaffAccount | None = s.scalars(
            sa.select(StaffAccount).where(StaffAccount.username == clean_username(username))).one_or_none()
        if row is None:
            raise NotFound(f"no staff account {username.strip().lower()!r}")
        return row

    def set_disabled(self, username: str, disabled: bool = True, *, reason: str = "",
                     actor: str = "admin") -> StaffView:
        """Disable (or enable again): a disabled account cannot sign in nor act for anyone."""
        with self.db.session() as s:
            row = self._require(s, username)
            row.disabled = disabled
            row.disabled_at = utcnow() if disabled else None
            self._audit(s, "staff.disabled" if disabled else "staff.enabled", actor=actor,
                        subject=SUBJECT_PREFIX + row.username, detail={"reason": reason})
            return StaffView.of(row)

    def reset_second_factor(self, username: str, *, reason: str, actor: str = "admin") -> StaffEnrolment:
        """A new TOTP secret (the old authenticator stops working at once); shown once."""
        with self.db.session() as s:
            row = self._require(s, username)
            enrolment, sealed = self._enrolment(row.username)
            row.totp_secret_enc = sealed
            row.totp_last_step = None
            self._audit(s, "staff.second_factor_reset", actor=actor, subject=SUBJECT_PREFIX + row.username,
                        detail={"reason": reason})
        return enrolment

    # -------------------------------------------------------------- lookups

    def get_by_public_id(self, public_id: str) -> StaffView | None:
        with self.db.single_statement() as s:
            row = s.scalars(sa.select(StaffAccount).where(StaffAccount.public_id == public_id)).one_or_none()
            return StaffView.of(row) if row is not None else None

    def active_by_sub(self, sub: str) -> StaffView | None:
        """The account a ``staff:<public id>`` subject names, if it exists and is not disabled."""
        if not isinstance(sub, str) or not sub.startswith(SUBJECT_PREFIX) or len(sub) > 64:
            return None
        view = self.get_by_public_id(sub[len(SUBJECT_PREFIX):])
        return view if view is not None and not view.disabled else None

    def throttle_key(self, username: str) -> str:
        """The throttle's account key for what was typed (known account or not)."""
        return "staff:" + self.pii.blind_index(username.strip().lower()[:64], purpose=_USERNAME_PURPOSE)

    # -------------------------------------------------------------- sign-in

    def login(self, username: str, password: str, code: str, *, ip: str | None = None,
              client_id: str | None = None) -> StaffLogin:
        """Throttle, password, TOTP, audit: the staff sign-in in one call.

        A wrong username, password or code gets the same ``invalid`` answer
        and counts one failure; one Argon2id verification is done in every
        case. A TOTP code is accepted once (the step is claimed atomically).
        """
        typed = (username or "").strip().lower()[:64]
        key = self.throttle_key(typed)
        row = None
        if _USERNAME.fullmatch(typed):
            with self.db.single_statement() as s:
                row = s.scalars(sa.select(StaffAccount).where(StaffAccount.username == typed)).one_or_none()
                if row is not None:
                    s.expunge(row)
        # Only an existing account is named in the audit log: what was typed for an
        # unknown one may be anything (a password in the wrong field).
        subject = SUBJECT_PREFIX + typed if row is not None else "staff:?"
        if self.throttle is not None:
            decision = self.throttle.check(key, ip)
            if not decision.allowed:
                self._audit(None, "staff.login_locked", subject=subject, client_id=client_id, ip=ip,
                            detail={"retry_after": decision.retry_after_seconds})
                return StaffLogin("throttled", retry_after=decision.retry_after_seconds)
        usable = row is not None and not row.disabled
        password_ok = self.hasher.verify(password or "", row.password_hash if usable and row else None)
        code_ok = bool(usable and row and password_ok and self._claim_totp(row, (code or "").strip().replace(" ", "")))
        if not code_ok or row is None:
            if self.throttle is not None:
                self.throttle.hit(key, ip)
            reason = "unknown_or_disabled" if not usable else ("password" if not password_ok else "totp")
            self._audit(None, "staff.login_failure", subject=subject, client_id=client_id, ip=ip,
                        detail={"reason": reason})
            return StaffLogin("invalid")
        if self.throttle is not None:
            self.throttle.reset(key)
        self._audit(None, "staff.login", subject=subject, client_id=client_id, ip=ip,
                    detail={"kind": row.kind, "office": row.office, "amr": ["pwd", "otp"]})
        return StaffLogin("ok", staff=StaffView.of(row))

    def _claim_totp(self, row: StaffAccount, code: str) -> bool:
        secret = self.pii.decrypt(row.totp_secret_enc, purpose=TOTP_PURPOSE)
        step = matched_step(secret, code)
        if step is None:
            return False
        claim = (
            sa.update(StaffAccount)
            .where(StaffAccount.id == row.id,
                   sa.or_(StaffAccount.totp_last_step.is_(None), StaffAccount.totp_last_step < step))
            .values(totp_last_step=step)
        )
        with self.db.session() as s:
            return rowcount(s.execute(claim)) == 1

    # ---------------------------------------------------------------- audit

    def _audit(self, session: Any, kind: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.record(kind, session=session, **fields)
