"""The citizen's certificates: the wallet, consented sharing, lookups, and who read what.

How certstore learns whose certificates a token is about
---------------------------------------------------------
Access tokens for certstore carry a *pairwise* ``sub`` — pairwise per the
portal that asked for them, so certstore cannot map it to a person, and the
ID number must not be in the token (the portal holds the token and could read
it). We chose **token introspection** (RFC 7662): certstore is registered at
the idp as a resource server allowed to receive the ID number
(``--may-receive-id-number``); it introspects the citizen's token with its own
client credentials and the idp adds ``id_number`` to the introspection answer
*only* for that caller and only for tokens whose audience is certstore. The
portal never sees the number; certstore turns it into its blind index at once
and keeps nothing else. (The alternative — linking the wallet login's ``sub``
— fails for tokens other portals obtain, whose ``sub`` differs per portal.)

:class:`HolderResolver` is that seam: :class:`IntrospectionResolver` talks to
the idp; tests use :class:`StaticResolver`.

Scopes
------
``certs:read`` reads all of the citizen's certificates; ``certs:read:<TYPE>``
only those of that type (the consent screen shows which). ``certs:lookup``
(client credentials of an agency registered for it) finds a person's
certificates by ID number and must state a ``purpose``. Every read is written
to :class:`~certstore.models.AccessLog` — client, when, how, purpose, which
certificates — and shown to the citizen in the wallet.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from keys.errors import InvalidIdentifier
from keys.identifiers import parse_resident_id

from .db import session_scope
from .errors import Forbidden, InvalidInput, NotFound, ServiceUnavailable, Unauthorized
from .models import AccessLog, Certificate
from .service import PII_PURPOSE, CertificateService
from .tokens import HttpIntrospector
from .views import CertificateView

__all__ = [
    "READ_SCOPE",
    "LOOKUP_SCOPE",
    "HolderResolver",
    "StaticResolver",
    "IntrospectionResolver",
    "TokenHolder",
    "AccessRecord",
    "WalletService",
    "readable_types",
]

logger = logging.getLogger(__name__)

READ_SCOPE = "certs:read"
LOOKUP_SCOPE = "certs:lookup"
_MAX_PURPOSE = 500


@dataclass(frozen=True)
class TokenHolder:
    """Whose token it is (the ID number, kept only long enough to make the blind index)
    and the display name of the client holding it, when the idp says."""

    id_number: str
    client_name: str | None = None

    def __repr__(self) -> str:
        return f"TokenHolder(client_name={self.client_name!r})"


class HolderResolver(Protocol):
    def holder(self, token: str) -> TokenHolder | None:
        """The citizen the access token ``token`` was issued for, or ``None``."""


class StaticResolver:
    """Tests and demos: a fixed ``token -> ID number`` table."""

    def __init__(self, table: dict[str, str] | None = None) -> None:
        self.table = dict(table or {})

    def holder(self, token: str) -> TokenHolder | None:
        number = self.table.get(token)
        return TokenHolder(number) if number else None


class IntrospectionResolver:
    """RFC 7662 introspection at the idp, authenticated as certstore (``client_secret_basic``).

    Asked on every read, never cached: the ID number in the answer is turned
    into the blind index at once and not kept.
    """

    def __init__(
        self, endpoint: str, client_id: str, client_secret: str, *, timeout: float = 5.0, session: Any = None
    ) -> None:
        self._introspector = HttpIntrospector(endpoint, client_id, client_secret, timeout=timeout, session=session)

    def __repr__(self) -> str:
        return f"IntrospectionResolver({self._introspector.endpoint!r}, client_id={self._introspector.client_id!r})"

    def holder(self, token: str) -> TokenHolder | None:
        data = self._introspector.introspect(token)
        if data.get("active") is not True:
            return None
        number = data.get("id_number")
        if not isinstance(number, str) or not number:
            return None
        name = data.get("client_name")
        return TokenHolder(number, name if isinstance(name, str) and name.strip() else None)


def readable_types(scopes: Iterable[str]) -> frozenset[str] | None:
    """``None``: every type (``certs:read``); else the types named by ``certs:read:<TYPE>``."""
    scopes = set(scopes)
    if READ_SCOPE in scopes:
        return None
    return frozenset(s.split(":", 2)[2] for s in scopes if s.startswith(READ_SCOPE + ":") and s.count(":") == 2)


@dataclass(frozen=True)
class AccessRecord:
    at: dt.datetime
    client_id: str
    client_name: str | None
    via: str
    purpose: str | None
    identifiers: tuple[str, ...]


class WalletService:
    def __init__(self, certificates: CertificateService, resolver: HolderResolver | None = None) -> None:
        self.certificates = certificates
        self.resolver = resolver

    def holder_index(self, holder_code: str) -> str:
        try:
            rid = parse_resident_id(holder_code)
        except InvalidIdentifier as e:
            raise InvalidInput(f"id_number: {e}", field="id_number") from None
        return self.certificates.keyring.pii().blind_index(rid.number, purpose=PII_PURPOSE)

    def _list(self, index: str, types: frozenset[str] | None) -> list[CertificateView]:
        stmt = sa.select(Certificate).where(Certificate.holder_code_index == index).order_by(Certificate.issued_at.desc())
        if types is not None:
            if not types:
                return []
            stmt = stmt.where(Certificate.type_code.in_(sorted(types)))
        with self.certificates.sessions() as s:
            return [self.certificates._view(r) for r in s.scalars(stmt.limit(500))]

    def _log(self, index: str, *, client_id: str, client_name: str | None, via: str, purpose: str | None, views: list[CertificateView]) -> None:
        with session_scope(self.certificates.sessions) as s:
            s.add(
                AccessLog(
                    holder_code_index=index,
                    client_id=client_id,
                    client_name=client_name,
                    via=via,
                    purpose=purpose,
                    identifiers=[v.identifier for v in views],
                    at=self.certificates.clock(),
                )
            )

    # -- the citizen's own view --------------------------------------------

    def own_certificates(self, index: str) -> list[CertificateView]:
        """The wallet: the signed-in citizen's certificates (not logged: they read their own)."""
        return self._list(index, None)

    def owns(self, index: str, identifier: str) -> CertificateView:
        view = self.certificates.get(identifier)
        with self.certificates.sessions() as s:
            row = s.scalar(sa.select(Certificate.holder_code_index).where(Certificate.identifier == view.identifier))
        if row != index:
            raise NotFound("there is no certificate with that identifier", field="identifier")
        return view

    def access_log(self, index: str, *, limit: int = 200) -> list[AccessRecord]:
        with self.certificates.sessions() as s:
            rows = s.scalars(
                sa.select(AccessLog).where(AccessLog.holder_code_index == index).order_by(AccessLog.id.desc()).limit(limit)
            ).all()
        return [
            AccessRecord(
                at=r.at if r.at.tzinfo else r.at.replace(tzinfo=dt.UTC),
                client_id=r.client_id,
                client_name=r.client_name,
                via=r.via,
                purpose=r.purpose,
                identifiers=tuple(r.identifiers or ()),
            )
            for r in rows
        ]

    # -- other agencies ----------------------------------------------------

    def shared(self, token: str, *, client_id: str, scopes: Iterable[str], type_filter: str | None, purpose: str | None) -> list[CertificateView]:
        """``GET /api/v1/me/certificates``: what the citizen consented to share with ``client_id``."""
        allowed = readable_types(scopes)
        if allowed is not None and not allowed:
            raise Forbidden(f"the token lacks the scope {READ_SCOPE}", code="insufficient_scope", scope=READ_SCOPE)
        if self.resolver is None:
            raise ServiceUnavailable("certstore is not configured to identify citizens (introspection)")
        holder = self.resolver.holder(token)
        if holder is None:
            raise Unauthorized("the token does not identify a citizen to certstore")
        index = self.holder_index(holder.id_number)
        types = allowed
        if type_filter:
            wanted = frozenset(t.strip() for t in type_filter.split(",") if t.strip())
            types = wanted if types is None else types & wanted
        views = self._list(index, types)
        self._log(index, client_id=client_id, client_name=holder.client_name or self._client_name(client_id), via="consent", purpose=_purpose(purpose, required=False), views=views)
        return views

    def lookup(
        self,
        id_number: str,
        *,
        client_id: str,
        purpose: Any,
        type_filter: str | None,
        allowed_types: frozenset[str] | None,
    ) -> list[CertificateView]:
        """``certs:lookup``: an agency on certstore's allow-list finds a person's certificates, stating why.

        ``allowed_types`` is what the allow-list lets ``client_id`` read (``None``: every type);
        asking for another type is refused, not silently emptied, so a misconfiguration shows.
        """
        reason = _purpose(purpose, required=True)
        index = self.holder_index(id_number)
        types = allowed_types
        if type_filter:
            wanted = frozenset(t.strip() for t in type_filter.split(",") if t.strip())
            if allowed_types is not None and not wanted <= allowed_types:
                raise Forbidden(
                    "this client may look up only certificates of the types "
                    + ", ".join(sorted(allowed_types)),
                    code="type_not_allowed",
                    field="type",
                )
            types = wanted
        views = self._list(index, types)
        self._log(index, client_id=client_id, client_name=self._client_name(client_id), via="lookup", purpose=reason, views=views)
        return views

    def _client_name(self, client_id: str) -> str | None:
        info = self.certificates.registry.issuer_for_client(client_id)
        return info.name_zh if info is not None else None


def _purpose(value: Any, *, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput("a lookup must state its purpose (purpose=…)", field="purpose")
        return None
    if not isinstance(value, str) or len(value.strip()) > _MAX_PURPOSE or not value.strip().isprintable():
        raise InvalidInput(f"purpose must be printable text of at most {_MAX_PURPOSE} characters", field="purpose")
    return value.strip()
