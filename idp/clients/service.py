"""Managing registered relying parties: add, list, show, rotate secret, delete (issue 3 §2).

Owns :class:`ClientService`, what the ``idp clients`` CLI and the protocol
core call: it stores what :func:`~.registration.build_client` accepted,
audits every change in the same transaction, and looks clients up.

Client secrets are 256-bit random (``secrets.token_urlsafe(32)``), shown
once and stored as SHA-256 hex: a fast hash is right for a high-entropy
secret, and a slow KDF would cap the token endpoint (docs/design.md).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import sqlalchemy as sa

from ..audit import AuditLog
from ..db import Database
from ..errors import InvalidInput, NotFound
from ..models import Client, Consent, TokenRecord, hash_client_secret, utcnow
from .registration import ClientSpec, build_client
from .uris import Resolver, resolve_host

__all__ = ["ClientService", "client_to_dict"]

logger = logging.getLogger(__name__)


def client_to_dict(client: Client) -> dict[str, Any]:
    """The registration as JSON-friendly data (no secret, no hash)."""
    return {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "frontchannel_logout_uri": client.frontchannel_logout_uri,
        "grant_types": list(client.grant_types),
        "response_types": list(client.response_types),
        "scopes": list(client.scopes),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "jwks_uri": client.jwks_uri,
        "has_jwks": client.jwks is not None,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "subject_type": client.subject_type,
        "sector_identifier": client.sector_identifier,
        "first_party": client.first_party,
        "may_receive_id_number": client.may_receive_id_number,
        "attributes": dict(client.attributes or {}),
        "dpop_bound_access_tokens": bool(client.attribute("dpop_bound_access_tokens", False)),
        "created_at": client.created_at.isoformat(timespec="seconds"),
        "secret_rotated_at": (
            client.secret_rotated_at.isoformat(timespec="seconds")
            if client.secret_rotated_at
            else None
        ),
    }


class ClientService:
    """Registers and manages relying parties; every change is audited."""

    def __init__(self, db: Database, *, audit: AuditLog | None = None, allow_loopback_callbacks: bool = False,
                 resolve: Resolver = resolve_host) -> None:
        self.db = db
        self.audit = audit
        self.allow_loopback_callbacks = allow_loopback_callbacks
        """Logout URIs may be on loopback (the embedded demo; ``IdpSettings.loopback_callbacks_allowed``)."""
        self._resolve = resolve

    def add(self, spec: ClientSpec, *, actor: str = "admin") -> tuple[Client, str | None]:
        """Register a client. Returns it and its secret (``None`` if it has none).

        The secret is not kept: this is the only time it can be shown.
        """
        client = build_client(spec, allow_loopback=self.allow_loopback_callbacks,
                              resolve=self._resolve)
        secret = None
        if client.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post"):
            secret = secrets.token_urlsafe(32)
            client.secret_hash = hash_client_secret(secret)
        try:
            with self.db.session() as s:
                if s.get(Client, client.client_id) is not None:
                    raise InvalidInput(f"a client with id {client.client_id} already exists")
                s.add(client)
                s.flush()
                self._audit(
                    s,
                    "admin.client_added",
                    actor=actor,
                    subject=client.client_id,
                    client_id=client.client_id,
                    detail={
                        "name": client.name,
                        "grant_types": client.grant_types,
                        "scopes": client.scopes,
                        "public": client.is_public,
                    },
                )
        except sa.exc.IntegrityError:
            raise InvalidInput(f"a client with id {client.client_id} already exists") from None
        logger.info("client added %s", client.client_id)
        return client, secret

    def get(self, client_id: str) -> Client | None:
        """The client, or ``None``; what Authlib's ``query_client`` wants."""
        if not client_id or len(client_id) > 64:
            return None
        with self.db.session() as s:
            return s.get(Client, client_id)

    def show(self, client_id: str) -> Client:
        client = self.get(client_id)
        if client is None:
            raise NotFound(f"no client with id {client_id}")
        return client

    def list(self) -> list[Client]:
        with self.db.session() as s:
            return list(s.scalars(sa.select(Client).order_by(Client.created_at, Client.client_id)))

    def rotate_secret(self, client_id: str, *, actor: str = "admin") -> str:
        """A new secret replaces the old one at once; returned once, stored hashed."""
        secret = secrets.token_urlsafe(32)
        with self.db.session() as s:
            client = s.get(Client, client_id, with_for_update=True)
            if client is None:
                raise NotFound(f"no client with id {client_id}")
            if client.secret_hash is None:
                raise InvalidInput(
                    f"client {client_id} authenticates with {client.token_endpoint_auth_method}; "
                    "it has no secret to rotate"
                )
            client.secret_hash = hash_client_secret(secret)
            client.secret_rotated_at = utcnow()
            self._audit(
                s, "admin.client_secret_rotated", actor=actor, subject=client_id, client_id=client_id
            )
        logger.info("client secret rotated %s", client_id)
        return secret

    def delete(self, client_id: str, *, actor: str = "admin") -> None:
        """Remove a client with its consents and token records."""
        with self.db.session() as s:
            client = s.get(Client, client_id)
            if client is None:
                raise NotFound(f"no client with id {client_id}")
            # Explicit deletes: SQLite only cascades with the pragma on, and
            # the ORM must not try to null the foreign keys.
            s.execute(sa.delete(TokenRecord).where(TokenRecord.client_id == client_id))
            s.execute(sa.delete(Consent).where(Consent.client_id == client_id))
            s.delete(client)
            self._audit(
                s,
                "admin.client_deleted",
                actor=actor,
                subject=client_id,
                client_id=client_id,
                detail={"name": client.name},
            )
        logger.info("client deleted %s", client_id)

    def _audit(self, session: Any, kind: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.record(kind, session=session, **fields)
