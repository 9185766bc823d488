"""Citizen accounts: create, find, authenticate, second factor, bulk import (issue 3 §1, §7).

An account is keyed on the resident ID number (docs/design.md, identity rules):
every number is validated with :func:`keys.identifiers.parse_resident_id`,
found by its keyed blind index, stored AEAD-encrypted and shown masked.
Nothing here logs, raises or reports an unmasked number.

:meth:`AccountService.login` is what the login page calls: throttle check,
password check, audit record and throttle bookkeeping in one place, with the
same work done and the same answer given whether or not the account exists.

What the fields may hold is :mod:`idp.account_fields`; the CSV import is
:mod:`idp.account_import` (:class:`~idp.account_import.CsvImport`, part of
:class:`AccountService`); their public names are importable from here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyotp
import sqlalchemy as sa
from sqlalchemy.orm import Session

from keys.errors import InvalidIdentifier
from keys.identifiers import ResidentId, mask_resident_id, parse_resident_id
from keys.pii import PiiProtector

from .account_fields import (
    MIN_PASSWORD_LENGTH,
    check_password_policy,
    clean_email,
    clean_name,
    clean_phone,
)
from .account_import import CSV_COLUMNS, CsvImport, ImportReport, RejectedRow, iter_lines
from .db import Database, rowcount
from .errors import Conflict, NotFound
from .login_read import LoginRead
from .models import Citizen, RecoveryCode, utcnow
from .passwords import PasswordHasher
from .second_factor import matched_step, use_recovery_code

if TYPE_CHECKING:
    from .audit import AuditLog
    from .throttle import Throttle

__all__ = [
    "AccountService",
    "LoginOutcome",
    "ImportReport",
    "RejectedRow",
    "TotpEnrolment",
    "ID_NUMBER_PURPOSE",
    "TOTP_PURPOSE",
    "CSV_COLUMNS",
    "MIN_PASSWORD_LENGTH",
    "check_password_policy",
    "iter_lines",
]

logger = logging.getLogger(__name__)

ID_NUMBER_PURPOSE = "id_number"
"""PiiProtector purpose for the ID number's blind index and ciphertext."""
TOTP_PURPOSE = "totp"


@dataclass(frozen=True)
class LoginOutcome:
    """The result of :meth:`AccountService.login`.

    ``status`` is ``ok``, ``invalid`` (wrong number or password — one answer
    for both) or ``throttled`` (``retry_after`` seconds to wait). After an
    ``invalid`` one, ``attempts_left`` failures remain before the number is
    locked for at most ``lock_seconds`` (``None`` without a throttle): the
    counters are those of the number typed, so an unknown number gets the
    same count as a known one (issue 18 §1).
    """

    status: str
    citizen: Citizen | None = None
    retry_after: int = 0
    needs_second_factor: bool = False
    attempts_left: int | None = None
    lock_seconds: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class TotpEnrolment:
    """Shown once to the citizen (as a QR code of ``uri``), never stored in clear."""

    secret: str
    uri: str

    def __repr__(self) -> str:
        return "TotpEnrolment(<secret>)"


def _number(id_number: str | ResidentId) -> str:
    """The validated number: a :class:`ResidentId` as it is, a string parsed (``InvalidIdentifier``)."""
    return id_number.number if isinstance(id_number, ResidentId) else parse_resident_id(id_number).number


_BY_INDEX = sa.select(Citizen).where(Citizen.id_number_index == sa.bindparam("index"))
"""Built once: constructing it was a sixth of the account lookup on every login (py-spy)."""


class AccountService(CsvImport):
    """Citizen accounts on top of the database, the PII protector and the hasher."""

    def __init__(
        self,
        db: Database,
        pii: PiiProtector,
        hasher: PasswordHasher,
        *,
        audit: AuditLog | None = None,
        throttle: Throttle | None = None,
        totp_issuer: str = "Yiwang",
    ) -> None:
        self.db = db
        self.pii = pii
        self.hasher = hasher
        self.audit = audit
        self.throttle = throttle
        self.totp_issuer = totp_issuer
        self._login_read = LoginRead(db)

    # ---------------------------------------------------------------- lookup

    def index_of(self, id_number: str) -> str:
        """The blind index of what was typed (normalised, not validated).

        Used by the throttle too: it keys on this, never on the number, and
        gets it whether or not an account exists.
        """
        return self.pii.blind_index(id_number.strip().upper(), purpose=ID_NUMBER_PURPOSE)

    def find_by_id_number(self, id_number: str) -> Citizen | None:
        """The account for ``id_number``, or ``None`` (also for an invalid number)."""
        try:
            number = parse_resident_id(id_number).number
        except InvalidIdentifier:
            return None
        with self.db.session() as s:
            return self._by_index(s, self.index_of(number))

    @staticmethod
    def _by_index(s: Session, index: str) -> Citizen | None:
        return s.scalars(_BY_INDEX, {"index": index}).one_or_none()

    def get(self, citizen_id: int) -> Citizen | None:
        with self.db.session() as s:
            return s.get(Citizen, citizen_id)

    def get_by_public_id(self, public_id: str) -> Citizen | None:
        with self.db.session() as s:
            return s.scalars(sa.select(Citizen).where(Citizen.public_id == public_id)).one_or_none()

    def id_number_of(self, citizen: Citizen) -> str:
        """Decrypt the ID number (for the ``id_number`` claim only)."""
        return self.pii.decrypt(citizen.id_number_enc, purpose=ID_NUMBER_PURPOSE)

    def _require(self, s: Session, id_number: str) -> Citizen:
        number = parse_resident_id(id_number).number
        citizen = self._by_index(s, self.index_of(number))
        if citizen is None:
            raise NotFound(f"no account with ID number {mask_resident_id(number)}")
        return citizen

    # -------------------------------------------------------------- creation

    def _new_citizen(
        self,
        number: str,
        name: str,
        password_hash: str | None,
        phone: str | None,
        email: str | None,
    ) -> Citizen:
        now = utcnow()
        return Citizen(
            id_number_index=self.index_of(number),
            id_number_enc=self.pii.encrypt(number, purpose=ID_NUMBER_PURPOSE),
            id_number_masked=mask_resident_id(number),
            name=name,
            phone=phone,
            email=email,
            password_hash=password_hash,
            created_at=now,
            password_changed_at=now if password_hash else None,
        )

    def add(
        self,
        id_number: str,
        name: str,
        password: str | None = None,
        phone: str | None = None,
        email: str | None = None,
        *,
        actor: str = "admin",
    ) -> Citizen:
        """Create an account. Raises ``InvalidIdentifier``, ``InvalidInput`` or ``Conflict``."""
        number = parse_resident_id(id_number).number
        name = clean_name(name)
        phone = clean_phone(phone)
        email = clean_email(email)
        password_hash = None
        if password is not None:
            check_password_policy(password)
            password_hash = self.hasher.hash(password)
        citizen = self._new_citizen(number, name, password_hash, phone, email)
        masked = citizen.id_number_masked
        try:
            with self.db.session() as s:
                if self._by_index(s, citizen.id_number_index) is not None:
                    raise Conflict("an account with this ID number already exists")
                s.add(citizen)
                s.flush()
                self._audit(s, "account.created", actor=actor, subject=masked)
        except sa.exc.IntegrityError:
            raise Conflict("an account with this ID number already exists") from None
        logger.info("account created %s", masked)
        return citizen

    def set_password(self, id_number: str, password: str, *, actor: str = "admin") -> Citizen:
        check_password_policy(password)
        password_hash = self.hasher.hash(password)
        with self.db.session() as s:
            citizen = self._require(s, id_number)
            citizen.password_hash = password_hash
            citizen.password_changed_at = utcnow()
            self._audit(s, "account.password_set", actor=actor, subject=citizen.id_number_masked)
        return citizen

    def change_password(self, citizen_id: int, current: str, new: str, *, ip: str | None = None) -> str:
        """The citizen's own change (account page): ``ok``, ``wrong_current`` or ``throttled``.

        The current password first (:meth:`check_current_password`);
        ``InvalidInput`` when ``new`` breaks the policy.
        """
        check_password_policy(new)
        result = self.check_current_password(citizen_id, current, ip=ip, action="password_change")
        if result != "ok":
            return result
        citizen = self.get(citizen_id)
        assert citizen is not None
        masked = citizen.id_number_masked
        password_hash = self.hasher.hash(new)
        with self.db.session() as s:
            s.execute(
                sa.update(Citizen)
                .where(Citizen.id == citizen_id)
                .values(password_hash=password_hash, password_changed_at=utcnow())
            )
            self._audit(s, "account.password_changed", actor="citizen", subject=masked, ip=ip)
        return "ok"

    def check_current_password(self, citizen_id: int, current: str, *, ip: str | None, action: str) -> str:
        """Re-authentication on the account page: ``ok``, ``wrong_current`` or ``throttled``.

        Checked like a login (one Argon2id; the account's throttle counts a
        wrong one), so a borrowed session cannot guess it without limit.
        """
        citizen = self.get(citizen_id)
        if citizen is None:
            return "wrong_current"
        index = citizen.id_number_index
        if self.throttle is not None and not self.throttle.check(index, ip).allowed:
            return "throttled"
        if citizen.disabled or not self.hasher.verify(current, citizen.password_hash):
            if self.throttle is not None:
                self.throttle.hit(index, ip)
            self._audit(None, f"account.{action}_failed", actor="citizen", subject=citizen.id_number_masked, ip=ip)
            return "wrong_current"
        return "ok"

    def unlock(self, id_number: str, *, reason: str = "", actor: str = "admin") -> Citizen:
        """Clear the account's failed-login counters (an operator helping a locked-out citizen)."""
        with self.db.session() as s:
            citizen = self._require(s, id_number)
            if self.throttle is not None:
                self.throttle.reset(citizen.id_number_index)
            self._audit(s, "account.unlocked", actor=actor, subject=citizen.id_number_masked,
                        detail={"reason": reason})
        return citizen

    def set_disabled(self, id_number: str, disabled: bool, *, actor: str = "admin") -> Citizen:
        with self.db.session() as s:
            citizen = self._require(s, id_number)
            citizen.disabled = disabled
            self._audit(
                s,
                "account.disabled",
                actor=actor,
                subject=citizen.id_number_masked,
                detail={"disabled": disabled},
            )
        return citizen

    # -------------------------------------------------------- authentication

    def authenticate(self, id_number: str | ResidentId, password: str) -> Citizen | None:
        """The account if ``password`` is right, else ``None``.

        One Argon2id verification whatever happens: a missing account, a
        disabled one, one without a password and an invalid number all check
        a dummy hash, so timing does not tell them apart. A :class:`ResidentId`
        (already parsed by the caller) is not parsed again.
        """
        try:
            number = _number(id_number)
        except InvalidIdentifier:
            self.hasher.verify(password, None)
            return None
        citizen = self._login_read.citizen(self.index_of(number))  # one read, no Session (issue 16)
        if citizen is None or citizen.disabled or citizen.password_hash is None:
            self.hasher.verify(password, None)
            return None
        if not self.hasher.verify(password, citizen.password_hash):
            return None
        if self.hasher.needs_rehash(citizen.password_hash):
            self._rehash(citizen, password)
        return citizen

    def _rehash(self, citizen: Citizen, password: str) -> None:
        new_hash = self.hasher.hash(password)
        with self.db.session() as s:
            s.execute(
                sa.update(Citizen)
                .where(Citizen.id == citizen.id, Citizen.password_hash == citizen.password_hash)
                .values(password_hash=new_hash)
            )
        citizen.password_hash = new_hash

    def login(
        self,
        id_number: str | ResidentId,
        password: str,
        *,
        ip: str | None = None,
        client_id: str | None = None,
    ) -> LoginOutcome:
        """Throttle, check the password, audit, and count the failure or clear the counters.

        Raises ``InvalidIdentifier`` for a malformed number (the page says
        what is wrong with it); for a well-formed one the answer is the same
        whether or not an account exists. The login page passes the
        :class:`ResidentId` it parsed for its own messages, so a login parses
        the number once.
        """
        resident_id = id_number if isinstance(id_number, ResidentId) else parse_resident_id(id_number)
        number = resident_id.number
        index = self.index_of(number)
        masked = mask_resident_id(number)
        failures_on_record = True
        if self.throttle is not None:
            decision = self.throttle.check(index, ip)
            failures_on_record = decision.account_failures
            if not decision.allowed:
                self._audit(
                    None,
                    "login.locked",
                    subject=masked,
                    client_id=client_id,
                    ip=ip,
                    detail={"retry_after": decision.retry_after_seconds},
                )
                return LoginOutcome("throttled", retry_after=decision.retry_after_seconds)
        citizen = self.authenticate(resident_id, password)
        if citizen is None:
            self._audit(None, "login.failure", subject=masked, client_id=client_id, ip=ip)
            if self.throttle is None:
                return LoginOutcome("invalid")
            self.throttle.hit(index, ip)
            left, lock_seconds = self.throttle.remaining(index)
            return LoginOutcome("invalid", attempts_left=left, lock_seconds=lock_seconds)
        # With a second factor to come, the counters are cleared only once it
        # passes: a known password must not buy fresh TOTP guesses.
        if self.throttle is not None and failures_on_record and not citizen.has_totp:
            self.throttle.reset(index)
        self._audit(
            None,
            "login.success",
            subject=masked,
            client_id=client_id,
            ip=ip,
            detail={"amr": ["pwd"]},
        )
        return LoginOutcome("ok", citizen=citizen, needs_second_factor=citizen.has_totp)

    # ------------------------------------------------------------------ TOTP

    def enrol_totp(self, id_number: str, *, actor: str = "admin") -> TotpEnrolment:
        """Give the account a new TOTP secret (RFC 6238, 30 s, 6 digits, SHA-1).

        The secret is returned once for the authenticator app and stored
        only encrypted; enrolling again replaces it.
        """
        secret = pyotp.random_base32()
        with self.db.session() as s:
            citizen = self._require(s, id_number)
            citizen.totp_secret_enc = self.pii.encrypt(secret, purpose=TOTP_PURPOSE)
            citizen.totp_last_step = None
            masked = citizen.id_number_masked
            self._audit(s, "account.totp_enrolled", actor=actor, subject=masked)
        uri = pyotp.TOTP(secret).provisioning_uri(name=masked, issuer_name=self.totp_issuer)
        return TotpEnrolment(secret=secret, uri=uri)

    def remove_totp(self, id_number: str, *, actor: str = "admin", reason: str | None = None) -> Citizen:
        """Remove the second factor; ``NotFound`` without an account. ``reason`` goes into the audit."""
        with self.db.session() as s:
            citizen = self._require(s, id_number)
            had = citizen.totp_secret_enc is not None
            citizen.totp_secret_enc = None
            citizen.totp_last_step = None
            s.execute(sa.delete(RecoveryCode).where(RecoveryCode.citizen_id == citizen.id))
            detail = None if reason is None else {"reason": reason, "had_second_factor": had}
            self._audit(s, "account.totp_removed", actor=actor, subject=citizen.id_number_masked, detail=detail)
        return citizen

    def verify_totp(
        self, citizen_id: int, code: str, *, at: float | None = None, ip: str | None = None
    ) -> bool:
        """True once per code: the step before, the current and the next are accepted.

        RFC 6238 §5.2: a code that was accepted is not accepted again (the
        last accepted step is stored and compared atomically), and wrong
        codes count against the account's login throttle, so the million
        codes cannot be tried (§5.1: "throttling"); a throttled attempt is
        refused like a wrong code.
        """
        code = (code or "").strip().replace(" ", "")
        with self.db.session() as s:
            citizen = s.get(Citizen, citizen_id)
            if citizen is None or citizen.totp_secret_enc is None:
                return False
            index, masked = citizen.id_number_index, citizen.id_number_masked
        if self.throttle is not None and not self.throttle.check(index, ip).allowed:
            self._audit(None, "login.locked", subject=masked, ip=ip, detail={"factor": "totp"})
            return False
        if self._check_totp(citizen_id, code, at):
            if self.throttle is not None:
                self.throttle.reset(index)
            self._audit(None, "login.totp_success", subject=masked, ip=ip, detail={"amr": ["pwd", "otp"]})
            return True
        if self.throttle is not None:
            self.throttle.hit(index, ip)
        self._audit(None, "login.totp_failure", subject=masked, ip=ip)
        return False

    def _check_totp(self, citizen_id: int, code: str, at: float | None) -> bool:
        if not (code.isascii() and code.isdigit() and len(code) == 6):
            return use_recovery_code(self, citizen_id, code)  # lost phone: a one-time code instead
        with self.db.session() as s:
            citizen = s.get(Citizen, citizen_id)
            if citizen is None or citizen.totp_secret_enc is None:
                return False
            secret = self.pii.decrypt(citizen.totp_secret_enc, purpose=TOTP_PURPOSE)
            matched = matched_step(secret, code, at)
            if matched is None:
                return False
            claim = (
                sa.update(Citizen)
                .where(
                    Citizen.id == citizen_id,
                    sa.or_(Citizen.totp_last_step.is_(None), Citizen.totp_last_step < matched),
                )
                .values(totp_last_step=matched)
            )
            return rowcount(s.execute(claim)) == 1

    # ----------------------------------------------------------------- audit

    def _audit(self, session: Session | None, kind: str, **fields: object) -> None:
        if self.audit is not None:
            self.audit.record(kind, session=session, **fields)  # type: ignore[arg-type]
