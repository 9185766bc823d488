"""Batch issuance from a CSV file (issue 6, "Build" 7).

The file is checked whole before anything is issued — UTF-8 (a GBK/GB 18030
export from a spreadsheet is refused with one message saying so), a header
with ``external_ref``, ``holder_code``, ``holder_name``, optionally
``paper_serial``, ``valid_from``, ``valid_until``, and the type's own field
names; no unknown column; every column the type requires present. Then:

1. One transaction writes a :class:`~certstore.models.BatchJob` and a
   :class:`~certstore.models.BatchRow` per data row, the row's cells sealed
   with the PII key (they hold ID numbers). docs/design.md: batch results live in
   SQL, written before any job is queued.
2. Rows are issued — inline, or as Dramatiq jobs on Redis consumed by
   ``--workers N`` worker processes (``certstore batch-worker``). Each row
   goes through :meth:`CertificateService.issue` with its ``external_ref``.
3. Idempotency: ``external_ref`` is unique per issuer (a database
   constraint). A row whose reference already has a certificate — issued by
   an earlier, perhaps crashed, run, or by this job's worker killed between
   storing the certificate and recording the row — is marked ``existing``
   (with that certificate's identifier) and nothing is issued twice. A row that fails (bad ID number, a field breaking the
   schema…) is marked ``failed`` with the reason and the batch goes on.
4. The results file lists each row: number, reference, state, identifier,
   reason.
5. The job's end state is true whoever issues its last row (issue 20 §4):
   :meth:`BatchService.finish` sets ``finished_at`` in one statement that
   only succeeds when no row is pending, and :meth:`BatchService.run_row`
   calls it after each row it stores — so the process that stores the last
   row (a worker started after another died, or the inline run) ends the
   job, and a job with a pending row is never marked finished. A row's
   outcome is stored only over ``pending``: if two workers ran the same row
   (a message requeued from a worker taken for dead), the first outcome
   stands. :meth:`BatchService.progress` is what ``certstore batch-status``
   shows; the results file is written from SQL whenever asked.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .db import session_scope
from .errors import CertstoreError, InvalidInput, NotFound
from .issue_request import IssueRequest
from .models import BatchJob, BatchRow, Certificate
from .service import CertificateService
from .types import CertificateType

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "BatchFile",
    "read_batch_csv",
    "BatchService",
    "RESULT_COLUMNS",
    "JobProgress",
]

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("external_ref", "holder_code", "holder_name")
OPTIONAL_COLUMNS = ("paper_serial", "valid_from", "valid_until")
RESULT_COLUMNS = ("row", "external_ref", "state", "identifier", "error")
_PURPOSE = "certstore-batch"
_MAX_ROWS = 1_000_000
_MAX_REF = 200


@dataclass(frozen=True)
class BatchFile:
    columns: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]]
    """``(line number in the file, cells)``; line 1 is the header."""


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


@dataclass(frozen=True)
class JobProgress:
    """Where a batch job stands, read from SQL (``certstore batch-status``)."""

    job_id: int
    issuer: str
    type_code: str
    source: str
    total: int
    issued: int
    existing: int
    """Rows whose ``external_ref`` already had a certificate (an earlier or crashed run issued it)."""
    failed: int
    pending: int
    created_at: dt.datetime
    finished_at: dt.datetime | None
    """Set only once no row is pending, by whichever process stored the last row."""
    last_progress_at: dt.datetime | None
    """When this job last issued a certificate, to the second (rows that failed or found one leave no time)."""

    @property
    def done(self) -> int:
        return self.total - self.pending

    def rate(self, now: dt.datetime) -> float:
        """Rows done per second since the job was created (to its end, or ``now``)."""
        end = self.finished_at or now
        seconds = (end - self.created_at).total_seconds()
        return self.done / seconds if seconds > 0 else 0.0

    def as_json(self, now: dt.datetime) -> dict[str, Any]:
        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat(timespec="seconds") if t is not None else None

        return {
            "job": self.job_id,
            "issuer": self.issuer,
            "type": self.type_code,
            "source": self.source,
            "total": self.total,
            "issued": self.issued,
            "existing": self.existing,
            "failed": self.failed,
            "pending": self.pending,
            "finished": self.finished_at is not None,
            "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at),
            "last_progress_at": iso(self.last_progress_at),
            "rows_per_second": round(self.rate(now), 3),
        }


def read_batch_csv(path: Path, spec: CertificateType) -> BatchFile:
    """Read and check ``path`` for ``spec``; one :class:`InvalidInput` for anything wrong with the file as a whole."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}", field="file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        hint = ""
        try:
            raw.decode("gb18030")
            hint = " (it looks like GBK/GB 18030: save it again as \"CSV UTF-8\")"
        except UnicodeDecodeError:
            pass
        raise InvalidInput(f"{path.name} is not UTF-8 text: byte {e.start} cannot be read{hint}", field="file") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{path.name} is empty: the first line must name the columns", field="file") from None
    except csv.Error as e:
        raise InvalidInput(f"{path.name} is not a CSV file: {e}", field="file") from None
    columns = tuple(h.strip() for h in header)
    field_names = {f.name for f in spec.ordered_fields()}
    allowed = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS) | field_names
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise InvalidInput(f"column {dupes[0]!r} appears twice in the header", field="file")
    unknown = [c for c in columns if c not in allowed]
    if unknown:
        raise InvalidInput(
            f"unknown column {unknown[0][:40]!r}; the columns for type {spec.code} are "
            f"{', '.join(REQUIRED_COLUMNS)}, optionally {', '.join(OPTIONAL_COLUMNS)}, and the fields "
            f"{', '.join(sorted(field_names))}",
            field="file",
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    missing += [f.name for f in spec.ordered_fields() if f.required and f.name not in columns]
    if missing:
        raise InvalidInput(f"the header lacks the column {missing[0]!r} (type {spec.code} needs it)", field="file")
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # blank line
            line = reader.line_num
            if len(record) != len(columns):
                raise InvalidInput(
                    f"line {line} has {len(record)} cells but the header has {len(columns)} columns", field="file"
                )
            rows.append((line, {c: v.strip() for c, v in zip(columns, record, strict=True)}))
            if len(rows) > _MAX_ROWS:
                raise InvalidInput(f"at most {_MAX_ROWS} rows per file", field="file")
    except csv.Error as e:
        raise InvalidInput(f"{path.name} line {reader.line_num} is not valid CSV: {e}", field="file") from None
    if not rows:
        raise InvalidInput(f"{path.name} has a header but no rows", field="file")
    return BatchFile(columns, rows)


def _request(cells: dict[str, str], type_code: str, issuer: str) -> IssueRequest:
    ref = cells.get("external_ref", "")
    if not ref or len(ref) > _MAX_REF or not ref.isprintable():
        raise InvalidInput(f"external_ref must be 1 to {_MAX_REF} printable characters", field="external_ref")
    body: dict[str, Any] = {
        "type": type_code,
        "issuer": issuer,
        "holder_code": cells.get("holder_code", ""),
        "holder_name": cells.get("holder_name", ""),
        "fields": {
            k: v for k, v in cells.items() if k not in REQUIRED_COLUMNS and k not in OPTIONAL_COLUMNS and v != ""
        },
    }
    for k in OPTIONAL_COLUMNS:
        if cells.get(k):
            body[k] = cells[k]
    req = IssueRequest.from_json(body)
    return IssueRequest(**{**req.__dict__, "external_ref": ref})


class BatchService:
    """Jobs, rows and their outcomes; issuing one row idempotently."""

    def __init__(self, certificates: CertificateService) -> None:
        self.certificates = certificates
        self.sessions = certificates.sessions
        self._jobs: dict[int, BatchJob] = {}

    def create_job(self, batch: BatchFile, *, issuer: str, type_code: str, source: str) -> int:
        """Store the job and its sealed rows in one transaction; returns the job id."""
        info = self.certificates.registry.get_issuer(issuer)
        spec = self.certificates.registry.get_type(type_code)
        if spec.code not in info.allowed_types:
            raise InvalidInput(f"issuer {issuer} may not issue certificates of type {spec.code}", field="type")
        pii = self.certificates.keyring.pii()
        with session_scope(self.sessions) as s:
            job = BatchJob(issuer_uscc=issuer, type_code=spec.code, source=source[:300], total=len(batch.rows))
            s.add(job)
            s.flush()
            job_id = job.id
            s.add_all(
                BatchRow(
                    job_id=job_id,
                    row_no=line,
                    external_ref=cells.get("external_ref", "")[:_MAX_REF],
                    data_enc=pii.encrypt(json.dumps(cells, ensure_ascii=False), purpose=_PURPOSE),
                    state="pending",
                )
                for line, cells in batch.rows
            )
        logger.info("batch job %d: %d rows of type %s for %s", job_id, len(batch.rows), spec.code, issuer)
        return job_id

    def _job(self, job_id: int) -> BatchJob:
        with self.sessions() as s:
            job = s.get(BatchJob, job_id)
            if job is None:
                raise NotFound(f"there is no batch job {job_id}", field="job")
            return job

    def pending(self, job_id: int) -> list[int]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    sa.select(BatchRow.row_no)
                    .where(BatchRow.job_id == job_id, BatchRow.state == "pending")
                    .order_by(BatchRow.row_no)
                )
            )

    def run_row(self, job_id: int, row_no: int) -> str:
        """Issue one row (or find it already issued); returns its new state. Never raises for bad data."""
        job = self._jobs.get(job_id) or self._job(job_id)
        self._jobs[job_id] = job
        with self.sessions() as s:  # one read: the row, and whether an earlier run issued it
            row = s.get(BatchRow, (job_id, row_no))
            if row is None or row.state != "pending":
                return row.state if row is not None else "missing"
            data_enc = row.data_enc
            ref = row.external_ref
            existing = s.scalar(
                sa.select(Certificate.identifier).where(
                    Certificate.issuer_uscc == job.issuer_uscc, Certificate.external_ref == ref
                )
            ) if ref else None
        identifier: str | None
        error: str | None
        if existing is not None:
            state, identifier, error = "existing", existing, None
        else:
            state, identifier, error = self._issue(job, ref, data_enc)
        with session_scope(self.sessions) as s:
            result: Any = s.execute(  # an UPDATE's CursorResult: it has rowcount
                sa.update(BatchRow)
                .where(BatchRow.job_id == job_id, BatchRow.row_no == row_no, BatchRow.state == "pending")
                .values(state=state, identifier=identifier, error=(error or None) and error[:500])
            )
            stored = int(result.rowcount)
        if not stored:  # another worker ran the same row (a requeued message) and stored first
            with self.sessions() as s:
                state = s.scalar(
                    sa.select(BatchRow.state).where(BatchRow.job_id == job_id, BatchRow.row_no == row_no)
                ) or "missing"
        self._finish_if_last(job_id, row_no)
        return state

    def _finish_if_last(self, job_id: int, row_no: int) -> None:
        # Rows are mostly done in order: a pending row after this one is one index step away and
        # proves the job is not done, so the full check (every row) runs only near the end.
        # Skipping is safe: whoever stores that pending row checks again after its own commit.
        with self.sessions() as s:
            later = s.scalar(
                sa.select(BatchRow.row_no)
                .where(BatchRow.job_id == job_id, BatchRow.row_no > row_no, BatchRow.state == "pending")
                .limit(1)
            )
        if later is None:
            self.finish(job_id)

    def _existing(self, issuer: str, ref: str) -> str | None:
        with self.sessions() as s:
            return s.scalar(
                sa.select(Certificate.identifier).where(
                    Certificate.issuer_uscc == issuer, Certificate.external_ref == ref
                )
            )

    def _issue(self, job: BatchJob, ref: str, data_enc: bytes) -> tuple[str, str | None, str | None]:
        try:
            cells = json.loads(self.certificates.keyring.pii().decrypt(data_enc, purpose=_PURPOSE))
            req = _request(cells, job.type_code, job.issuer_uscc)
            result = self.certificates.issue(req, agency_uscc=job.issuer_uscc, actor=f"batch:{job.id}")
        except CertstoreError as e:
            where = f"{e.field}: " if e.field and e.field not in str(e) else ""
            return "failed", None, f"{where}{e}"
        except IntegrityError:
            existing = self._existing(job.issuer_uscc, ref)
            if existing is not None:  # a parallel run issued it a moment ago
                return "existing", existing, None
            return "failed", None, "the database refused the row (duplicate external_ref?)"
        return "issued", result.certificate.identifier, None

    def finish(self, job_id: int) -> bool:
        """Mark the job finished if no row is pending; returns whether it is finished (now or before).

        One statement, run after the caller's row is committed: of two processes storing the
        last two rows at once, the one whose check starts later sees both rows stored.
        """
        still_pending = (
            sa.select(BatchRow.row_no)
            .where(BatchRow.job_id == job_id, BatchRow.state == "pending")
            .limit(1)
            .exists()
        )
        with session_scope(self.sessions) as s:
            s.execute(
                sa.update(BatchJob)
                .where(BatchJob.id == job_id, BatchJob.finished_at.is_(None), ~still_pending)
                .values(finished_at=dt.datetime.now(dt.UTC))
            )
        with self.sessions() as s:
            finished = s.scalar(sa.select(BatchJob.finished_at).where(BatchJob.id == job_id))
        return finished is not None

    def pending_count(self, job_id: int) -> int:
        with self.sessions() as s:
            return int(
                s.scalar(
                    sa.select(sa.func.count())
                    .select_from(BatchRow)
                    .where(BatchRow.job_id == job_id, BatchRow.state == "pending")
                )
                or 0
            )

    def progress(self, job_id: int) -> JobProgress:
        """Counts, times and last progress of one job (:class:`NotFound` if there is none)."""
        job = self._job(job_id)
        counts = self.counts(job_id)
        with self.sessions() as s:
            last = s.scalar(
                sa.select(sa.func.max(Certificate.issued_at))
                .join(BatchRow, BatchRow.identifier == Certificate.identifier)
                .where(BatchRow.job_id == job_id, BatchRow.state == "issued")
            )
        return JobProgress(
            job_id=job.id,
            issuer=job.issuer_uscc,
            type_code=job.type_code,
            source=job.source,
            total=job.total,
            issued=counts.get("issued", 0),
            existing=counts.get("existing", 0),
            failed=counts.get("failed", 0),
            pending=counts.get("pending", 0),
            created_at=_utc(job.created_at) or dt.datetime.now(dt.UTC),
            finished_at=_utc(job.finished_at),
            last_progress_at=_utc(last),
        )

    def recent(self, limit: int = 20) -> list[JobProgress]:
        """The newest ``limit`` jobs, newest first."""
        with self.sessions() as s:
            ids = list(s.scalars(sa.select(BatchJob.id).order_by(BatchJob.id.desc()).limit(limit)))
        return [self.progress(job_id) for job_id in ids]

    def counts(self, job_id: int) -> dict[str, int]:
        with self.sessions() as s:
            rows = s.execute(
                sa.select(BatchRow.state, sa.func.count()).where(BatchRow.job_id == job_id).group_by(BatchRow.state)
            ).all()
        return {str(state): int(n) for state, n in rows}

    def results(self, job_id: int) -> list[tuple[int, str, str, str, str]]:
        with self.sessions() as s:
            return [
                (r.row_no, r.external_ref, r.state, r.identifier or "", r.error or "")
                for r in s.scalars(sa.select(BatchRow).where(BatchRow.job_id == job_id).order_by(BatchRow.row_no))
            ]

    def write_results(self, job_id: int, out: Path) -> None:
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(RESULT_COLUMNS)
            w.writerows(self.results(job_id))
        tmp.replace(out)

    def run_inline(self, job_id: int, *, progress: Callable[[int], None] = lambda n: None) -> dict[str, int]:
        """Issue every pending row in this process, in order (the last one finishes the job)."""
        for row_no in self.pending(job_id):
            self.run_row(job_id, row_no)
            progress(1)
        self.finish(job_id)  # nothing was pending: a rerun of a finished job
        return self.counts(job_id)


def chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
