"""Status lists on the certstore side: positions, publishing, and fetching them whole.

Issuer side (:class:`StatusListService`):

* Every certificate gets one position in one of its issuer's lists (at
  least 131,072 entries each), drawn uniformly at random among the free
  positions (:meth:`StatusListService.draw`: ``secrets.randbelow``, drawn
  again while taken). A list takes new certificates only until half of it is
  used, so a draw rarely collides and the statuses of a list's certificates
  stay spread over the whole list; then a new list is opened.
* The position is *taken* — a row in ``cert_status_slots``, whose primary
  key forbids reuse, and the list's ``used`` count — by the same transaction
  that stores the certificate (:func:`take`; on PostgreSQL, CTEs of the one
  statement in :mod:`certstore.issue_store`), never before it: a request that
  fails or dies between the draw and the store (database outage, crash,
  signing error) leaves no slot without a certificate (issue 20 §3). Should
  another certificate take the drawn position in between, the store raises
  :class:`SlotTaken` and issuance draws again and signs again.
* The QR payload carries the list's short id and the position
  (``QrClaims.status_list`` / ``status_index``); the list's URI is
  ``<public_url>/status-lists/<id>``, and the trust list tells other regions
  the base URL.
* The list is served at ``GET /status-lists/<id>`` as a Status List Token
  (:mod:`signing.statuslist`) signed by the issuing agency's signer. The bits
  are rebuilt from the certificates pointing into the list whenever the
  list's ``version`` — bumped in the same transaction as each status change —
  differs from the signed token's, or the token is older than the TTL: so a
  revocation is visible on the very next fetch, and an idle list is re-signed
  lazily at most once per TTL.

Verifier side (:class:`StatusListCache`): fetch the *whole* list by its URI
(nothing about the certificate goes into the request), verify its signature
with the issuer key from the trust list and its age, cache it in memory and on
disk, and say how old the answer is ("status list fetched 3 minutes ago").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from keys.certs import PublicKey, public_key_id
from keys.keyring import Keyring
from signing.statuslist import (
    INVALID,
    SUSPENDED,
    VALID,
    StatusList,
    StatusListError,
    StatusListToken,
    describe_age,
    sign_status_list,
    verify_status_list_token,
)

from .db import session_scope
from .errors import NotFound, ServiceUnavailable
from .lifecycle import status_list_value
from .models import STATUS_VALID, Certificate, StatusListRow, StatusSlot
from .settings import CertstoreSettings

__all__ = [
    "Slot",
    "SlotTaken",
    "take",
    "SignedList",
    "StatusListService",
    "FetchResponse",
    "Fetch",
    "requests_fetch",
    "StatusAnswer",
    "StatusListCache",
    "FILL_LIMIT",
]

logger = logging.getLogger(__name__)

FILL_LIMIT = 0.5
"""A list takes new certificates until this share of it is used."""
_MAX_DRAWS = 64


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Slot:
    list_id: str
    index: int


class SlotTaken(Exception):
    """The drawn position was taken by another certificate between the draw and the store."""


def take(s: Session, slot: Slot, *, at: dt.datetime) -> None:
    """Take ``slot`` inside ``s``'s transaction (the certificate's), or raise :class:`SlotTaken`."""
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    list_id = int(slot.list_id)
    taken = s.execute(
        insert(StatusSlot)
        .values(list_id=list_id, idx=slot.index, created_at=at)
        .on_conflict_do_nothing(index_elements=["list_id", "idx"])
        .returning(StatusSlot.idx)
    ).first()
    if taken is None:
        raise SlotTaken(f"position {slot.index} of list {list_id}")
    s.execute(sa.update(StatusListRow).where(StatusListRow.id == list_id).values(used=StatusListRow.used + 1))


@dataclass(frozen=True)
class SignedList:
    token: str
    etag: str
    issued_at: dt.datetime
    ttl: int


class StatusListService:
    """The issuer side: allocate positions, bump versions, serve signed lists."""

    def __init__(
        self,
        settings: CertstoreSettings,
        sessions: sessionmaker[Session],
        keyring: Keyring,
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.keyring = keyring
        self.clock = clock

    @property
    def base_url(self) -> str:
        """What other regions prefix a list id with (exported in the trust list)."""
        return f"{self.settings.public_url}/status-lists/"

    def uri(self, list_id: str) -> str:
        return self.base_url + list_id

    # -- positions ---------------------------------------------------------

    def draw(self, issuer_uscc: str) -> Slot:
        """A random position free now in the issuer's open list, *not* taken yet.

        Writes nothing, except a new empty list when the issuer has no open
        one (an empty list is no leak: the next certificates fill it). The
        caller takes the position in the transaction that stores the
        certificate (:func:`take`).
        """
        with session_scope(self.sessions) as s:
            row = s.scalar(
                sa.select(StatusListRow)
                .where(StatusListRow.issuer_uscc == issuer_uscc, StatusListRow.used < StatusListRow.size * FILL_LIMIT)
                .order_by(StatusListRow.id)
                .limit(1)
            )
            if row is None:
                row = StatusListRow(
                    issuer_uscc=issuer_uscc, size=self.settings.status_list_size, bits=2, used=0, version=1,
                    token_version=0,
                )
                s.add(row)
                s.flush()
            list_id, size = row.id, row.size
            for _ in range(_MAX_DRAWS):
                index = secrets.randbelow(size)
                used = s.scalar(sa.select(StatusSlot.idx).where(StatusSlot.list_id == list_id, StatusSlot.idx == index))
                if used is None:
                    return Slot(str(list_id), index)
        raise ServiceUnavailable("no free status-list position could be found; try again")

    def allocate(self, issuer_uscc: str) -> Slot:
        """Draw a position and take it at once, in its own transaction (tools and tests).

        Issuance does not use this: a position taken here and a certificate
        stored later could be parted by a failure (issue 20 §3).
        """
        for _ in range(4):
            slot = self.draw(issuer_uscc)
            try:
                with session_scope(self.sessions) as s:
                    take(s, slot, at=dt.datetime.now(dt.UTC))
                return slot
            except SlotTaken:
                continue
        raise ServiceUnavailable("no free status-list position could be found; try again")

    @staticmethod
    def bump(s: Session, list_id: str | None) -> None:
        """Mark a list changed (call inside the transaction that changes a status)."""
        if not list_id or not list_id.isdigit():
            return
        s.execute(
            sa.update(StatusListRow).where(StatusListRow.id == int(list_id)).values(version=StatusListRow.version + 1)
        )

    # -- publishing --------------------------------------------------------

    def build(self, s: Session, row: StatusListRow) -> StatusList:
        lst = StatusList(size=row.size, bits=row.bits)
        stmt = sa.select(Certificate.status_index, Certificate.status).where(
            Certificate.status_list == str(row.id), Certificate.status != STATUS_VALID
        )
        for index, status in s.execute(stmt):
            if index is not None and 0 <= index < row.size:
                lst.set(index, status_list_value(status))
        return lst

    def signed(self, list_id: str) -> SignedList:
        """The current signed token of a list (re-signed when changed or older than the TTL)."""
        if not list_id.isdigit() or len(list_id) > 12:
            raise NotFound("there is no status list with that id", field="id")
        ttl = self.settings.status_list_ttl
        now = self.clock()
        with self.sessions() as s:
            row = s.get(StatusListRow, int(list_id))
            if row is None:
                raise NotFound("there is no status list with that id", field="id")
            fresh = (
                row.token is not None
                and row.token_version == row.version
                and row.token_iat is not None
                and now - _aware(row.token_iat) < dt.timedelta(seconds=ttl)
            )
            if fresh:
                assert row.token is not None and row.token_iat is not None
                return self._signed(row.token, _aware(row.token_iat), ttl)
            version = row.version
            lst = self.build(s, row)
            issuer = row.issuer_uscc
        signer = self.keyring.agency_signer(issuer)
        iat = now.replace(microsecond=0)
        token = sign_status_list(
            lst,
            signer,
            uri=self.uri(list_id),
            issued_at=iat,
            lifetime=dt.timedelta(seconds=self.settings.status_list_lifetime),
            ttl=ttl,
        )
        with session_scope(self.sessions) as s:
            s.execute(
                sa.update(StatusListRow)
                .where(StatusListRow.id == int(list_id), StatusListRow.version == version)
                .values(token=token, token_version=version, token_iat=iat)
            )
        logger.info("status list %s re-signed (version %d)", list_id, version)
        return self._signed(token, iat, ttl)

    @staticmethod
    def _signed(token: str, iat: dt.datetime, ttl: int) -> SignedList:
        etag = '"' + hashlib.sha256(token.encode()).hexdigest()[:32] + '"'
        return SignedList(token, etag, iat, ttl)


# -- verifier side ----------------------------------------------------------------


@dataclass(frozen=True)
class FetchResponse:
    status: int
    body: bytes


class Fetch(Protocol):
    def __call__(self, url: str) -> FetchResponse: ...


STATUS_LIST_MAX_BYTES = 32 * 1024 * 1024
"""Largest status list token fetched (the decoder's own limits are below this)."""


def requests_fetch(url: str, *, allow_loopback: bool = False) -> FetchResponse:
    """GET ``url`` (https, public address; loopback only in the demo): no cookies, no redirects, at most 32 MiB, 10 s in all."""
    from .remote import FetchFailed, TooLarge, fetch_capped

    try:
        got = fetch_capped(
            url, STATUS_LIST_MAX_BYTES, timeout=(5.0, 10.0), headers={"Accept": "application/statuslist+jwt"},
            allow_loopback=allow_loopback,
        )
    except FetchFailed as e:
        raise StatusListError(f"the status list could not be fetched ({e})", reason="fetch") from None
    except TooLarge:
        raise StatusListError("the status list is larger than 32 MiB; refused", reason="fetch") from None
    return FetchResponse(got.status, got.body)


def _key_ids(keys: Sequence[PublicKey]) -> tuple[bytes, ...]:
    return tuple(public_key_id(k) for k in keys)


@dataclass(frozen=True)
class StatusAnswer:
    """What the status list says about one position, and how old that knowledge is."""

    ok: bool
    value: int | None
    reason: str
    fetched_at: dt.datetime | None = None


@dataclass
class _Cached:
    token: str
    fetched_at: dt.datetime
    verified: StatusListToken | None = None
    """The token once verified (signature checked, list inflated): a cache hit reuses it."""
    verified_with: tuple[bytes, ...] = ()
    """Which keys it was verified against: a lookup with other keys verifies again."""


class StatusListCache:
    """Fetches status lists whole, verifies and caches them (memory, optionally disk)."""

    def __init__(
        self,
        fetch: Fetch = requests_fetch,
        *,
        cache_dir: Path | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        max_age: dt.timedelta = dt.timedelta(hours=24),
        default_ttl: int = 300,
    ) -> None:
        self.fetch = fetch
        self.cache_dir = cache_dir
        self.clock = clock
        self.max_age = max_age
        self.default_ttl = default_ttl
        self._mem: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def _path(self, uri: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / (hashlib.sha256(uri.encode()).hexdigest()[:32] + ".json")

    def _load(self, uri: str) -> _Cached | None:
        with self._lock:
            hit = self._mem.get(uri)
        if hit is not None:
            return hit
        path = self._path(uri)
        if path is None or not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            hit = _Cached(str(data["token"]), dt.datetime.fromisoformat(data["fetched_at"]))
        except (OSError, ValueError, KeyError):
            return None
        with self._lock:
            self._mem[uri] = hit
        return hit

    def _store(self, uri: str, hit: _Cached) -> None:
        with self._lock:
            self._mem[uri] = hit
        path = self._path(uri)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"uri": uri, "token": hit.token, "fetched_at": hit.fetched_at.isoformat()}))
                tmp.replace(path)
            except OSError:
                logger.warning("status list cache %s is not writable", path.parent)

    def _refresh(self, uri: str) -> _Cached:
        resp = self.fetch(uri)
        if resp.status != 200:
            raise StatusListError(f"the status list server answered HTTP {resp.status}", reason="fetch")
        hit = _Cached(resp.body.decode("ascii", "replace").strip(), self.clock())
        return hit

    def lookup(self, uri: str, index: int, keys: Sequence[PublicKey]) -> StatusAnswer:
        """The status at ``index`` of the list at ``uri``, signed by one of ``keys``."""
        now = self.clock()
        hit = self._load(uri)
        problem: str | None = None
        if hit is not None:
            try:
                tok = self._verified(hit, keys, uri, now)
                ttl = tok.ttl if tok.ttl is not None else self.default_ttl
                if now - hit.fetched_at < dt.timedelta(seconds=ttl):
                    return self._answer(tok.status(index), hit.fetched_at, now)
            except StatusListError as e:
                problem = str(e)
        try:
            fresh = self._refresh(uri)
            tok = verify_status_list_token(fresh.token, keys, uri=uri, now=now, max_age=self.max_age)
        except StatusListError as e:
            if hit is not None and problem is None:
                # Offline: the cached list is past its TTL but still within the allowed age.
                try:
                    tok = verify_status_list_token(hit.token, keys, uri=uri, now=now, max_age=self.max_age)
                    answer = self._answer(tok.status(index), hit.fetched_at, now)
                    return StatusAnswer(answer.ok, answer.value, answer.reason + f"; could not refresh it: {e}", hit.fetched_at)
                except StatusListError:
                    pass
            return StatusAnswer(False, None, f"the status cannot be confirmed: {e}")
        fresh.verified, fresh.verified_with = tok, _key_ids(keys)
        self._store(uri, fresh)
        return self._answer(tok.status(index), fresh.fetched_at, now)

    def _verified(self, hit: _Cached, keys: Sequence[PublicKey], uri: str, now: dt.datetime) -> StatusListToken:
        tok = hit.verified
        ids = _key_ids(keys)
        if tok is None or hit.verified_with != ids:
            tok = verify_status_list_token(hit.token, keys, uri=uri, now=now, max_age=self.max_age)
            hit.verified, hit.verified_with = tok, ids
            return tok
        # Verified before (with one of these keys): only its age can have changed since.
        if tok.expires_at is not None and now >= tok.expires_at:
            raise StatusListError("the cached status list has expired", reason="expired")
        if now - tok.issued_at > self.max_age:
            raise StatusListError(
                f"the status list is {describe_age(now - tok.issued_at)} old, older than the allowed "
                f"{describe_age(self.max_age)}; the status cannot be confirmed",
                reason="too_old",
            )
        return tok

    @staticmethod
    def _answer(value: int, fetched_at: dt.datetime, now: dt.datetime) -> StatusAnswer:
        age = f"status list fetched {describe_age(now - fetched_at)} ago"
        if value == VALID:
            return StatusAnswer(True, value, f"valid according to the issuer's status list ({age})", fetched_at)
        if value == SUSPENDED:
            return StatusAnswer(False, value, f"the certificate is suspended (暂扣) according to the issuer's status list ({age})", fetched_at)
        if value == INVALID:
            return StatusAnswer(
                False, value, f"the certificate is revoked or otherwise no longer valid according to the issuer's status list ({age})", fetched_at
            )
        return StatusAnswer(False, value, f"the status list holds an unknown status 0x{value:02x} ({age})", fetched_at)

    def describe(self) -> list[dict[str, Any]]:
        """The cached lists and their age (``certstore status cache``)."""
        now = self.clock()
        with self._lock:
            items = list(self._mem.items())
        return [{"uri": u, "fetched": describe_age(now - c.fetched_at) + " ago"} for u, c in items]
