"""SSO sessions: held in Redis, shared by every idp instance, ended exactly once.

Issue 4 §1. A session carries ``sid``, ``auth_time``, ``acr``, ``amr``, the
channel, and the set of clients it has signed in to (the index sid → clients
that single sign-out walks). It lives in one Redis hash whose logical deadline
is ``min(last use + idle, created + absolute)``.

Why not let Redis expiry alone end sessions: back-channel logout must fire on
idle and absolute expiry too (issue 4 §4), and a key that Redis has already
dropped cannot say which relying parties to tell. So the hash outlives its
logical deadline by :data:`GRACE_SECONDS`, a sorted set holds every session's
deadline, and :meth:`SessionStore.sweep_expired` ends the overdue ones through
the same :meth:`SessionStore.end` as every other sign-out, which fires the
``on_session_end`` hooks. A session read after its deadline is treated as
ended (and ended on the spot).

Key layout (docs/redis-ha.md). A session's keys — its hash ``s:<sid>``, its
portals ``c:<sid>``, its CAS tickets ``t:<sid>`` — and the expiry index entry
they are checked against move together: the read, create and end scripts
touch them at once. On one Redis server or a Sentinel set that is every key
(``<prefix>sso:s:<sid>``, one index ``<prefix>sso:expiry``, as before). On a
Redis Cluster the sessions are spread over :data:`SESSION_SHARDS` hash tags
``{sso:<n>}`` (``n`` from the sid), each with its own expiry index, so each
script stays in one slot; the citizen's set of sessions ``u:<citizen>`` is in
its own slot, written *before* the session (a dangling sid there is dropped
when read; a session missing from it could escape "sign out everywhere") and
cleaned after the end script. Creating and ending a session wait for the
replicas (``WAIT``, :func:`keys.redis_urls.execute_durably`) when the URL names
a Sentinel set or a Cluster: a sign-out a failover forgot would bring the
session back.

The browser holds an opaque cookie ``<sid>.<secret>``; only a SHA-256 of the
secret is stored, so the ``sid`` that relying parties see in ID and logout
tokens is not enough to take over a session. :meth:`SessionStore.end` is one
Lua script: of two instances ending the same session at once, exactly one gets
the session back and fires the hooks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from keys.redis_urls import (
    bucket_of,
    durable_pipeline,
    execute_durably,
    hash_tag,
    is_cluster,
    run_script,
    wait_args,
)

from .session_scripts import CREATE as _CREATE
from .session_scripts import END as _END
from .session_scripts import GET as _GET

__all__ = [
    "Session",
    "SessionStore",
    "SessionEndHook",
    "GRACE_SECONDS",
    "MAX_CAS_TICKETS",
    "END_REASONS",
    "SESSION_SHARDS",
]

logger = logging.getLogger(__name__)

GRACE_SECONDS = 24 * 3600
"""How long a session's data outlives its deadline so expiry can still notify."""

SESSION_SHARDS = 256
"""On a Redis Cluster: hash tags the sessions are spread over (each with its own expiry index)."""

MAX_CAS_TICKETS = 20
"""CAS tickets remembered per session for single logout (the first ones: each is a service session)."""

END_REASONS = (
    "logout",  # RP-initiated or idp logout page
    "account",  # signed out from the account page
    "admin",  # an administrator ended it
    "idle_timeout",
    "absolute_timeout",
    "password_change",
    "sign_out_everywhere",
)


@dataclass(frozen=True)
class Session:
    """One SSO session as stored."""

    sid: str
    """Session id, sent to relying parties (ID token ``sid``, logout token)."""
    citizen_id: str
    auth_time: int
    """When the citizen last authenticated (seconds since the epoch)."""
    acr: str
    amr: tuple[str, ...]
    channel: str
    """``browser``, ``app``, ``kiosk`` …"""
    ip: str
    user_agent: str
    created_at: int
    last_seen: int
    clients: frozenset[str] = field(default_factory=frozenset)
    """Filled by :meth:`SessionStore.end` and :meth:`SessionStore.list_for_citizen`."""
    cas_tickets: tuple[tuple[str, str], ...] = ()
    """(client id, service ticket) of each CAS ticket issued in the session, filled by
    :meth:`SessionStore.end`: the ``SessionIndex`` of each CAS single logout (issue 21 §3)."""

    def __repr__(self) -> str:
        return f"Session(sid={self.sid!r}, channel={self.channel!r})"


SessionEndHook = Callable[[Session, str], None]

def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionStore:
    """Create, read, step up and end SSO sessions.

    ``keyspace`` is an ``idp.redis.Keyspace`` or a plain prefix string: every
    key this store writes starts with it.
    """

    def __init__(
        self,
        redis: Any,
        keyspace: Any,
        idle_seconds: int,
        max_seconds: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._r = redis
        prefix = getattr(keyspace, "base", keyspace)
        self._p = f"{prefix}sso:"
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self._clock = clock
        self._hooks: list[SessionEndHook] = []
        self._sharded = is_cluster(redis)
        self._get = redis.register_script(_GET)
        self._end = redis.register_script(_END)
        self._create = redis.register_script(_CREATE)

    # keys -------------------------------------------------------------
    def _tag(self, sid: str) -> str:
        """``''`` on one server; ``{sso:<n>}:`` on a Cluster (the session's slot)."""
        return hash_tag(f"sso:{bucket_of(sid, SESSION_SHARDS)}") + ":" if self._sharded else ""

    def _k(self, sid: str) -> str:
        return f"{self._p}{self._tag(sid)}s:{sid}"

    def _kc(self, sid: str) -> str:
        return f"{self._p}{self._tag(sid)}c:{sid}"

    def _kt(self, sid: str) -> str:
        return f"{self._p}{self._tag(sid)}t:{sid}"

    def _kexp(self, sid: str) -> str:
        """The expiry index the session ``sid`` is in."""
        return f"{self._p}{self._tag(sid)}expiry"

    def _expiry_indexes(self) -> list[str]:
        if not self._sharded:
            return [f"{self._p}expiry"]
        return [f"{self._p}{hash_tag(f'sso:{n}')}:expiry" for n in range(SESSION_SHARDS)]

    @property
    def _kcit(self) -> str:
        return f"{self._p}u:"

    # hooks ------------------------------------------------------------
    def on_session_end(self, callback: SessionEndHook) -> SessionEndHook:
        """Register ``callback(session, reason)``; called once per ended session.

        Usable as a decorator. A hook that raises is logged and the others
        still run: ending a session must not fail because one listener did.
        """
        self._hooks.append(callback)
        return callback

    def _fire(self, session: Session, reason: str) -> None:
        for hook in self._hooks:
            try:
                hook(session, reason)
            except Exception:
                logger.exception("session end hook %r failed for sid %s", hook, session.sid)

    # life cycle -------------------------------------------------------
    def create(
        self,
        citizen_id: str,
        auth_time: int,
        acr: str,
        amr: Iterable[str],
        channel: str,
        ip: str,
        user_agent: str,
        *,
        also: Any = None,
    ) -> tuple[Session, str]:
        """Start a session; returns it and the cookie value for the browser.

        ``also(pipe, session)`` adds commands to the session's own round trip
        (for a caller that must write something bound to the new ``sid``).
        """
        now = int(self._clock())
        sid = secrets.token_urlsafe(16)
        secret = secrets.token_urlsafe(32)
        session = Session(
            sid=sid,
            citizen_id=str(citizen_id),
            auth_time=int(auth_time),
            acr=acr,
            amr=tuple(amr),
            channel=channel,
            ip=ip or "",
            user_agent=(user_agent or "")[:300],
            created_at=now,
            last_seen=now,
        )
        deadline = min(now + self.idle_seconds, now + self.max_seconds)
        mapping = self._to_hash(session)
        mapping["cookie"] = _hash_secret(secret)
        citizen_set = self._kcit + session.citizen_id
        keys = [self._k(sid), self._kexp(sid)]
        if self._sharded:
            # Another slot: the citizen's set first, so no session is ever missing from it.
            self._r.sadd(citizen_set, sid)
        else:
            keys.append(citizen_set)
        fields = [x for kv in mapping.items() for x in kv]
        args = [deadline - now + GRACE_SECONDS, sid, deadline, *fields]
        if also is None:
            run_script(self._r, self._create, keys, args)  # with Sentinel or Cluster: WAIT for replicas
        else:
            pipe = durable_pipeline(self._r, self._k(sid))
            self._create(keys=keys, args=args, client=pipe)
            also(pipe, session)  # keys of the session's slot only
            execute_durably(pipe)
        logger.info("session %s started (channel %s)", sid, channel)
        return session, f"{sid}.{secret}"

    def get(self, sid: str, *, touch: bool = True, _cookie_hash: str = "") -> Session | None:
        """The live session ``sid``, or ``None``; touching extends its idle deadline."""
        if not sid or len(sid) > 64:
            return None
        res = self._get(
            keys=[self._k(sid), self._kexp(sid)],
            args=[
                int(self._clock()),
                self.idle_seconds,
                self.max_seconds,
                GRACE_SECONDS,
                sid,
                "1" if touch else "0",
                _cookie_hash,
            ],
        )
        if not res:
            return None
        status = _text(res[0])
        if status != "ok":
            self.end(sid, status)
            return None
        flat = res[1]
        data = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return self._from_hash(sid, data)

    def get_by_cookie(self, cookie: str | None, *, touch: bool = True) -> Session | None:
        """The session a browser cookie ``<sid>.<secret>`` names, if the secret matches."""
        if not cookie or "." not in cookie or len(cookie) > 200:
            return None
        sid, secret = cookie.split(".", 1)
        if not secret:
            return None
        # One round trip: the script checks the cookie before it touches the session.
        return self.get(sid, touch=touch, _cookie_hash=_hash_secret(secret))

    def update_auth(self, sid: str, *, auth_time: int, acr: str, amr: Iterable[str]) -> Session | None:
        """Record a fresh login or a step-up in the same session (issue 4 §2)."""
        if not self._r.exists(self._k(sid)):
            return None
        self._r.hset(
            self._k(sid),
            mapping={"auth_time": int(auth_time), "acr": acr, "amr": json.dumps(list(amr))},
        )
        return self.get(sid)

    def add_client(self, sid: str, client_id: str, *, pipe: Any = None) -> None:
        """Remember that ``client_id`` signed in through this session.

        With ``pipe`` the commands are only queued on it (the authorization
        endpoint sends them with the code, in one round trip).
        """
        own = pipe is None or self._sharded
        if own:
            # On a Cluster always a round trip of its own, on the session's node
            # (the caller's pipeline spans slots), before the caller's code exists.
            pipe = durable_pipeline(self._r, self._kc(sid))
        pipe.sadd(self._kc(sid), client_id)
        pipe.expire(self._kc(sid), self.max_seconds + GRACE_SECONDS)
        if own:
            execute_durably(pipe)
        elif (wait := wait_args(self._r)) is not None:
            # Back-channel logout needs this portal in the set: the replicas get it
            # before the caller's code is handed out (WAIT counts this connection's writes).
            pipe.execute_command(*wait)

    def add_cas_ticket(self, sid: str, client_id: str, ticket: str, *, pipe: Any = None) -> None:
        """Remember that CAS service ``client_id`` got ``ticket`` in this session (and add the client).

        The session's end hands the tickets over (:attr:`Session.cas_tickets`)
        so each service gets its single logout with that ``SessionIndex``. At
        most :data:`MAX_CAS_TICKETS` per session: a citizen signing in to one
        service over and over cannot make a sign-out a flood of POSTs.
        """
        own = pipe is None
        if own:
            pipe = self._r.pipeline(transaction=False)
        if self._r.hlen(self._kt(sid)) < MAX_CAS_TICKETS:
            pipe.hset(self._kt(sid), ticket, client_id)
            pipe.expire(self._kt(sid), self.max_seconds + GRACE_SECONDS)
        self.add_client(sid, client_id, pipe=pipe)  # last: its WAIT (Sentinel) covers the ticket too
        if own:
            pipe.execute()

    def clients(self, sid: str) -> frozenset[str]:
        return frozenset(_text(c) for c in self._r.smembers(self._kc(sid)))

    def end(self, sid: str, reason: str) -> Session | None:
        """End ``sid`` atomically; returns it (with its clients) to the one caller that ended it.

        The ``on_session_end`` hooks run only for that caller, so a session
        ends — and its relying parties are told — exactly once.
        """
        if not sid:
            return None
        # A sign-out a failover forgot would bring the session back: WAIT for the replicas.
        res = run_script(self._r, self._end, [self._k(sid), self._kc(sid), self._kexp(sid), self._kt(sid)],
                         [sid, "" if self._sharded else self._kcit])
        if not res:
            return None
        flat, clients, tickets = res
        data = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        session = self._from_hash(sid, data, clients=frozenset(_text(c) for c in clients))
        if self._sharded and session.citizen_id:
            self._r.srem(self._kcit + session.citizen_id, sid)
        if tickets:
            cas = tuple(sorted((_text(tickets[i + 1]), _text(tickets[i])) for i in range(0, len(tickets), 2)))
            session = dataclasses.replace(session, cas_tickets=cas)
        logger.info("session %s ended (%s)", sid, reason)
        self._fire(session, reason)
        return session

    def list_for_citizen(self, citizen_id: str) -> list[Session]:
        """The citizen's live sessions, newest first (for the account page)."""
        key = self._kcit + str(citizen_id)
        sids = [_text(s) for s in self._r.smembers(key)]
        out: list[Session] = []
        for sid in sids:
            s = self.get(sid, touch=False)
            if s is None:
                self._r.srem(key, sid)
                continue
            out.append(
                Session(**{**s.__dict__, "clients": self.clients(sid)})  # type: ignore[arg-type]
            )
        out.sort(key=lambda s: s.created_at, reverse=True)
        return out

    def end_all_for_citizen(self, citizen_id: str, reason: str) -> list[Session]:
        """End every session of a citizen (sign out everywhere, password change)."""
        ended = []
        for sid in [_text(s) for s in self._r.smembers(self._kcit + str(citizen_id))]:
            s = self.end(sid, reason)
            if s is not None:
                ended.append(s)
        return ended

    def all_sids(self) -> list[str]:
        """Every session id not yet ended (for ``idp sessions end --all``)."""
        pipe = self._r.pipeline(transaction=False)
        for index in self._expiry_indexes():
            pipe.zrange(index, 0, -1)
        return [_text(s) for sids in pipe.execute() for s in sids]

    def sweep_expired(self, *, limit: int = 500) -> list[Session]:
        """End sessions whose idle or absolute deadline has passed; run periodically."""
        now = int(self._clock())
        pipe = self._r.pipeline(transaction=False)
        for index in self._expiry_indexes():
            pipe.zrangebyscore(index, "-inf", now, start=0, num=limit)
        due = [raw for found in pipe.execute() for raw in found][:limit]
        ended: list[Session] = []
        for raw in due:
            sid = _text(raw)
            res = self._get(
                keys=[self._k(sid), self._kexp(sid)],
                args=[now, self.idle_seconds, self.max_seconds, GRACE_SECONDS, sid, "0", ""],
            )
            if not res:
                self._r.zrem(self._kexp(sid), sid)  # the data is gone: drop the index entry
                continue
            status = _text(res[0])
            if status != "ok":
                s = self.end(sid, status)
                if s is not None:
                    ended.append(s)
        return ended

    # encoding ---------------------------------------------------------
    @staticmethod
    def _to_hash(s: Session) -> dict[str, Any]:
        return {
            "citizen_id": s.citizen_id,
            "auth_time": s.auth_time,
            "acr": s.acr,
            "amr": json.dumps(list(s.amr)),
            "channel": s.channel,
            "ip": s.ip,
            "user_agent": s.user_agent,
            "created_at": s.created_at,
            "last_seen": s.last_seen,
        }

    @staticmethod
    def _from_hash(sid: str, d: dict[str, str], *, clients: frozenset[str] = frozenset()) -> Session:
        return Session(
            sid=sid,
            citizen_id=d.get("citizen_id", ""),
            auth_time=int(d.get("auth_time", 0)),
            acr=d.get("acr", ""),
            amr=tuple(json.loads(d.get("amr", "[]"))),
            channel=d.get("channel", ""),
            ip=d.get("ip", ""),
            user_agent=d.get("user_agent", ""),
            created_at=int(d.get("created_at", 0)),
            last_seen=int(d.get("last_seen", 0)),
            clients=clients,
        )
