"""The idp's SQL schema: citizens, clients, consents, tokens, audit, logout deliveries.

SQLAlchemy 2 declarative models with ``Mapped[]`` annotations. The idp has a
database of its own, so table names are plain. Every type here is portable to
SQLite (the embedded default) and PostgreSQL (production and CI); the Alembic
migrations in ``idp/migrations`` create exactly this schema on both.

What is *not* here, on purpose (docs/design.md, state): SSO sessions,
authorization codes, device codes and rate-limit counters live in Redis.

Identity rules (docs/design.md): a citizen row never holds the resident ID number
in clear. ``id_number_index`` is the keyed blind index that finds the row,
``id_number_enc`` the AEAD ciphertext, ``id_number_masked`` what pages and
logs may show. Relying parties see a pairwise ``sub`` derived from
``public_id``, never the row id or the number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "UtcDateTime",
    "utcnow",
    "Citizen",
    "RecoveryCode",
    "Client",
    "Consent",
    "AuditEvent",
    "AuditHead",
    "TokenRecord",
    "LogoutDelivery",
    "hash_client_secret",
    "AUTH_METHODS",
    "GRANT_TYPES",
    "LOOPBACK_HOSTS",
]

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
"""Client authentication methods (OIDC Core §9, RFC 7591 §2)."""

GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:openid:params:grant-type:ciba",  # OpenID CIBA Core 1.0 (idp.ciba)
)

LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "localhost")
"""RFC 8252 §7.3: loopback redirect URIs whose port may vary per request."""


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC, to the microsecond."""
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite stores text without an offset,
    so values are normalised to UTC on the way in and tagged UTC on the way
    out. Naive datetimes are refused: they are always a bug here.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    # Named constraints, so later migrations can drop them on SQLite too.
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {
        dt.datetime: UtcDateTime(),
        dict[str, Any]: sa.JSON(),
        list[str]: sa.JSON(),
        bytes: sa.LargeBinary(),
    }


def _uuid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- citizens


class Citizen(Base):
    """A citizen account, keyed on the resident ID number (never stored in clear)."""

    __tablename__ = "citizen"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(36), unique=True, default=_uuid)
    """Random and stable: the input of pairwise ``sub`` derivation (OIDC Core §8.1)."""
    id_number_index: Mapped[str] = mapped_column(sa.String(64), unique=True)
    """Keyed blind index (HMAC-SHA256 hex) of the ID number: the lookup key."""
    id_number_enc: Mapped[bytes]
    """The ID number, AEAD-encrypted by ``keys.pii.PiiProtector`` (purpose ``id_number``)."""
    id_number_masked: Mapped[str] = mapped_column(sa.String(18))
    """``110101********123X``, safe for pages and logs."""
    name: Mapped[str] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    """Argon2id PHC string; ``None`` until a password is set (e.g. after an import)."""
    totp_secret_enc: Mapped[bytes | None]
    """The TOTP secret, AEAD-encrypted (purpose ``totp``); ``None``: no second factor."""
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    """The last accepted TOTP time step: a code is accepted once (RFC 6238 §5.2)."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[dt.datetime | None]
    disabled: Mapped[bool] = mapped_column(default=False)

    @property
    def has_totp(self) -> bool:
        return self.totp_secret_enc is not None

    def __repr__(self) -> str:
        return f"Citizen(id={self.id!r}, {self.id_number_masked!r})"


class RecoveryCode(Base):
    """A one-time code for a citizen whose authenticator is lost: only its keyed HMAC-SHA256 is kept."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizen.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    used_at: Mapped[dt.datetime | None]


# ----------------------------------------------------------------- clients


def hash_client_secret(secret: str) -> str:
    """SHA-256 hex of a client secret.

    Client secrets are 256-bit random, so a fast hash is enough (docs/design.md:
    a slow KDF on them would cap client_credentials at ~70 requests/s).
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def _is_loopback_http(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and (parts.hostname or "") in ("127.0.0.1", "::1", "localhost")


def _without_port(uri: str) -> str:
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Client(Base, ClientMixin):  # type: ignore[misc]
    """A relying party. Implements Authlib's :class:`ClientMixin` (RFC 6749 §2).

    Free of Flask: the protocol core and the CLI use the same object.
    """

    __tablename__ = "client"

    client_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    secret_hash: Mapped[str | None] = mapped_column(sa.String(64))
    """SHA-256 hex of the secret; ``None`` for public clients."""
    is_public: Mapped[bool] = mapped_column(default=False)
    redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(sa.String(2000))
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(sa.String(2000))
    grant_types: Mapped[list[str]] = mapped_column(default=list)
    response_types: Mapped[list[str]] = mapped_column(default=list)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    """The scopes this client may ask for."""
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        sa.String(32), default="client_secret_basic"
    )
    jwks: Mapped[dict[str, Any] | None]
    """Public keys for ``private_key_jwt`` (RFC 7523), inline."""
    jwks_uri: Mapped[str | None] = mapped_column(sa.String(2000))
    id_token_signed_response_alg: Mapped[str] = mapped_column(sa.String(16), default="ES256")
    subject_type: Mapped[str] = mapped_column(sa.String(16), default="pairwise")
    sector_identifier: Mapped[str | None] = mapped_column(sa.String(255))
    """The host that pairwise ``sub`` values are computed for (OIDC Core §8.1)."""
    first_party: Mapped[bool] = mapped_column(default=False)
    """Consent is not asked for (the government's own portals)."""
    may_receive_id_number: Mapped[bool] = mapped_column(default=False)
    """May be granted the ``id_number`` scope (still only with the citizen's consent)."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    secret_rotated_at: Mapped[dt.datetime | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    """Registration metadata of the later channels and profiles, by name (Keycloak's
    client attributes): each key is defined, validated and documented where its
    feature registers it (``idp.clients.registration``), never written raw."""

    def attribute(self, name: str, default: Any = None) -> Any:
        return (self.attributes or {}).get(name, default)

    def __repr__(self) -> str:
        return f"Client({self.client_id!r}, {self.name!r})"

    # -- Authlib ClientMixin (RFC 6749) --------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # RFC 6749 §3.1.2.3: only a single registered URI may be a default.
        if len(self.redirect_uris) == 1:
            return self.redirect_uris[0]
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.scopes)
        seen: list[str] = []
        for s in scope.split():
            if s in allowed and s not in seen:
                seen.append(s)
        return " ".join(seen)

    def check_redirect_uri(self, redirect_uri: str | None) -> bool:
        """Exact string comparison (OAuth 2.0 Security BCP §4.1.3).

        The one exception is RFC 8252 §7.3, for native apps only: a public
        client's registered loopback ``http`` URI matches on any port (the
        app listens on whatever port the OS gives it). A confidential web
        client's loopback URI is matched exactly like any other, so a local
        process on another port cannot receive its codes.
        """
        if not redirect_uri:
            return False
        if redirect_uri in self.redirect_uris:
            return True
        if self.is_public and _is_loopback_http(redirect_uri):
            try:
                wanted = _without_port(redirect_uri)
            except ValueError:
                return False
            for registered in self.redirect_uris:
                if _is_loopback_http(registered) and _without_port(registered) == wanted:
                    return True
        return False

    def check_post_logout_redirect_uri(self, uri: str | None) -> bool:
        """RP-Initiated Logout 1.0 §3: exact match against the registration."""
        return bool(uri) and uri in self.post_logout_redirect_uris

    def check_client_secret(self, client_secret: str | None) -> bool:
        if self.secret_hash is None or not client_secret:
            return False
        return hmac.compare_digest(hash_client_secret(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # RFC 7591 §2: the registered method applies wherever the client
        # authenticates (token, introspection, revocation, PAR).
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    @property
    def requires_pkce(self) -> bool:
        """PKCE S256 is required for public clients (RFC 9700 §2.1.1) and honoured for all."""
        return self.is_public

    def allows_id_number(self) -> bool:
        return self.may_receive_id_number and "id_number" in self.scopes


# ---------------------------------------------------------------- consents


class Consent(Base):
    """What a citizen granted a client; remembered until revoked."""

    __tablename__ = "consent"
    __table_args__ = (sa.UniqueConstraint("citizen_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizen.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("client.client_id", ondelete="CASCADE"), index=True
    )
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    revoked_at: Mapped[dt.datetime | None]

    def covers(self, scopes: list[str] | set[str]) -> bool:
        """True if this consent is live and includes every scope asked for."""
        return self.revoked_at is None and set(scopes) <= set(self.scopes)


# ------------------------------------------------------------------ tokens


class TokenRecord(Base):
    """Bookkeeping for issued access and refresh tokens.

    ``jti`` is the JWT id of an access token, or for an opaque refresh token
    the SHA-256 hex of the token (the database never holds a usable token).
    ``family_id`` groups a refresh token and every rotation of it, so reuse of
    a rotated one revokes the whole family (RFC 9700 §4.14.2). ``code_hash``
    ties tokens to the authorization code they came from, so a replayed code
    revokes them (RFC 6749 §4.1.2).
    """

    __tablename__ = "token"

    jti: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    """``access`` or ``refresh``."""
    client_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("client.client_id", ondelete="CASCADE"), index=True
    )
    citizen_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("citizen.id", ondelete="CASCADE"), index=True
    )
    sid: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    scope: Mapped[str] = mapped_column(sa.Text, default="")
    family_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    parent_jti: Mapped[str | None] = mapped_column(sa.String(64))
    code_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    revoked_at: Mapped[dt.datetime | None]
    consumed_at: Mapped[dt.datetime | None]
    """Set when a refresh token is rotated; using it again is reuse."""
    retried_at: Mapped[dt.datetime | None]
    """Set when a rotated refresh token was accepted once more, within the grace window
    after ``consumed_at``, from its own client (issue 20 §1); a further use is reuse."""
    offline: Mapped[bool] = mapped_column(default=False)
    """Granted with ``offline_access``: survives the end of the SSO session."""
    data: Mapped[dict[str, Any] | None]
    """What a refresh must carry forward: ``auth_time``, ``acr``, ``amr``, claims."""

    def is_active(self, now: dt.datetime | None = None) -> bool:
        now = now or utcnow()
        return self.revoked_at is None and self.consumed_at is None and self.expires_at > now


# ------------------------------------------------------------------- audit


class AuditEvent(Base):
    """One record of the append-only, keyed audit chain.

    ``hash`` = HMAC-SHA256, under the audit MAC key ``key_id``, over the
    canonical JSON of the record and ``prev_hash`` (see :mod:`idp.audit`);
    plain SHA-256 for records written before the chain was keyed (``key_id``
    NULL). ``seq`` is assigned under a lock on
    :class:`AuditHead`, without gaps, so a deleted record shows as a gap.
    """

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(sa.String(64), index=True)
    actor: Mapped[str | None] = mapped_column(sa.String(200))
    subject: Mapped[str | None] = mapped_column(sa.String(200))
    """A masked ID number or a client id; never an unmasked number."""
    client_id: Mapped[str | None] = mapped_column(sa.String(64))
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))
    key_id: Mapped[str | None] = mapped_column(sa.String(40))
    """The ``idp-audit`` MAC key that keyed ``hash`` (kept after rotation)."""


class AuditHead(Base):
    """One row: the last ``seq`` and ``hash``. Locked by every writer.

    ``SELECT … FOR UPDATE`` (PostgreSQL) / the write lock (SQLite) on this
    row serialises appends so concurrent writers cannot fork the chain, and
    it lets ``verify`` notice a truncated tail.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    hash: Mapped[str] = mapped_column(sa.String(64))


sa.event.listen(
    AuditHead.__table__,
    "after_create",
    sa.DDL(  # type: ignore[no-untyped-call]
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '" + "0" * 64 + "')"  # noqa: S608
    ),
)
"""``create_all`` seeds the head row as the migration does."""


# ------------------------------------------------------------------ logout


class LogoutDelivery(Base):
    """A back-channel logout token owed to one client for one ended session.

    Written before the job is queued (docs/design.md, state), so neither a restart
    nor a lost Redis loses a delivery. No foreign key to ``client``: the
    record of what was sent outlives a deleted client.
    """

    __tablename__ = "logout_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(sa.String(64), index=True)
    client_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    sub: Mapped[str | None] = mapped_column(sa.String(255))
    """The ``sub`` this client knows the citizen by (pairwise)."""
    uri: Mapped[str] = mapped_column(sa.String(2000))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    """``pending``, ``delivered`` or ``failed``."""
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    reason: Mapped[str | None] = mapped_column(sa.String(32))
    """Why the session ended (``logout``, ``idle_timeout``, …)."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]


# Tables owned by their own packages share this metadata (the migrations are checked against it).
from .passkeys import models as _passkey_models  # noqa: E402, F401
from .push import models as _push_models  # noqa: E402, F401
from .staff import models as _staff_models  # noqa: E402, F401
