"""certstore's settings, read once from the environment at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from keys.config import (
    COMMON_VARIABLES,
    CommonSettings,
    Variable,
    check_transport,
    parse_int,
    parse_path,
    parse_url,
    read_environment,
)
from keys.errors import ConfigurationError

__all__ = ["CertstoreSettings", "CERTSTORE_VARIABLES", "parse_lookup_clients", "PADES_LEVELS", "DEFAULT_TSA_URL"]

PADES_LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
DEFAULT_TSA_URL = "http://127.0.0.1:5180/tsa"
"""The local TSA of the embedded default (``certstore tsa serve``), like the CRL's default address."""


def _parse_pades_level(text: str) -> str:
    level = text.strip().upper()
    if level not in PADES_LEVELS:
        raise ValueError(f"expected one of {', '.join(PADES_LEVELS)}")
    return level


def _parse_days(text: str) -> int:
    value = parse_int(text)
    if not 1 <= value <= 3650:
        raise ValueError("expected 1 to 3650 days")
    return value

_MAX_CACHE_SECONDS = 300


def _parse_client_ids(text: str) -> frozenset[str]:
    """``"wallet-a, wallet-b"``: client ids, comma-separated."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def _parse_networks(text: str) -> tuple[Any, ...]:
    """``"10.0.0.5, 10.1.0.0/16"``: the TLS proxies (RFC 8705 behind a proxy)."""
    import ipaddress

    out = []
    for part in text.replace(";", ",").split(","):
        if part.strip():
            try:
                out.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not an address or CIDR") from None
    return tuple(out)


def _parse_cache_seconds(text: str) -> int:
    value = parse_int(text)
    if not 0 <= value <= _MAX_CACHE_SECONDS:
        raise ValueError(f"expected 0 to {_MAX_CACHE_SECONDS} seconds")
    return value


_REQUEUE_RANGE = (2.0, 3600.0)


def _parse_requeue_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    low, high = _REQUEUE_RANGE
    if not low <= value <= high:
        raise ValueError(f"expected {low:g} to {high:g} seconds")
    return value


def parse_lookup_clients(text: str) -> Mapping[str, frozenset[str] | None]:
    """``"client-a:JZZM,BYZS client-b:*"`` → ``{"client-a": {"JZZM", "BYZS"}, "client-b": None}``.

    Every entry names its types (or ``*`` for all), so that allowing a client
    is always a decision about what it may read, never a bare name.
    """
    out: dict[str, frozenset[str] | None] = {}
    for entry in text.split():
        client_id, sep, types = entry.partition(":")
        if not client_id or not sep or not types:
            raise ValueError(f"expected client-id:TYPE,TYPE or client-id:* (got {entry[:60]!r})")
        if types == "*":
            out[client_id] = None
            continue
        names = frozenset(t for t in types.split(",") if t)
        if not names or not all(t.isalnum() and t.isascii() for t in names):
            raise ValueError(f"certificate type codes are letters and digits (in {entry[:60]!r})")
        out[client_id] = names
    return out


CERTSTORE_VARIABLES = (
    *COMMON_VARIABLES,
    Variable("CERTSTORE_DATABASE_URL", str, "overrides YIWANG_DATABASE_URL for certstore"),
    Variable("CERTSTORE_PUBLIC_URL", parse_url("http", "https"), "certstore's own base URL"),
    Variable("CERTSTORE_REGION", str, "region code of this deployment (e.g. 110000)"),
    Variable("CERTSTORE_TSA_URL", parse_url("http", "https"), "RFC 3161 timestamp authority"),
    Variable("CERTSTORE_TSA_ROOT", parse_path, "PEM file with the TSA's root certificate(s)"),
    Variable(
        "CERTSTORE_PADES_LEVEL",
        _parse_pades_level,
        "PAdES level of issued PDFs: B-LTA (default), B-LT, B-T, or B-B (explicit opt-out: no timestamps)",
    ),
    Variable(
        "CERTSTORE_LTV_RENEW_DAYS",
        _parse_days,
        "days before the last timestamp's TSA certificate expires that `certstore ltv` renews a PDF (default 180)",
    ),
    Variable("CERTSTORE_MAX_UPLOAD_BYTES", parse_int, "largest upload the verify endpoints accept"),
    Variable("CERTSTORE_VERIFY_PDF_MAX_BYTES", parse_int, "largest PDF an anonymous verification parses"),
    Variable("CERTSTORE_VERIFY_CONCURRENCY", parse_int, "uploaded PDFs (and, apart, QR images) verified at once per process"),
    Variable("CERTSTORE_STATUS_LIST_MAX_AGE", parse_int, "seconds: older status lists are refused by verifiers"),
    Variable("CERTSTORE_CLIENT_ID", str, "certstore's client id at the idp (wallet sign-in, introspection)"),
    Variable("CERTSTORE_CLIENT_SECRET", str, "certstore's client secret at the idp (never logged)"),
    Variable(
        "CERTSTORE_INTROSPECTION_CACHE_SECONDS",
        _parse_cache_seconds,
        "seconds an active introspection answer is trusted: the revocation bound (0-300, default 30)",
    ),
    Variable(
        "CERTSTORE_LOOKUP_CLIENTS",
        parse_lookup_clients,
        "clients allowed POST /api/v1/lookup and the types each may read: 'client-a:JZZM,BYZS client-b:*'",
    ),
    Variable(
        "CERTSTORE_QUEUE_REQUEUE_SECONDS",
        _parse_requeue_seconds,
        "seconds within which batch messages held by a dead worker are back on the queue (2-3600, default 15)",
    ),
    Variable("FAULT_POINTS", str, "test only: named fault seams that kill the process (certstore.faults)"),
    Variable("CERTSTORE_MTLS_PROXIES", _parse_networks,
             "addresses/CIDRs of the TLS proxies whose client-certificate header is believed (RFC 8705)"),
    Variable("CERTSTORE_MTLS_HEADER", str, "header the TLS proxy overwrites with the client certificate (X-Client-Cert)"),
    Variable("CERTSTORE_VP_COUNTER_AGENCY", str,
             "credit code of the agency whose key signs the /vp/counter page's OpenID4VP requests (unset: no counter page)"),
    Variable("CERTSTORE_VCI_WALLET_CLIENTS", _parse_client_ids,
             "idp client ids of the wallets that may receive credentials with a citizen's token (OpenID4VCI)"),
    Variable("CERTSTORE_HOLDER_CLIENT_ID", str,
             "idp client id (public, PKCE) our wallet's holder signs in with to receive credentials (OpenID4VCI)"),
)


@dataclass(frozen=True)
class CertstoreSettings:
    """Everything certstore needs to start."""

    common: CommonSettings
    public_url: str = "http://127.0.0.1:5100"
    region: str = "110000"
    tsa_url: str | None = None
    """The RFC 3161 TSA that timestamps issued PDFs (``from_env``: the local ``certstore tsa serve``
    in the embedded default; a deployment on its own database must name one)."""
    tsa_root_file: Path | None = None
    """PEM file of the root certificate(s) the TSA chains to, trusted for timestamps (not needed
    for the local TSA: its certificate is issued by the region's issuing CA)."""
    pades_level: str = "B-LTA"
    """PAdES baseline level of issued PDFs (issue 15 §3). Settings built in code without a
    ``tsa_url`` sign B-B (tests that do not care; :class:`certstore.issuance.Issuance` warns);
    ``from_env`` refuses that combination unless B-B is asked for explicitly."""
    ltv_renew_days: int = 180
    """``certstore ltv``: a PDF is due when its last timestamp's TSA certificate expires within this."""
    audience: str = "certstore"
    """The ``aud`` certstore requires in access tokens from the idp."""
    max_upload_bytes: int = 10 * 1024 * 1024
    """Uploads (QR images, PDFs) above this are refused with 413."""
    verify_pdf_max_bytes: int = 2 * 1024 * 1024
    """An uploaded PDF above this is refused before parsing (a certificate PDF is ~40 KB)."""
    verify_concurrency: int = 2
    """Anonymous PDF verifications, and apart QR image decodes, running at once per process;
    more get 503 with ``Retry-After`` (issue 19 findings 3 and 4)."""
    status_list_size: int = 131_072
    """Entries per status list (issue 6: at least 131,072, so a position hides in a crowd)."""
    status_list_ttl: int = 300
    """Seconds a signed status list is served and cached before it is re-signed / re-fetched."""
    status_list_lifetime: int = 86_400
    """``exp - iat`` of a signed status list."""
    status_list_max_age: int = 86_400
    """A verifier refuses a status list issued longer ago than this (seconds)."""
    client_id: str | None = None
    """certstore's own client at the idp (registered ``--may-receive-id-number``): wallet
    sign-in and introspection of citizens' tokens (``certstore.wallet``)."""
    client_secret: str | None = field(default=None, repr=False)
    introspection_cache_seconds: int = 30
    """How long an ``active`` introspection answer is trusted: a revoked agency or citizen
    token, or one whose SSO session ended, is refused at most this long after (issue 11)."""
    lookup_clients: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    """certstore's own allow-list for ``POST /api/v1/lookup``: client id → the certificate
    types it may read (``None``: all). The ``certs:lookup`` scope alone opens nothing."""
    mtls_proxies: tuple[Any, ...] = ()
    """RFC 8705 §3.2: the TLS proxies whose :attr:`mtls_header` counts; a certificate-bound
    token needs that header's certificate (``certstore.binding.check_certificate_binding``)."""
    mtls_header: str = "X-Client-Cert"
    """The header the proxy overwrites with the verified client certificate (URL-encoded PEM)."""
    queue_requeue_seconds: float = 15.0
    """Batch-queue messages held by a killed or stopped worker are back on the queue at most
    this long after it died (issue 20 §5; :mod:`keys.jobqueue` says how the bound is kept)."""
    vci_wallet_clients: frozenset[str] = frozenset()
    """certstore's own allow-list for OpenID4VCI's authorization code flow (issue 15 §1): the idp
    clients whose citizen tokens the credential endpoint takes. A portal holding a citizen's
    ``certs:read`` token may read certificates, not hold credentials bound to its own key. The
    embedded demo allows ``demo-wallet`` (``idp init --demo``)."""
    holder_client_id: str | None = None
    """The idp client (public, PKCE S256) our wallet's holder pages sign the citizen in with to receive
    credentials by the authorization code flow (``certstore.web.holder_issue``); unset, only offers.
    The embedded demo uses ``demo-wallet`` (``idp init --demo``)."""
    vp_counter_agency: str | None = None
    """The agency (credit code) whose signer key signs the OpenID4VP requests of the ``/vp/counter``
    page (issue 15 §2); unset, the page is not served (agencies still use ``/api/v1/vp/requests``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CertstoreSettings:
        values = read_environment(environ, CERTSTORE_VARIABLES, own_namespace="CERTSTORE_")
        if "CERTSTORE_DATABASE_URL" in values:
            values["DATABASE_URL"] = values["CERTSTORE_DATABASE_URL"]
        common = CommonSettings.from_values(values, default_issuer="http://127.0.0.1:5000")
        common.check_issuer(values)  # the idp certstore sends its client secret to
        kwargs: dict[str, Any] = {}
        if "CERTSTORE_PUBLIC_URL" in values:
            # Its wallet cookie and the idp's redirects to it carry sessions (issue 19 §9).
            check_transport(values["CERTSTORE_PUBLIC_URL"], variable="YIWANG_CERTSTORE_PUBLIC_URL",
                            allow_insecure=common.allow_insecure_http)
            kwargs["public_url"] = values["CERTSTORE_PUBLIC_URL"].rstrip("/")
        # CERTSTORE_TSA_URL may stay plain http: an RFC 3161 request carries only a digest and
        # the answer is a signed token checked against CERTSTORE_TSA_ROOT (many TSAs serve http only).
        if "CERTSTORE_REGION" in values:
            kwargs["region"] = values["CERTSTORE_REGION"]
        if "CERTSTORE_TSA_ROOT" in values:
            kwargs["tsa_root_file"] = values["CERTSTORE_TSA_ROOT"]
        kwargs.update(_signing_level(values, embedded=common.database_url is None))
        if "CERTSTORE_LTV_RENEW_DAYS" in values:
            kwargs["ltv_renew_days"] = values["CERTSTORE_LTV_RENEW_DAYS"]
        if "CERTSTORE_MAX_UPLOAD_BYTES" in values:
            kwargs["max_upload_bytes"] = values["CERTSTORE_MAX_UPLOAD_BYTES"]
        if "CERTSTORE_VERIFY_PDF_MAX_BYTES" in values:
            kwargs["verify_pdf_max_bytes"] = values["CERTSTORE_VERIFY_PDF_MAX_BYTES"]
        if "CERTSTORE_VERIFY_CONCURRENCY" in values:
            kwargs["verify_concurrency"] = max(1, values["CERTSTORE_VERIFY_CONCURRENCY"])
        for name in ("client_id", "client_secret"):
            if f"CERTSTORE_{name.upper()}" in values:
                kwargs[name] = values[f"CERTSTORE_{name.upper()}"]
        if "CERTSTORE_INTROSPECTION_CACHE_SECONDS" in values:
            kwargs["introspection_cache_seconds"] = values["CERTSTORE_INTROSPECTION_CACHE_SECONDS"]
        if "CERTSTORE_MTLS_PROXIES" in values:
            kwargs["mtls_proxies"] = values["CERTSTORE_MTLS_PROXIES"]
        if "CERTSTORE_MTLS_HEADER" in values:
            kwargs["mtls_header"] = values["CERTSTORE_MTLS_HEADER"]
        if "CERTSTORE_LOOKUP_CLIENTS" in values:
            kwargs["lookup_clients"] = values["CERTSTORE_LOOKUP_CLIENTS"]
        if "CERTSTORE_STATUS_LIST_MAX_AGE" in values:
            kwargs["status_list_max_age"] = values["CERTSTORE_STATUS_LIST_MAX_AGE"]
        if "CERTSTORE_VCI_WALLET_CLIENTS" in values:
            kwargs["vci_wallet_clients"] = values["CERTSTORE_VCI_WALLET_CLIENTS"]
        elif common.database_url is None:
            kwargs["vci_wallet_clients"] = frozenset({"demo-wallet"})  # the embedded demo's wallet
        if "CERTSTORE_HOLDER_CLIENT_ID" in values:
            kwargs["holder_client_id"] = values["CERTSTORE_HOLDER_CLIENT_ID"].strip() or None
        elif common.database_url is None:
            kwargs["holder_client_id"] = "demo-wallet"  # the embedded demo's wallet client
        if "CERTSTORE_VP_COUNTER_AGENCY" in values:
            kwargs["vp_counter_agency"] = values["CERTSTORE_VP_COUNTER_AGENCY"].strip() or None
        if "CERTSTORE_QUEUE_REQUEUE_SECONDS" in values:
            kwargs["queue_requeue_seconds"] = values["CERTSTORE_QUEUE_REQUEUE_SECONDS"]
        return cls(common=common, **kwargs)

    @property
    def signing_level(self) -> str:
        """The level PDFs are actually signed at: B-B when built in code without a TSA."""
        return self.pades_level if self.tsa_url else "B-B"

    @property
    def home(self) -> Path:
        return self.common.home

    @property
    def database_url(self) -> str:
        return self.common.database_url or f"sqlite:///{self.common.home / 'certstore.db'}"

    def with_(self, **changes: Any) -> CertstoreSettings:
        return replace(self, **changes)


def _signing_level(values: Mapping[str, Any], *, embedded: bool) -> dict[str, Any]:
    """PAdES level and TSA, failing closed (issue 15 §3).

    B-LTA is the default. The embedded default (no database URL) timestamps
    with the local TSA (``certstore tsa serve``, started by ``make demo``); a
    deployment on its own database must name its TSA or opt out of
    timestamps explicitly: certstore refuses to start otherwise, rather than
    issue PDFs that stop verifying when the agency's certificate expires.
    """
    level = values.get("CERTSTORE_PADES_LEVEL", "B-LTA")
    out: dict[str, Any] = {"pades_level": level}
    if "CERTSTORE_TSA_URL" in values:
        out["tsa_url"] = values["CERTSTORE_TSA_URL"]
    elif level != "B-B":
        if not embedded:
            raise ConfigurationError(
                f"PDFs are signed PAdES {level} (YIWANG_CERTSTORE_PADES_LEVEL), which needs a time-stamping "
                "authority: set YIWANG_CERTSTORE_TSA_URL (an RFC 3161 TSA; `certstore tsa serve` runs one with "
                "the region PKI), or opt out explicitly with YIWANG_CERTSTORE_PADES_LEVEL=B-B",
                variable="YIWANG_CERTSTORE_TSA_URL",
            )
        out["tsa_url"] = DEFAULT_TSA_URL
    return out
