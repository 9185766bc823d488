"""Bulk import of citizen accounts from CSV (issue 3 §7): read and check the file, then insert in batches.

:class:`CsvImport` is part of :class:`idp.accounts.AccountService` (its
``import_csv``, ``load_csv`` and ``import_rows``); it uses the service's
database, hasher, ``_new_citizen`` and ``_audit``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keys.errors import InvalidIdentifier
from keys.identifiers import parse_resident_id

from .account_fields import check_password_policy, clean_email, clean_name, clean_phone
from .errors import InvalidInput
from .models import Citizen

if TYPE_CHECKING:
    from .db import Database
    from .passwords import PasswordHasher

__all__ = ["CsvImport", "ImportReport", "RejectedRow", "CSV_COLUMNS", "iter_lines"]

logger = logging.getLogger("idp.accounts")

CSV_COLUMNS = ("id_number", "name", "phone", "email", "password")
_REQUIRED_COLUMNS = ("id_number", "name")
_IMPORT_BATCH = 200


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


class CsvImport:
    """The CSV import of :class:`idp.accounts.AccountService`."""

    db: Database
    hasher: PasswordHasher

    def _new_citizen(self, number: str, name: str, password_hash: str | None, phone: str | None,
                     email: str | None) -> Citizen:
        raise NotImplementedError

    def _audit(self, session: Session | None, kind: str, **fields: Any) -> None:
        raise NotImplementedError

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
        name = clean_name(record.get("name"))
        phone = clean_phone(record.get("phone"))
        email = clean_email(record.get("email"))
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


def _row_reason(e: Exception) -> str:
    if isinstance(e, InvalidIdentifier):
        return f"ID number: {e}"
    return str(e)


def iter_lines(report: ImportReport) -> Iterable[str]:
    """The rejected rows as ``line N: reason`` lines, for the CLI."""
    for r in report.rejected:
        yield f"line {r.line}: {r.reason}"
