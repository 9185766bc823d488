"""The SQL side of token bookkeeping (:class:`~idp.oauth.tokens.TokenStore` on ``TokenRecord``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from ..models import Citizen, TokenRecord
from .tokens import TokenStore

__all__ = ["SqlTokenStore"]


def _ts(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _epoch(value: dt.datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


_FIELDS = ("jti", "kind", "client_id", "citizen_id", "sid", "scope", "family_id",
           "parent_jti", "code_hash", "offline", "data")


def _row(r: TokenRecord) -> dict[str, Any]:
    out = {f: getattr(r, f) for f in _FIELDS}
    out.update(
        issued_at=_epoch(r.issued_at), expires_at=_epoch(r.expires_at),
        revoked_at=_epoch(r.revoked_at), consumed_at=_epoch(r.consumed_at),
    )
    return out


_INSERT_COLUMNS = (*_FIELDS, "issued_at", "expires_at")
_INSERTS: dict[tuple[int, bool], Any] = {}


def _insert_statement(n: int, *, for_citizen: bool = False) -> Any:
    """``INSERT`` of ``n`` records with named parameters, built once per shape.

    The same statement object each time lets SQLAlchemy reuse its compiled
    form (profiled: compiling a fresh multi-row INSERT per grant was a fifth
    of an SSO sign-in's CPU). ``for_citizen``: ``INSERT … SELECT … WHERE
    EXISTS (a live citizen :cid)``, so a grant for an account that was
    disabled or deleted meanwhile records nothing — the account
    check and the insert are one atomic statement, one round trip.
    """
    key = (n, for_citizen)
    stmt = _INSERTS.get(key)
    if stmt is None:
        table: sa.Table = TokenRecord.__table__  # type: ignore[assignment]
        if not for_citizen:
            stmt = sa.insert(table).values([
                {c: sa.bindparam(f"{c}_{i}", type_=table.c[c].type) for c in _INSERT_COLUMNS} for i in range(n)
            ])
        else:
            citizen: sa.Table = Citizen.__table__  # type: ignore[assignment]
            live = sa.exists().where(citizen.c.id == sa.bindparam("cid", type_=citizen.c.id.type),
                                     citizen.c.disabled.is_(False))
            selects = [
                sa.select(*[sa.bindparam(f"{c}_{i}", type_=table.c[c].type) for c in _INSERT_COLUMNS]).where(live)
                for i in range(n)
            ]
            source = selects[0] if n == 1 else sa.union_all(*selects)
            # RETURNING tells how many were written (rowcount is -1 for INSERT … SELECT here).
            stmt = sa.insert(table).from_select(list(_INSERT_COLUMNS), source).returning(table.c.jti)
        _INSERTS[key] = stmt
    return stmt


class SqlTokenStore(TokenStore):
    def __init__(self, db: Any) -> None:
        self._db = db

    def add(self, rows: Sequence[dict[str, Any]], *, also: Any = None) -> bool:
        """Insert the records of one grant, all or none.

        Without ``also`` this is one multi-row ``INSERT … VALUES (…), (…)``
        outside a transaction: one statement is atomic by itself, and it
        costs one round trip where BEGIN, INSERT, COMMIT cost three (the token
        endpoint's hot path). ``also(session)`` puts other work in the same
        transaction, which then is an ordinary one.

        Records of a citizen are written only while that citizen exists and
        is not disabled; returns False (nothing written) otherwise.
        """
        if not rows:
            return True
        values = [
            {**{k: v for k, v in row.items() if k in _FIELDS},
             "issued_at": _ts(row["issued_at"]), "expires_at": _ts(row["expires_at"])}
            for row in rows
        ]
        if also is None:
            params: dict[str, Any] = {}
            for i, v in enumerate(values):
                for c in _INSERT_COLUMNS:
                    params[f"{c}_{i}"] = v.get(c, False if c == "offline" else None)
            cid = rows[0].get("citizen_id")
            if cid is not None:
                params["cid"] = int(cid)
            if cid is None:
                self._db.all_rows(_insert_statement(len(values)), params)
                return True
            written = self._db.all_rows(_insert_statement(len(values), for_citizen=True), params)
            return len(written) == len(values)
        with self._db.session() as s:
            also(s)
            for v in values:
                s.add(TokenRecord(**v))
        return True

    def get(self, jti: str) -> dict[str, Any] | None:
        with self._db.single_statement() as s:
            r = s.get(TokenRecord, jti)
            return _row(r) if r is not None else None

    def take_refresh(self, jti: str, client_id: str, now: int) -> tuple[str, dict[str, Any] | None]:
        """Consume a refresh token of ``client_id`` in one transaction.

        ``("ok", row)`` when it was live (and is now consumed); otherwise the
        reason — ``reused`` (already rotated: the caller revokes the family),
        ``revoked``, ``expired``, ``unknown`` — with the row if there is one.
        A token of another client is ``unknown`` and stays untouched.
        The consuming UPDATE is one statement (atomic without a transaction,
        one round trip); the read that explains a failure runs only then.
        """
        with self._db.single_statement() as s:
            r = s.execute(
                sa.update(TokenRecord)
                .where(
                    TokenRecord.jti == jti, TokenRecord.kind == "refresh",
                    TokenRecord.client_id == client_id,
                    TokenRecord.consumed_at.is_(None), TokenRecord.revoked_at.is_(None),
                    TokenRecord.expires_at > _ts(now),
                )
                .values(consumed_at=_ts(now))
                .returning(TokenRecord)
            ).scalar_one_or_none()
            if r is not None:
                return "ok", _row(r)
            r = s.get(TokenRecord, jti)
            if r is None or r.kind != "refresh" or r.client_id != client_id:
                return "unknown", None
            row = _row(r)
            if r.consumed_at is not None:
                return "reused", row
            if r.revoked_at is not None:
                return "revoked", row
            return "expired", row

    def consume_refresh(self, jti: str, now: int) -> str:
        """Atomic: one UPDATE that succeeds only for a live, unconsumed token."""
        with self._db.session() as s:
            res = s.execute(
                sa.update(TokenRecord)
                .where(
                    TokenRecord.jti == jti, TokenRecord.kind == "refresh",
                    TokenRecord.consumed_at.is_(None), TokenRecord.revoked_at.is_(None),
                    TokenRecord.expires_at > _ts(now),
                )
                .values(consumed_at=_ts(now))
            )
            if res.rowcount == 1:
                return "ok"
            r = s.get(TokenRecord, jti)
            if r is None or r.kind != "refresh":
                return "unknown"
            if r.consumed_at is not None:
                return "reused"
            if r.revoked_at is not None:
                return "revoked"
            return "expired"

    def revoke(self, *, jtis: Iterable[str] = (), family_id: str | None = None,
               sid: str | None = None, citizen_id: Any = None, code_hash: str | None = None,
               include_offline: bool = True, now: int) -> list[tuple[str, str, int]]:
        conds = []
        jtis = list(jtis)
        if jtis:
            conds.append(TokenRecord.jti.in_(jtis))
        if family_id:
            conds.append(TokenRecord.family_id == family_id)
        if sid:
            conds.append(TokenRecord.sid == sid)
        if citizen_id is not None:
            conds.append(TokenRecord.citizen_id == citizen_id)
        if code_hash:
            conds.append(TokenRecord.code_hash == code_hash)
        if not conds:
            return []
        where = [sa.or_(*conds), TokenRecord.revoked_at.is_(None), TokenRecord.expires_at > _ts(now)]
        if not include_offline:
            where.append(TokenRecord.offline.is_(False))
        with self._db.session() as s:
            rows = s.execute(
                sa.select(TokenRecord.jti, TokenRecord.kind, TokenRecord.expires_at).where(*where)
            ).all()
            if rows:
                s.execute(
                    sa.update(TokenRecord)
                    .where(TokenRecord.jti.in_([r.jti for r in rows]))
                    .values(revoked_at=_ts(now))
                )
        return [(r.jti, r.kind, _epoch(r.expires_at) or 0) for r in rows]
