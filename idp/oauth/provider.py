"""The provider: what the grants and endpoints ask for, in one object.

Authlib's grants reach their collaborators through ``self.server``; Yiwang's
server carries a :class:`Provider` (``server.provider``) that holds the
token service (built by :func:`build_token_service`, once per process, in
:mod:`idp.container`), owns the code, PAR and device-code stores, and does
client and citizen look-ups, subject derivation and the audit hook. It
knows no framework, so the protocol is testable without HTTP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749.util import scope_to_list

from ..device import DeviceCodeStore
from ..models import Citizen, Client
from ..sessions import SessionStore
from .claims import ID_NUMBER_SCOPE, CitizenClaims
from .codes import CodeStore
from .dpop import IdpDPoP
from .par import PushedRequestStore
from .records import SqlTokenStore
from .scopes import decide
from .subject import sector_of, subject_for
from .tokens import TokenService

if TYPE_CHECKING:
    from ..settings import IdpSettings

__all__ = ["Provider", "GrantUser", "ProviderConfig", "build_token_service"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderConfig:
    issuer: str
    access_token_seconds: int = 600
    client_credentials_seconds: int = 300
    """Authlib's default is 10 days; a machine token lives minutes here."""
    id_token_seconds: int = 600
    refresh_token_seconds: int = 30 * 24 * 3600
    refresh_reuse_grace_seconds: int = 30
    """A rotated refresh token's one retry window (issue 20 §1; ``IdpSettings``)."""
    code_seconds: int = 60
    par_seconds: int = 60
    require_par: bool = False
    resource_audiences: tuple[str, ...] = ("certstore",)
    """Resource indicators (RFC 8707) a client may ask an access token for."""
    scope_audiences: tuple[tuple[str, str], ...] = (("certs", "certstore"),)
    """``(scope prefix, audience)``: tokens with such a scope are for that resource server."""
    client_cache_seconds: float = 5.0
    device_code_seconds: int = 600
    """RFC 8628 §3.2 ``expires_in`` of a device code."""
    device_poll_interval: int = 5
    """RFC 8628 §3.2 ``interval``: how often a device may poll the token endpoint."""
    device_verification_path: str = "/device"
    """Where the citizen enters the user code (``idp.web.device`` serves it)."""
    dpop_iat_seconds: int = 60
    """RFC 9449 §11.1: how far a DPoP proof's ``iat`` may be from now (plus a small leeway)."""
    dpop_nonce_endpoints: frozenset[str] = frozenset()
    """RFC 9449 §8/§9: endpoints (``token``, ``par``, ``userinfo``) whose proofs must carry our nonce."""

    @classmethod
    def from_settings(cls, settings: IdpSettings) -> ProviderConfig:
        return cls(
            issuer=settings.issuer,
            access_token_seconds=settings.access_token_seconds,
            client_credentials_seconds=settings.client_credentials_seconds,
            id_token_seconds=settings.id_token_seconds,
            refresh_token_seconds=settings.refresh_token_seconds,
            refresh_reuse_grace_seconds=settings.refresh_reuse_grace_seconds,
            code_seconds=settings.code_seconds,
            par_seconds=settings.par_seconds,
            require_par=settings.require_par,
            dpop_iat_seconds=settings.dpop_iat_seconds,
            dpop_nonce_endpoints=frozenset(settings.dpop_nonce_endpoints),
        )


def build_token_service(
    config: ProviderConfig, *, db: Any, redis: Any, keyspace: Any, keyring: Any,
    clock: Callable[[], float] = time.time,
) -> TokenService:
    """The process's one :class:`TokenService` (the provider, logout and CLI share it)."""
    return TokenService(
        keyring=keyring, redis=redis, prefix=getattr(keyspace, "base", keyspace), store=SqlTokenStore(db),
        issuer=config.issuer, access_token_seconds=config.access_token_seconds,
        client_credentials_seconds=config.client_credentials_seconds,
        id_token_seconds=config.id_token_seconds,
        refresh_token_seconds=config.refresh_token_seconds, clock=clock,
    )


@dataclass
class GrantUser:
    """The resource owner as a grant sees it: the citizen and how they signed in."""

    citizen_id: int
    public_id: str
    sid: str | None
    auth_time: int
    acr: str
    amr: list[str]
    family_id: str | None = None
    parent_jti: str | None = None
    code_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    citizen: Any = None
    """The loaded Citizen row, kept so one request reads it once."""
    on_code_issue: Any = None
    """Optional ``f(redis_pipeline)``: more commands for the code's own round trip
    (the web layer deletes the finished flow there)."""
    staff: dict[str, Any] | None = None
    """A staff member instead of a citizen (:mod:`idp.staff.signin`): ``{"sub", "claims"}``;
    ``citizen_id`` is then ``None``."""

    def get_user_id(self) -> int:
        return self.citizen_id


class Provider:
    def __init__(
        self,
        config: ProviderConfig,
        *,
        db: Any,
        redis: Any,
        keyspace: Any,
        keyring: Any,
        sessions: SessionStore,
        audit: Any = None,
        tokens: TokenService | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``tokens``: the process's token service (:mod:`idp.container` passes it); built here without one."""
        self.config = config
        self.issuer = config.issuer
        self.db = db
        self.redis = redis
        self.keyring = keyring
        self.sessions = sessions
        self.audit_log = audit
        prefix = getattr(keyspace, "base", keyspace)
        self.prefix = prefix
        self.tokens = tokens or build_token_service(config, db=db, redis=redis, keyspace=prefix,
                                                    keyring=keyring, clock=clock)
        self.codes = CodeStore(redis, prefix, ttl_seconds=config.code_seconds)
        self.par = PushedRequestStore(redis, prefix, ttl_seconds=config.par_seconds)
        self.dpop = IdpDPoP.build(redis, prefix, keyring, config.issuer, iat_window=config.dpop_iat_seconds,
                                  nonce_endpoints=config.dpop_nonce_endpoints, clock=clock)
        self.device_codes = DeviceCodeStore(redis, prefix, expires_in=config.device_code_seconds,
                                            interval=config.device_poll_interval)
        self._salt = keyring.secret("pairwise-salt")
        self._pii = keyring.pii()
        self._clients: dict[str, tuple[float, Client | None]] = {}
        self._clients_lock = threading.Lock()
        sessions.on_session_end(self._revoke_on_session_end)

    # clients ----------------------------------------------------------
    def query_client(self, client_id: str | None) -> Client | None:
        """The client, from a short in-process cache (client_credentials is a hot path)."""
        # A client_id with a control character (NUL reaches PostgreSQL as an error) names no client.
        if not client_id or not isinstance(client_id, str) or len(client_id) > 64 or not client_id.isprintable():
            return None
        now = time.monotonic()
        hit = self._clients.get(client_id)
        if hit is not None and now - hit[0] < self.config.client_cache_seconds:
            return hit[1]
        with self.db.single_statement() as s:
            client = s.get(Client, client_id)
            if client is not None:
                s.expunge(client)
        with self._clients_lock:
            if len(self._clients) > 10_000:
                self._clients.clear()
            self._clients[client_id] = (now, client)
        return client

    def forget_client(self, client_id: str) -> None:
        self._clients.pop(client_id, None)

    # citizens ---------------------------------------------------------
    def get_citizen(self, citizen_id: int) -> Citizen | None:
        with self.db.single_statement() as s:
            c = s.get(Citizen, citizen_id)
            if c is not None:
                s.expunge(c)
            return c

    def token_citizen(self, jti: str) -> Citizen | None:
        """The citizen of a live, recorded access token, in one query (the userinfo hot path)."""
        import sqlalchemy as sa

        from ..models import TokenRecord

        with self.db.single_statement() as s:
            row = s.execute(
                sa.select(Citizen)
                .join(TokenRecord, TokenRecord.citizen_id == Citizen.id)
                .where(TokenRecord.jti == jti, TokenRecord.revoked_at.is_(None))
            ).scalar_one_or_none()
            if row is not None:
                s.expunge(row)
            return row

    def citizen_claims(self, citizen: Citizen, *, with_id_number: bool) -> CitizenClaims:
        number = None
        if with_id_number:
            number = self._pii.decrypt(citizen.id_number_enc, purpose="id_number")
        return CitizenClaims(
            public_id=citizen.public_id, name=citizen.name, phone=citizen.phone,
            email=citizen.email, id_number=number,
        )

    def subject(self, client: Client, public_id: str) -> str:
        """The ``sub`` this client knows the citizen by (OIDC Core §8)."""
        sector = sector_of(client.sector_identifier, client.redirect_uris or [], client.client_id)
        return subject_for(
            subject_type=client.subject_type or "pairwise", sector=sector,
            public_id=public_id, salt=self._salt,
        )

    # audience ---------------------------------------------------------
    def audience(self, client: Client, scope: str, resource: list[str] | None = None) -> str | list[str]:
        """RFC 9068 §3 / RFC 8707: the resource asked for, else by scope, else the client."""
        if resource:
            allowed = [r for r in resource if r in self.config.resource_audiences]
            if allowed:
                return allowed[0] if len(allowed) == 1 else allowed
        auds: list[str] = []
        for s in scope_to_list(scope) or []:
            for prefix, aud in self.config.scope_audiences:
                if s.startswith(prefix) and aud not in auds:
                    auds.append(aud)
        if auds:
            return auds[0] if len(auds) == 1 else auds
        return client.client_id

    # token generation (Authlib's generator signature) ------------------
    def generate_token(
        self,
        grant_type: str,
        client: Client,
        user: GrantUser | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
        binding: Any = None,
    ) -> dict[str, Any]:
        """``binding``: the request's :class:`~idp.oauth.binding.Binding` (sender-constrained tokens)."""
        # The grant has already cut (and, at the token endpoint, refused) what
        # it may not grant; cutting again here, with the same policy, is what
        # makes a grant that forgot to ask unable to issue more (docs/design.md,
        # "Boundaries"). The response's ``scope`` is what was granted (RFC 6749 §5.1).
        scope = decide(client, grant_type, scope).scope
        resource = (user.extra.get("resource") if user else None) or None
        aud = self.audience(client, scope, resource)
        cnf = binding.cnf() if binding is not None else None
        token_type = binding.token_type if binding is not None else "Bearer"
        if user is None:  # client_credentials: the client is the subject
            ttl = expires_in or self.config.client_credentials_seconds
            token, jti, exp = self.tokens.issue_access_token(
                client_id=client.client_id, scope=scope, audience=aud,
                sub=client.client_id, expires_in=ttl, cnf=cnf,
            )
            return {"token_type": token_type, "access_token": token, "expires_in": ttl, "scope": scope}
        # A staff member's sub is in its own namespace (idp.staff.models.SUBJECT_PREFIX), never
        # pairwise; a staff sign-in gets no refresh token (it lasts as long as the staff session).
        sub = user.staff["sub"] if user.staff else self.subject(client, user.public_id)
        include_refresh_token = include_refresh_token and not user.staff
        ttl = expires_in or self.config.access_token_seconds
        token, jti, exp = self.tokens.issue_access_token(
            client_id=client.client_id, scope=scope, audience=aud, sub=sub, sid=user.sid,
            auth_time=user.auth_time, acr=user.acr, expires_in=ttl, cnf=cnf, act=user.extra.get("act"),
        )
        offline = "offline_access" in (scope_to_list(scope) or [])
        now = self.tokens.now()
        rows: list[dict[str, Any]] = [dict(
            jti=jti, kind="access", client_id=client.client_id, citizen_id=user.citizen_id,
            sid=user.sid, scope=scope, family_id=user.family_id, parent_jti=None,
            code_hash=user.code_hash, offline=offline, issued_at=now, expires_at=exp,
            data={"cnf": cnf} if cnf else None,
        )]
        out: dict[str, Any] = {
            "token_type": token_type, "access_token": token, "expires_in": ttl, "scope": scope,
        }
        if include_refresh_token:
            rt, rjti = self.tokens.new_refresh_token()
            family = user.family_id or self.tokens.new_family()
            rows[0]["family_id"] = family
            rows.append(dict(
                jti=rjti, kind="refresh", client_id=client.client_id, citizen_id=user.citizen_id,
                sid=user.sid, scope=scope, family_id=family, parent_jti=user.parent_jti,
                code_hash=user.code_hash, offline=offline, issued_at=now,
                expires_at=now + self.config.refresh_token_seconds,
                data={"auth_time": user.auth_time, "acr": user.acr, "amr": list(user.amr),
                      "public_id": user.public_id,
                      **({"act": user.extra["act"]} if user.extra.get("act") else {}),  # idp.ciba: kept on refresh
                      # A refresh token bound to a key (binding.refresh_cnf) needs it again.
                      **({"cnf": binding.refresh_cnf} if binding is not None and binding.refresh_cnf else {})},
            ))
            out["refresh_token"] = rt
        out["_rows"] = rows
        if user.citizen is not None:
            c = user.citizen
            out["_snapshot"] = (jti, ttl, {"citizen_id": c.id, "public_id": c.public_id, "name": c.name,
                                           "phone": c.phone, "email": c.email})
        return out

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        rows = token.pop("_rows", None)
        snapshot = token.pop("_snapshot", None)
        if not rows:
            return  # client_credentials: nothing to record (the hot path stays off SQL)
        detail = {"grant_type": request.payload.grant_type, "jti": rows[0]["jti"], "refresh": len(rows) > 1}
        client_id = request.client.client_id
        if not self.tokens.store.add(rows):
            # The account was disabled or deleted since the code or refresh
            # token was issued: nothing is recorded and nothing handed out.
            from authlib.oauth2.rfc6749.errors import InvalidGrantError

            raise InvalidGrantError("the account is not available")
        # The grant's audit record goes to the audit log's batching writer
        # once the records are committed, not into their transaction: every
        # append locks the chain head, so one per grant serialised all token
        # requests on that row lock (profiled: sso_login waited there most of
        # its time). In the web process the record reaches the database within
        # milliseconds, is flushed at exit, and is retried while the database
        # is away; only a crash of the process in that window loses it.
        self.audit("token.grant", client_id=client_id, detail=detail)
        # The userinfo snapshot is a cache (userinfo reads the database without
        # it): the background writer keeps it, and the grant answers without a
        # Redis round trip (issue 16). A replayed code finds what it produced by
        # the code's hash on these records (AuthorizationCodeGrant.query_authorization_code).
        if snapshot is not None:
            self.tokens.save_snapshot(*snapshot, background=True)

    # revocation on session end (issue 4 §6) ---------------------------
    def _revoke_on_session_end(self, session: Any, reason: str) -> None:
        everywhere = reason in ("sign_out_everywhere", "password_change")
        self.tokens.revoke_session_tokens(session.sid, include_offline=everywhere)

    # audit ------------------------------------------------------------
    def audit(self, kind: str, **kw: Any) -> None:
        if self.audit_log is None:
            return
        try:
            self.audit_log.record(kind, **kw)
        except Exception:
            logger.exception("audit record %s failed", kind)

    def id_number_allowed(self, client: Client, granted_scopes: list[str]) -> bool:
        return bool(client.may_receive_id_number) and ID_NUMBER_SCOPE in granted_scopes
