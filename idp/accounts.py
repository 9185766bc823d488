"""Citizen accounts: create, find, authenticate, second factor, bulk import (issue 3 §1, §7).

An account is keyed on the resident ID number (DESIGN.md, identity rules):
every number is validated with :func:`keys.identifiers.parse_resident_id`,
found by its keyed blind index, stored AEAD-encrypted and shown masked.
Nothing here logs, raises or reports an unmasked number.

:meth:`AccountService.login` is what the login page calls: throttle check,
password check, audit record and throttle bookkeeping in one place, with the
same work done and the same answer given whether or not the account exists.
"""

from __future__ import annotations

import csv
import hmac
import io
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyotp
import sqlalchemy as sa
from sqlalchemy.orm import Session

from keys.errors import InvalidIdentifier
from keys.identifiers import ResidentId, mask_resident_id, parse_resident_id
from keys.pii import PiiProtector

from .db import Database, rowcount
from .errors import Conflict, InvalidInput, NotFound
from .models import Citizen, utcnow
from .passwords import MAX_PASSWORD_BYTES, PasswordHasher

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
]

logger = logging.getLogger(__name__)

ID_NUMBER_PURPOSE = "id_number"
"""PiiProtector purpose for the ID number's blind index and ciphertext."""
TOTP_PURPOSE = "totp"
MIN_PASSWORD_LENGTH = 8
CSV_COLUMNS = ("id_number", "name", "phone", "email", "password")
_REQUIRED_COLUMNS = ("id_number", "name")
_IMPORT_BATCH = 200

_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,30}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class LoginOutcome:
    """The result of :meth:`AccountService.login`.

    ``status`` is ``ok``, ``invalid`` (wrong number or password — one answer
    for both) or ``throttled`` (``retry_after`` seconds to wait).
    """

    status: str
    citizen: Citizen | None = None
    retry_after: int = 0
    needs_second_factor: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class RejectedRow:
    line: int
    """Line number in the file (the header is line 1)."""
    reason: str


@dataclass
class ImportReport:
    imported: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.imported + len(self.rejected)


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


def _clean_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("the name is missing")
    if len(name) > 200 or _CONTROL.search(name):
        raise InvalidInput("the name is longer than 200 characters or has control characters")
    return name


def _clean_phone(phone: str | None) -> str | None:
    phone = (phone or "").strip()
    if not phone:
        return None
    if not _PHONE.match(phone):
        raise InvalidInput("the phone number is not a phone number (digits, optional leading +)")
    return phone


def _clean_email(email: str | None) -> str | None:
    email = (email or "").strip()
    if not email:
        return None
    if len(email) > 320 or not _EMAIL.match(email):
        raise InvalidInput("the e-mail address is not valid")
    return email


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"the password must be at most {MAX_PASSWORD_BYTES} bytes")


_BY_INDEX = sa.select(Citizen).where(Citizen.id_number_index == sa.bindparam("index"))
"""Built once: constructing it was a sixth of the account lookup on every login (py-spy)."""


class AccountService:
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
        name = _clean_name(name)
        phone = _clean_phone(phone)
        email = _clean_email(email)
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
        with self.db.single_statement() as s:  # one read: no BEGIN/COMMIT round trips on the login path
            citizen = self._by_index(s, self.index_of(number))
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
            if self.throttle is not None:
                self.throttle.hit(index, ip)
            self._audit(None, "login.failure", subject=masked, client_id=client_id, ip=ip)
            return LoginOutcome("invalid")
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

    def remove_totp(self, id_number: str, *, actor: str = "admin") -> None:
        with self.db.session() as s:
            citizen = self._require(s, id_number)
            citizen.totp_secret_enc = None
            citizen.totp_last_step = None
            self._audit(s, "account.totp_removed", actor=actor, subject=citizen.id_number_masked)

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
            return False
        with self.db.session() as s:
            citizen = s.get(Citizen, citizen_id)
            if citizen is None or citizen.totp_secret_enc is None:
                return False
            secret = self.pii.decrypt(citizen.totp_secret_enc, purpose=TOTP_PURPOSE)
            totp = pyotp.TOTP(secret)
            now = time.time() if at is None else at
            step_now = int(now) // totp.interval
            matched: int | None = None
            for step in (step_now - 1, step_now, step_now + 1):
                if hmac.compare_digest(totp.generate_otp(step), code):
                    matched = step
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

    # ---------------------------------------------------------------- import

    def import_csv(
        self,
        path: Path | str,
        *,
        encoding: str = "utf-8",
        progress: Callable[[int], None] | None = None,
        actor: str = "admin",
    ) -> ImportReport:
        """Import citizens from a CSV file with a header row.

        Columns: ``id_number`` and ``name`` (required), ``phone``, ``email``,
        ``password`` (optional; without it the account has no password until
        one is set). A file that cannot be decoded or has the wrong columns
        raises :class:`InvalidInput` before anything is imported; a bad row is
        reported with its line and reason and the good rows are imported.
        ``progress(n)`` is called with the number of rows just handled.
        """
        rows = self.load_csv(path, encoding=encoding)
        return self.import_rows(rows, progress=progress, actor=actor)

    def load_csv(self, path: Path | str, *, encoding: str = "utf-8") -> list[tuple[int, dict[str, str]]]:
        """Read and check the whole file: ``(line, row)`` pairs, or :class:`InvalidInput`."""
        return self._read_csv(Path(path), encoding)

    def import_rows(
        self,
        rows: list[tuple[int, dict[str, str]]],
        *,
        progress: Callable[[int], None] | None = None,
        actor: str = "admin",
    ) -> ImportReport:
        """Import rows from :meth:`load_csv`; see :meth:`import_csv`."""
        report = ImportReport()
        seen: dict[str, int] = {}
        batch: list[tuple[int, Citizen]] = []
        for line, record in rows:
            try:
                citizen = self._citizen_from_row(record)
            except (InvalidIdentifier, InvalidInput) as e:
                report.rejected.append(RejectedRow(line, _row_reason(e)))
            else:
                first = seen.get(citizen.id_number_index)
                if first is not None:
                    report.rejected.append(
                        RejectedRow(line, f"the same ID number as line {first}")
                    )
                else:
                    seen[citizen.id_number_index] = line
                    batch.append((line, citizen))
            if len(batch) >= _IMPORT_BATCH:
                self._store_batch(batch, report, actor)
                batch = []
            if progress is not None:
                progress(1)
        if batch:
            self._store_batch(batch, report, actor)
        report.rejected.sort(key=lambda r: r.line)
        logger.info("import: %d imported, %d rejected", report.imported, len(report.rejected))
        return report

    @staticmethod
    def _read_csv(path: Path, encoding: str) -> list[tuple[int, dict[str, str]]]:
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read {path.name}: {e.strerror}") from None
        try:
            text = raw.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise InvalidInput(
                f"{path.name} is not {encoding} text (line {line}); save it as UTF-8 CSV "
                "or give the file's encoding"
            ) from None
        except LookupError:
            raise InvalidInput(f"unknown encoding {encoding}") from None
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header_cells = next(reader, None)
            if header_cells is None or not any(c.strip() for c in header_cells):
                raise InvalidInput(f"{path.name} is empty; the first line must name the columns")
            header = [c.strip().lower() for c in header_cells]
            unknown = [c for c in header if c not in CSV_COLUMNS]
            missing = [c for c in _REQUIRED_COLUMNS if c not in header]
            if unknown or missing or len(set(header)) != len(header):
                raise InvalidInput(
                    f"{path.name} must have a header line with the columns id_number,name "
                    f"and optionally phone,email,password; found {','.join(header)}"
                )
            rows: list[tuple[int, dict[str, str]]] = []
            line = reader.line_num + 1
            for cells in reader:
                if any(c.strip() for c in cells):
                    if len(cells) != len(header):
                        reason = f"has {len(cells)} fields, the header has {len(header)}"
                        rows.append((line, {"__error__": reason}))
                    else:
                        rows.append((line, dict(zip(header, cells, strict=True))))
                line = reader.line_num + 1
        except csv.Error as e:
            raise InvalidInput(
                f"{path.name} is not a valid CSV file (line {reader.line_num}): {e}"
            ) from None
        return rows

    def _citizen_from_row(self, record: dict[str, str]) -> Citizen:
        if "__error__" in record:
            raise InvalidInput(record["__error__"])
        number = parse_resident_id(record.get("id_number", "")).number
        name = _clean_name(record.get("name"))
        phone = _clean_phone(record.get("phone"))
        email = _clean_email(record.get("email"))
        password = record.get("password") or None
        password_hash = None
        if password is not None:
            check_password_policy(password)
            password_hash = self.hasher.hash(password)
        return self._new_citizen(number, name, password_hash, phone, email)

    def _store_batch(
        self, batch: list[tuple[int, Citizen]], report: ImportReport, actor: str
    ) -> None:
        try:
            added, rejected = self._insert_batch(batch, actor)
        except sa.exc.IntegrityError:
            # Someone created one of these accounts meanwhile: go row by row.
            added, rejected = 0, []
            for line, citizen in batch:
                try:
                    n, r = self._insert_batch([(line, citizen)], actor)
                except sa.exc.IntegrityError:
                    n, r = 0, [line]
                added += n
                rejected += r
        report.imported += added
        report.rejected += [
            RejectedRow(line, "an account with this ID number already exists") for line in rejected
        ]

    @staticmethod
    def _existing_indexes(s: Session, indexes: list[str]) -> set[str]:
        query = sa.select(Citizen.id_number_index).where(Citizen.id_number_index.in_(indexes))
        return set(s.scalars(query))

    def _insert_batch(self, batch: list[tuple[int, Citizen]], actor: str) -> tuple[int, list[int]]:
        """Insert the rows whose number is new; ``(inserted, lines already there)``."""
        with self.db.session() as s:
            existing = self._existing_indexes(s, [c.id_number_index for _, c in batch])
            fresh = [c for _, c in batch if c.id_number_index not in existing]
            s.add_all(fresh)
            s.flush()
            if fresh:
                self._audit(s, "account.imported", actor=actor, detail={"count": len(fresh)})
        return len(fresh), [line for line, c in batch if c.id_number_index in existing]

    # ----------------------------------------------------------------- audit

    def _audit(self, session: Session | None, kind: str, **fields: object) -> None:
        if self.audit is not None:
            self.audit.record(kind, session=session, **fields)  # type: ignore[arg-type]


def _row_reason(e: Exception) -> str:
    if isinstance(e, InvalidIdentifier):
        return f"ID number: {e}"
    return str(e)


def iter_lines(report: ImportReport) -> Iterable[str]:
    """The rejected rows as ``line N: reason`` lines, for the CLI."""
    for r in report.rejected:
        yield f"line {r.line}: {r.reason}"
