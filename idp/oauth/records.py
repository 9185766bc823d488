"""The SQL side of token bookkeeping (:class:`~idp.oauth.tokens.TokenStore` on ``TokenRecord``)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from ..models import Citizen, TokenRecord
from .pgdirect import Direct, json_param, one_connection
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
        retried_at=_epoch(r.retried_at),
    )
    return out


def _stamp(epoch: int) -> Any:
    """``epoch`` as a typed SQL literal (inside COALESCE/CASE the column type is not inferred)."""
    return sa.literal(_ts(epoch), TokenRecord.__table__.c.consumed_at.type)


_INSERT_COLUMNS = (*_FIELDS, "issued_at", "expires_at")
_INSERTS: dict[tuple[int, bool], Any] = {}
_PARAM_NAMES: dict[int, tuple[tuple[str, str], ...]] = {}


def _param_names(i: int) -> tuple[tuple[str, str], ...]:
    """``(column, bind parameter name)`` of record ``i`` of an ``INSERT`` (formatted once, not per grant)."""
    names = _PARAM_NAMES.get(i)
    if names is None:
        names = _PARAM_NAMES[i] = tuple((c, f"{c}_{i}") for c in _INSERT_COLUMNS)
    return names


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


_TAKES: dict[tuple[bool, bool], Any] = {}


def _take_statement(grace: bool, with_jkt: bool) -> Any:
    """PostgreSQL: the refresh token's conditional ``UPDATE … RETURNING`` and its citizen, one statement.

    ``WITH taken AS (UPDATE … RETURNING *) SELECT taken.*, citizen … LEFT JOIN``:
    the same conditions as the ORM form in :meth:`SqlTokenStore.take_refresh`,
    built once per shape with bind parameters (``t_jti``, ``t_client``, ``t_now``,
    ``t_cutoff`` = now − grace, ``t_jkt``; not column names, which an UPDATE would take as SET values), so the refresh grant reads the citizen
    it needs for the ID token and the userinfo snapshot without a second round
    trip (issue 16). A citizen disabled or deleted meanwhile still stops the
    grant: its state comes back with the row, and the new records are written
    only while the account is live (``_insert_statement(for_citizen=True)``).
    """
    key = (grace, with_jkt)
    stmt = _TAKES.get(key)
    if stmt is None:
        t: sa.Table = TokenRecord.__table__  # type: ignore[assignment]
        c: sa.Table = Citizen.__table__  # type: ignore[assignment]
        stamp = sa.bindparam("t_now", type_=t.c.consumed_at.type)
        bound_jkt = t.c.data["cnf"]["jkt"].as_string()
        same_key = (sa.or_(bound_jkt.is_(None), bound_jkt == sa.bindparam("t_jkt", type_=sa.String()))
                    if with_jkt else bound_jkt.is_(None))
        if grace:
            usable = sa.or_(t.c.consumed_at.is_(None), sa.and_(
                t.c.retried_at.is_(None), t.c.consumed_at >= sa.bindparam("t_cutoff", type_=t.c.consumed_at.type)))
            values: dict[str, Any] = {
                "consumed_at": sa.func.coalesce(t.c.consumed_at, stamp),
                "retried_at": sa.case((t.c.consumed_at.is_(None), t.c.retried_at), else_=stamp),
            }
        else:
            usable = t.c.consumed_at.is_(None)
            values = {"consumed_at": stamp}
        taken = (
            sa.update(t)
            .where(t.c.jti == sa.bindparam("t_jti", type_=sa.String()), t.c.kind == "refresh", t.c.client_id == sa.bindparam("t_client", type_=sa.String()),
                   usable, same_key, t.c.revoked_at.is_(None), t.c.expires_at > stamp)
            .values(**values)
            .returning(*t.c)
            .cte("taken")
        )
        stmt = sa.select(
            taken, c.c.public_id.label("c_public_id"), c.c.name.label("c_name"), c.c.phone.label("c_phone"),
            c.c.email.label("c_email"), c.c.disabled.label("c_disabled"),
            # The take commits without waiting for its WAL flush: the grant's INSERT of the
            # new tokens commits synchronously right after it, on the same connection, and
            # a flush covers everything written before it, so the client never holds tokens
            # whose predecessor's consumption could be lost. A crash between the two loses
            # at most the consumption of a token whose successors were never sent: the
            # client's retry with it then succeeds, as it should (issue 16; the same
            # reasoning as certstore's serial allocation).
            sa.func.set_config("synchronous_commit", "off", sa.true()).label("t_async_commit"),
        ).select_from(taken.outerjoin(c, c.c.id == taken.c.citizen_id))
        _TAKES[key] = stmt
    return stmt


class SqlTokenStore(TokenStore):
    def __init__(self, db: Any) -> None:
        self._db = db
        self._direct: dict[Any, Direct] = {}
        """The hot statements as :class:`~idp.oauth.pgdirect.Direct` (PostgreSQL only)."""

    @contextlib.contextmanager
    def one_connection(self) -> Iterator[None]:
        """The hot statements of this block share one pooled connection (:func:`~idp.oauth.pgdirect.one_connection`)."""
        if self._db.dialect != "postgresql":
            yield
            return
        with one_connection(self._db.engine):
            yield

    def _run(self, key: Any, statement: Any, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        direct = self._direct.get(key)
        if direct is None:
            direct = self._direct[key] = Direct(statement, self._db.engine)
        return direct.rows(self._db.engine, params)

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
                for c, name in _param_names(i):
                    params[name] = v.get(c, False if c == "offline" else None)
            cid = rows[0].get("citizen_id")
            if cid is not None:
                params["cid"] = int(cid)
            if self._db.dialect == "postgresql":  # the same statement, straight on psycopg (issue 16)
                for i in range(len(values)):
                    params[f"data_{i}"] = json_param(params[f"data_{i}"])
                key = ("insert", len(values), cid is not None)
                _, written = self._run(key, _insert_statement(len(values), for_citizen=cid is not None), params)
                return cid is None or len(written) == len(values)
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

    def take_refresh(self, jti: str, client_id: str, now: int, *, grace_seconds: int = 0,
                     jkt: str | None = None) -> tuple[str, dict[str, Any] | None]:
        """Consume a refresh token of ``client_id``: one conditional UPDATE, atomic by itself.

        ``("ok", row)`` when it was live (and is now consumed). ``("retry", row)``
        when it was consumed less than ``grace_seconds`` ago and never retried:
        its own client may present it once more (a response lost to a crash
        or a timeout; issue 20 §1), and it is now marked retried. Otherwise the
        reason — ``reused`` (the caller revokes the family), ``revoked``,
        ``expired``, ``unknown`` — with the row if there is one. A live token of
        another client is ``unknown`` and stays untouched; a rotated one is
        ``reused`` (it can only have been stolen), inside the window too.
        One round trip on both accepting paths; the read that explains a
        failure runs only then.

        A token bound to a DPoP key (``data.cnf.jkt``, RFC 9449 §5) is taken
        only with a proof of that key (``jkt``), the retry too: otherwise
        ``wrong_key`` and the token is untouched (a thief without the key
        cannot burn it). A rotated one is still ``reused``.
        """
        table = TokenRecord
        if self._db.dialect == "postgresql":
            # One prebuilt statement: the take and the citizen's claims (issue 16).
            shape = (grace_seconds > 0, jkt is not None)
            names, got = self._run(("take", *shape), _take_statement(*shape), {
                "t_jti": jti, "t_client": client_id, "t_now": _ts(now),
                "t_cutoff": _ts(now - grace_seconds), "t_jkt": jkt})
            if got:
                m = dict(zip(names, got[0], strict=True))
                row = {f: m[f] for f in _FIELDS}
                row.update({k: _epoch(m[k]) for k in ("issued_at", "expires_at", "revoked_at",
                                                      "consumed_at", "retried_at")})
                if m["c_public_id"] is not None:
                    row["citizen"] = {"id": int(m["citizen_id"]), "public_id": m["c_public_id"],
                                      "name": m["c_name"], "phone": m["c_phone"], "email": m["c_email"],
                                      "disabled": bool(m["c_disabled"])}
                return ("retry" if m["retried_at"] is not None else "ok"), row
            return self._why_not_taken(jti, client_id, now)
        bound_jkt = table.data["cnf"]["jkt"].as_string()
        same_key = bound_jkt.is_(None) if jkt is None else sa.or_(bound_jkt.is_(None), bound_jkt == jkt)
        if grace_seconds > 0:
            stamp = _stamp(now)
            usable = sa.or_(
                table.consumed_at.is_(None),
                # RFC 9700 §4.14.2 allows a server to tell an honest retry from
                # reuse; here: the same client, once, within the window.
                # A bound token's retry must carry the same DPoP key (same_key below).
                sa.and_(table.retried_at.is_(None), table.consumed_at >= _ts(now - grace_seconds)),
            )
            values: dict[str, Any] = {
                "consumed_at": sa.func.coalesce(table.consumed_at, stamp),
                # Set only on the retry (SET expressions read the old row).
                "retried_at": sa.case((table.consumed_at.is_(None), table.retried_at), else_=stamp),
            }
        else:
            usable = table.consumed_at.is_(None)
            values = {"consumed_at": _ts(now)}
        with self._db.single_statement() as s:
            r = s.execute(
                sa.update(table)
                .where(
                    table.jti == jti, table.kind == "refresh", table.client_id == client_id,
                    usable, same_key, table.revoked_at.is_(None), table.expires_at > _ts(now),
                )
                .values(**values)
                .returning(table)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if r is not None:
                # A live token has retried_at NULL (release_refresh keeps it so).
                return ("retry" if r.retried_at is not None else "ok"), _row(r)
        return self._why_not_taken(jti, client_id, now)

    def _why_not_taken(self, jti: str, client_id: str, now: int) -> tuple[str, dict[str, Any] | None]:
        """Why :meth:`take_refresh` took nothing (a read that runs only on that path)."""
        table = TokenRecord
        with self._db.single_statement() as s:
            r = s.get(table, jti)
            if r is None or r.kind != "refresh":
                return "unknown", None
            if r.client_id != client_id:
                # A rotated token in another client's hands was stolen
                # (RFC 9700 §4.14.2: reuse by another client revokes the
                # family). A live one stays untouched: refusing it is enough.
                return ("reused", _row(r)) if r.consumed_at is not None else ("unknown", None)
            row = _row(r)
            if r.consumed_at is not None:
                return "reused", row
            if r.revoked_at is not None:
                return "revoked", row
            if (_epoch(r.expires_at) or 0) > now:
                return "wrong_key", row  # live, of this client: only the key differs
            return "expired", row

    def release_refresh(self, jti: str, status: str, now: int, *, drop: Iterable[str] = ()) -> bool:
        """Undo :meth:`take_refresh` (``status`` ``ok`` or ``retry`` at ``now``) after a failure.

        For a request that failed on a backing service after it took the
        token: the token is as before (consumed again only by a later take),
        and ``drop`` (what the failed request may have stored: its child
        tokens, never delivered) is revoked. One transaction; False when the
        take was not the last thing to happen to the token (nothing undone then).
        """
        drop = list(drop)
        stamp = _ts(now)
        with self._db.session() as s:
            if drop:
                s.execute(
                    sa.update(TokenRecord)
                    .where(TokenRecord.jti.in_(drop), TokenRecord.revoked_at.is_(None))
                    .values(revoked_at=stamp)
                    .execution_options(synchronize_session=False)
                )
            if status == "retry":
                where = [TokenRecord.retried_at == stamp]
                values: dict[str, Any] = {"retried_at": None}
            else:
                where = [TokenRecord.consumed_at == stamp, TokenRecord.retried_at.is_(None)]
                values = {"consumed_at": None}
            res = s.execute(
                sa.update(TokenRecord).where(TokenRecord.jti == jti, *where).values(**values)
                .execution_options(synchronize_session=False)
            )
            return bool(res.rowcount == 1)

    def supersede_children(self, parent_jti: str, now: int) -> list[str]:
        """Revoke the refresh tokens rotated from ``parent_jti`` so far; their jtis.

        Called when a retry of the parent issues a new child: the earlier
        children were never delivered (or the client would not retry), so
        one live chain remains. They are marked consumed too, so presenting
        one later counts as reuse and revokes the family: only a party that
        got a response the retrying client did not can hold one.
        """
        t: sa.Table = TokenRecord.__table__  # type: ignore[assignment]
        rows = self._db.all_rows(
            sa.update(t)
            .where(t.c.parent_jti == parent_jti, t.c.kind == "refresh", t.c.revoked_at.is_(None))
            .values(revoked_at=_ts(now), consumed_at=sa.func.coalesce(t.c.consumed_at, _stamp(now)))
            .returning(t.c.jti),
            {},
        )
        return [r[0] for r in rows]

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
