"""The idp's settings, read once from the environment at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from keys.config import (
    COMMON_VARIABLES,
    CommonSettings,
    Variable,
    is_loopback_host,
    parse_bool,
    parse_int,
    parse_path,
    read_environment,
)
from keys.errors import ConfigurationError

from .oauth.mtls import parse_networks

__all__ = ["IdpSettings", "IDP_VARIABLES"]

def _parse_seconds(text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not low <= value <= high:
        raise ValueError(f"expected {low:g} to {high:g} seconds")
    return value


IDP_VARIABLES = (
    *COMMON_VARIABLES,
    Variable("IDP_DATABASE_URL", str, "overrides YIWANG_DATABASE_URL for the idp"),
    Variable("IDP_SESSION_IDLE_SECONDS", parse_int, "SSO session idle timeout"),
    Variable("IDP_SESSION_MAX_SECONDS", parse_int, "SSO session absolute lifetime"),
    Variable("IDP_ACCESS_TOKEN_SECONDS", parse_int, "access token lifetime"),
    Variable("IDP_LOGOUT_TIMEOUT_SECONDS", parse_int, "time-out of each back-channel logout POST"),
    Variable("IDP_LOGOUT_MIN_BACKOFF_MS", parse_int, "first back-channel logout retry delay"),
    Variable("IDP_LOGOUT_MAX_BACKOFF_MS", parse_int, "longest back-channel logout retry delay"),
    Variable("IDP_LOGOUT_RETRY_SECONDS", parse_int, "how long a logout delivery is retried"),
    Variable("IDP_SESSION_SWEEP_SECONDS", parse_int, "period of the session expiry sweep"),
    Variable("IDP_INPROCESS_WORKER", parse_bool, "run the job worker inside the web process"),
    Variable("IDP_PASSWORD_HASH_MEMORY_KIB", parse_int, "Argon2id memory cost (default 19456)"),
    Variable("IDP_CLIENT_CREDENTIALS_SECONDS", parse_int, "lifetime of client_credentials tokens"),
    Variable("IDP_REQUIRE_PAR", parse_bool, "refuse authorization requests not pushed first (RFC 9126)"),
    Variable("IDP_TRUSTED_PROXIES", parse_int, "reverse proxies in front whose X-Forwarded-For/-Proto count (0)"),
    Variable("IDP_DATABASE_POOL_SIZE", parse_int, "PostgreSQL connections each idp process keeps open (20)"),
    Variable("IDP_AUDIT_ANCHOR_FILE", parse_path,
             "append-only file of signed audit checkpoints (default: YIWANG_HOME/audit/anchors.jsonl)"),
    Variable("IDP_REFRESH_REUSE_GRACE_SECONDS", parse_int,
             "seconds after a refresh token's rotation in which its client may retry it once (30; 0: never)"),
    Variable("IDP_QUEUE_REQUEUE_SECONDS", lambda text: _parse_seconds(text, 2.0, 3600.0),
             "a killed worker's logout jobs are back on the queue within this many seconds (15)"),
    Variable("FAULT_POINTS", str, "test only: named fault seams that kill the process (idp.faults)"),
    Variable("IDP_CAS_TICKET_SECONDS", parse_int, "lifetime of a CAS service ticket (10; 1 to 300)"),
    # Issue 13 §2: an agency that accepts only attested authenticators (idp.passkeys.policy).
    Variable("IDP_PASSKEY_AAGUIDS", str, "comma-separated AAGUIDs of the authenticators accepted (any)"),
    Variable("IDP_PASSKEY_ATTESTATION_FORMATS", str,
             "comma-separated attestation formats accepted, e.g. packed,tpm,apple (any; attestation none)"),
    Variable("IDP_PASSKEY_EXTRA_ORIGINS", str,
             "comma-separated origins besides the issuer's for passkeys, e.g. the app's android:apk-key-hash:… (none)"),
    Variable("IDP_CIBA_INTERVAL_SECONDS", parse_int, "CIBA: least seconds between a client's polls (5; 1 to 60)"),
    Variable("IDP_CIBA_EXPIRY_SECONDS", parse_int, "CIBA: a request's lifetime without requested_expiry (300)"),
    Variable("IDP_DPOP_IAT_SECONDS", parse_int, "how far a DPoP proof's iat may be from now (60)"),
    Variable("IDP_DPOP_NONCE_ENDPOINTS", str,
             "comma-separated endpoints whose DPoP proofs need a server nonce: token, par, userinfo (none)"),
    Variable("IDP_ALLOW_LOOPBACK_CALLBACKS", parse_bool,
             "logout URIs may be http on 127.0.0.1 (the embedded demo; default: only when the issuer is on loopback)"),
    # RFC 8705 mutual TLS through a TLS-terminating proxy (idp.oauth.mtls).
    Variable("IDP_MTLS_PROXIES", parse_networks,
             "addresses/CIDRs of the TLS proxies whose client-certificate header is believed (none: mTLS off)"),
    Variable("IDP_MTLS_HEADER", str, "header the TLS proxy overwrites with the client certificate (X-Client-Cert)"),
    Variable("IDP_MTLS_CA_FILE", parse_path, "PEM CA certificate(s) a tls_client_auth certificate must be issued by"),
    Variable("IDP_MTLS_BASE_URL", str, "base URL the TLS proxy serves the mTLS endpoint aliases at (RFC 8705 section 5)"),
)


@dataclass(frozen=True)
class IdpSettings:
    """Everything the identity provider needs to start."""

    common: CommonSettings
    session_idle_seconds: int = 30 * 60
    """An SSO session unused this long ends (and fires back-channel logout)."""
    session_max_seconds: int = 12 * 3600
    """No SSO session outlives this, however active."""
    access_token_seconds: int = 600
    id_token_seconds: int = 600
    refresh_token_seconds: int = 30 * 24 * 3600
    refresh_reuse_grace_seconds: int = 30
    """Issue 20 §1: for this long after a refresh token was rotated, its own client may
    present it once more (a retry of a response it never got: a crash, a timeout) and
    gets a new child, the undelivered one being revoked. Any other reuse revokes the
    family (RFC 9700 §4.14.2). 0: every reuse revokes. As Ory Hydra's
    ``oauth2.refresh_token_rotation.grace_period`` and Cognito's ``RetryGracePeriodSeconds``."""
    code_seconds: int = 60
    client_credentials_seconds: int = 300
    """Machine tokens live minutes (Authlib's default is 10 days)."""
    par_seconds: int = 60
    """How long a pushed authorization request waits for its browser (RFC 9126 §2.2)."""
    require_par: bool = False
    """``require_pushed_authorization_requests`` (RFC 9126 §5)."""
    logout_timeout_seconds: int = 5
    """Connect and read time-out of each back-channel logout POST."""
    logout_min_backoff_ms: int = 15_000
    """First retry delay of a failed delivery; doubles per attempt (Dramatiq Retries)."""
    logout_max_backoff_ms: int = 3_600_000
    """Retry delays stop growing here (one hour)."""
    logout_retry_seconds: int = 3 * 24 * 3600
    """A delivery that still fails this long after the session ended is given up."""
    session_sweep_seconds: int = 30
    queue_requeue_seconds: float = 15.0
    """Issue 20 §5: logout jobs held by a worker that died (SIGKILL, a lost machine) are
    back on the queue within this many seconds while another worker runs (the bound
    :mod:`keys.jobqueue` keeps on Dramatiq's heartbeat and maintenance)."""
    """How often the worker ends sessions past their idle or absolute deadline."""
    inprocess_worker: bool | None = None
    """Run the job worker in the web process; ``None``: only with the in-process Redis."""
    password_hash_memory_kib: int = 19456
    """Argon2id memory cost in KiB: OWASP's 19 MiB. Lowered only by the test suite."""
    password_hash_iterations: int = 2
    """Argon2id time cost (OWASP: 2 at 19 MiB)."""
    trusted_proxies: int = 0
    """How many reverse proxies (load balancers) stand in front: their X-Forwarded-For and
    X-Forwarded-Proto are believed (werkzeug ProxyFix), so throttling sees each citizen's IP."""
    database_pool_size: int = 20
    """PostgreSQL connections kept open per process: above one ``serve`` worker's request
    threads (8) plus its background writers. A smaller pool closes and reopens
    connections under load, and each new one is a PostgreSQL backend forked and
    authenticated (measured: a pool of 5 opened ~200 connections in a 6 s SSO run)."""
    allow_loopback_callbacks: bool | None = None
    """Whether clients' logout URIs (URLs the idp itself calls) may be on loopback, plain
    http included: the embedded demo's portals on 127.0.0.1. ``None``: only when the
    issuer itself is on loopback. Private, link-local and other internal addresses
    are never allowed (issue 19 §7)."""
    audit_anchor_file: Path | None = None
    """Where signed checkpoints of the audit chain's head are appended (issue 11 §6); put it
    on storage the database's administrators cannot rewrite. ``None``: under the home."""
    mtls_proxies: tuple[Any, ...] = ()
    """RFC 8705: the TLS-terminating proxies (networks) whose :attr:`mtls_header` is believed;
    from any other peer the header is dropped (``idp.oauth.mtls.ForwardedCertificate``)."""
    mtls_header: str = "X-Client-Cert"
    """The header the proxy overwrites with the verified client certificate (URL-encoded PEM)."""
    mtls_ca_file: Path | None = None
    """The CA certificate(s) ``tls_client_auth`` certificates chain to (the agency PKI's issuing CA)."""
    mtls_base_url: str | None = None
    """Where the proxy serves the endpoints with mutual TLS (discovery ``mtls_endpoint_aliases``)."""
    dpop_iat_seconds: int = 60
    """RFC 9449 §11.1: a DPoP proof's ``iat`` may be this far from now (plus a few seconds' leeway)."""
    dpop_nonce_endpoints: tuple[str, ...] = ()
    """RFC 9449 §8/§9: endpoints (``token``, ``par``, ``userinfo``) that require a server nonce."""
    cas_ticket_seconds: int = 10
    """Issue 21 §3: how long a CAS service ticket waits for its validation (CAS 3.0 §3.1.1
    recommends at most five minutes; a service validates at once)."""
    ciba_interval_seconds: int = 5
    """CIBA Core 1.0 §7.3 ``interval``: polling sooner is ``slow_down`` (idp.ciba)."""
    ciba_expiry_seconds: int = 300
    """CIBA §7.3 ``expires_in`` of a request that names no ``requested_expiry`` (30 to 1800)."""
    passkey_aaguids: tuple[str, ...] = ()
    """Issue 13 §2: only these authenticator models (AAGUIDs) may register a passkey; empty: any."""
    passkey_attestation_formats: tuple[str, ...] = ()
    passkey_extra_origins: tuple[str, ...] = ()
    """Origins besides the issuer's a passkey ceremony may come from: the mobile app's
    (``android:apk-key-hash:…``, tied to the issuer's domain by its assetlinks.json)."""
    """Only these attestation formats; set (or :attr:`passkey_aaguids`): registration asks for ``direct``."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Test- or deployment-specific knobs that have no variable yet."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IdpSettings:
        values = read_environment(environ, IDP_VARIABLES, own_namespace="IDP_")
        if "IDP_DATABASE_URL" in values:
            values["DATABASE_URL"] = values["IDP_DATABASE_URL"]
        common = CommonSettings.from_values(values, default_issuer="http://127.0.0.1:5000")
        common.check_issuer(values)  # issue 19 §9: no Secure cookies, tokens in clear
        kwargs: dict[str, Any] = {}
        for name, attr in (
            ("IDP_SESSION_IDLE_SECONDS", "session_idle_seconds"),
            ("IDP_SESSION_MAX_SECONDS", "session_max_seconds"),
            ("IDP_ACCESS_TOKEN_SECONDS", "access_token_seconds"),
            ("IDP_LOGOUT_TIMEOUT_SECONDS", "logout_timeout_seconds"),
            ("IDP_LOGOUT_MIN_BACKOFF_MS", "logout_min_backoff_ms"),
            ("IDP_LOGOUT_MAX_BACKOFF_MS", "logout_max_backoff_ms"),
            ("IDP_LOGOUT_RETRY_SECONDS", "logout_retry_seconds"),
            ("IDP_SESSION_SWEEP_SECONDS", "session_sweep_seconds"),
            ("IDP_INPROCESS_WORKER", "inprocess_worker"),
            ("IDP_PASSWORD_HASH_MEMORY_KIB", "password_hash_memory_kib"),
            ("IDP_CLIENT_CREDENTIALS_SECONDS", "client_credentials_seconds"),
            ("IDP_REQUIRE_PAR", "require_par"),
            ("IDP_TRUSTED_PROXIES", "trusted_proxies"),
            ("IDP_DATABASE_POOL_SIZE", "database_pool_size"),
            ("IDP_ALLOW_LOOPBACK_CALLBACKS", "allow_loopback_callbacks"),
            ("IDP_AUDIT_ANCHOR_FILE", "audit_anchor_file"),
            ("IDP_REFRESH_REUSE_GRACE_SECONDS", "refresh_reuse_grace_seconds"),
            ("IDP_QUEUE_REQUEUE_SECONDS", "queue_requeue_seconds"),
            ("IDP_CAS_TICKET_SECONDS", "cas_ticket_seconds"),
            ("IDP_CIBA_INTERVAL_SECONDS", "ciba_interval_seconds"),
            ("IDP_CIBA_EXPIRY_SECONDS", "ciba_expiry_seconds"),
            ("IDP_DPOP_IAT_SECONDS", "dpop_iat_seconds"),
            ("IDP_MTLS_PROXIES", "mtls_proxies"),
            ("IDP_MTLS_HEADER", "mtls_header"),
            ("IDP_MTLS_CA_FILE", "mtls_ca_file"),
            ("IDP_MTLS_BASE_URL", "mtls_base_url"),
        ):
            if name in values:
                kwargs[attr] = values[name]
        if kwargs.get("database_pool_size", 1) < 1:
            raise ConfigurationError("YIWANG_IDP_DATABASE_POOL_SIZE must be at least 1",
                                     variable="YIWANG_IDP_DATABASE_POOL_SIZE")
        if not 0 <= kwargs.get("refresh_reuse_grace_seconds", 0) <= 3600:
            raise ConfigurationError("YIWANG_IDP_REFRESH_REUSE_GRACE_SECONDS must be 0 to 3600 seconds",
                                     variable="YIWANG_IDP_REFRESH_REUSE_GRACE_SECONDS")
        if "IDP_DPOP_NONCE_ENDPOINTS" in values:
            names = tuple(n.strip() for n in values["IDP_DPOP_NONCE_ENDPOINTS"].split(",") if n.strip())
            if not set(names) <= {"token", "par", "userinfo"}:
                raise ConfigurationError("YIWANG_IDP_DPOP_NONCE_ENDPOINTS names token, par or userinfo",
                                         variable="YIWANG_IDP_DPOP_NONCE_ENDPOINTS")
            kwargs["dpop_nonce_endpoints"] = names
        if not 5 <= kwargs.get("dpop_iat_seconds", 60) <= 600:
            raise ConfigurationError("YIWANG_IDP_DPOP_IAT_SECONDS must be 5 to 600 seconds",
                                     variable="YIWANG_IDP_DPOP_IAT_SECONDS")
        for name, attr in (("IDP_PASSKEY_AAGUIDS", "passkey_aaguids"),
                           ("IDP_PASSKEY_ATTESTATION_FORMATS", "passkey_attestation_formats")):
            if name in values:
                kwargs[attr] = tuple(v.strip().lower() for v in values[name].split(",") if v.strip())
        if "IDP_PASSKEY_EXTRA_ORIGINS" in values:  # case kept: an APK key hash is base64url
            kwargs["passkey_extra_origins"] = tuple(
                v.strip() for v in values["IDP_PASSKEY_EXTRA_ORIGINS"].split(",") if v.strip())
        if not 1 <= kwargs.get("cas_ticket_seconds", 10) <= 300:
            raise ConfigurationError("YIWANG_IDP_CAS_TICKET_SECONDS must be 1 to 300 seconds",
                                     variable="YIWANG_IDP_CAS_TICKET_SECONDS")
        return cls(common=common, **kwargs)

    @property
    def home(self) -> Path:
        return self.common.home

    @property
    def database_url(self) -> str:
        return self.common.database_url or f"sqlite:///{self.common.home / 'idp.db'}"

    @property
    def issuer(self) -> str:
        return self.common.issuer

    @property
    def audit_anchor_path(self) -> Path:
        """:attr:`audit_anchor_file`, or ``YIWANG_HOME/audit/anchors.jsonl``."""
        return self.audit_anchor_file or self.common.home / "audit" / "anchors.jsonl"

    @property
    def loopback_callbacks_allowed(self) -> bool:
        """:attr:`allow_loopback_callbacks`, with its default decided."""
        if self.allow_loopback_callbacks is not None:
            return self.allow_loopback_callbacks
        from urllib.parse import urlsplit

        return is_loopback_host(urlsplit(self.issuer).hostname or "")

    def with_(self, **changes: Any) -> IdpSettings:
        return replace(self, **changes)
