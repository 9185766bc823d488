"""CIBA at the Authlib server: the backchannel authentication endpoint and the token grant.

Registered by :func:`register_ciba` (called from
:func:`idp.oauth.server.configure_server`):

- :class:`BackchannelAuthenticationEndpoint` (CIBA Core 1.0 §7), the
  endpoint ``backchannel_authentication``, served at ``/bc-authorize``;
- :class:`CibaGrant` (§10.1, §11) for ``grant_type=urn:openid:params:grant-type:ciba``
  at the token endpoint (both of its front doors). Tokens are issued like the
  other grants' (the provider's generator: the scope policy cuts again, DPoP or
  mTLS binding through :class:`~idp.oauth.binding.BoundTokens`, records in SQL);
  they belong to the approving SSO session (its ``sid``), so signing out ends
  them and the client gets a back-channel logout like any other of the
  session's clients; ``act`` (RFC 8693 §4.1) names the clerk or agent who
  acted for the citizen, in the access token, the ID token and introspection.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc8628.errors import (
    AuthorizationPendingError,
    ExpiredTokenError,
    SlowDownError,
)

from ..oauth.binding import BoundTokens
from .request import CIBA_GRANT_TYPE

__all__ = ["BackchannelAuthenticationEndpoint", "CibaGrant", "register_ciba", "CLIENT_AUTH_METHODS",
           "ENDPOINT_PATH"]

logger = logging.getLogger(__name__)

ENDPOINT_PATH = "/bc-authorize"
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt",
                       "tls_client_auth", "self_signed_tls_client_auth"]
"""Confidential clients only (CIBA §4: "the Client MUST authenticate")."""
HISTORY = 20
HISTORY_SECONDS = 400 * 24 * 3600


class BackchannelAuthenticationEndpoint:
    """CIBA Core 1.0 §7.1–§7.3 (errors §13)."""

    ENDPOINT_NAME = "backchannel_authentication"

    def __init__(self, server: Any) -> None:
        self.server = server

    def __call__(self, request: Any) -> Any:
        return self.create_endpoint_response(request)

    def create_endpoint_request(self, request: Any) -> Any:
        return self.server.create_oauth2_request(request)

    def create_endpoint_response(self, request: Any) -> Any:
        client = self.server.authenticate_client(request, CLIENT_AUTH_METHODS, self.ENDPOINT_NAME)
        request.client = client
        form = request.form
        if hasattr(form, "getlist") and any(len(form.getlist(k)) > 1 for k in form):
            raise InvalidRequestError("a parameter is repeated (RFC 6749 section 3.1)")
        params = dict(form.items())
        body = self.server.ciba.start(client, params, ip=getattr(request, "remote_addr", None))
        return 200, body, default_json_headers


class CibaGrant(BoundTokens, BaseGrant, TokenEndpointMixin):
    """CIBA Core 1.0 §10.1 (poll, and the ping client's fetch) and §11 (token errors)."""

    GRANT_TYPE = CIBA_GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if client.is_public or not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("the client is not registered for CIBA")
        self.request.client = client
        auth_req_id = self.request.form.get("auth_req_id")
        if not auth_req_id:
            raise InvalidRequestError("Missing 'auth_req_id'")
        ciba = self.server.ciba
        result = ciba.store.poll(str(auth_req_id), client.client_id)
        status = result.status
        if status == "pending":
            raise AuthorizationPendingError()
        if status == "slow_down":
            raise SlowDownError()
        if status == "expired":
            raise ExpiredTokenError()
        if status == "denied":
            raise AccessDeniedError()
        if status == "wrong_client":  # §11: "auth_req_id ... was issued to another Client"
            logger.warning("client %s presented another client's auth_req_id", client.client_id)
            raise InvalidGrantError("the auth_req_id is invalid")
        if status != "approved":
            if status == "used":
                logger.warning("client %s redeemed a used auth_req_id", client.client_id)
            raise InvalidGrantError("the auth_req_id is invalid, expired or already used")
        self.request.user = self._grant_user(result.record)
        self.request.ciba = result.record

    def _grant_user(self, record: dict[str, str]) -> Any:
        from ..oauth.provider import GrantUser

        provider = self.server.provider
        citizen = provider.get_citizen(int(record["citizen_id"]))
        if citizen is None or citizen.disabled:
            raise InvalidGrantError("the citizen's account is not available")
        # The approving session must still live: a sign-out between the approval
        # and the poll must not hand out tokens for a dead session.
        if provider.sessions.get(record["sid"], touch=False) is None:
            raise InvalidGrantError("the approving session has ended")
        actor = json.loads(record["actor"]) if record.get("actor") else None
        return GrantUser(
            citizen_id=citizen.id, public_id=citizen.public_id, sid=record["sid"],
            auth_time=int(record["auth_time"]), acr=record.get("session_acr", ""),
            amr=list(json.loads(record.get("amr") or "[]")), citizen=citizen,
            extra={"act": actor["act"]} if actor else {},
        )

    def create_token_response(self) -> Any:
        try:
            return self._issue()
        except OAuth2Error:
            raise  # a protocol answer: the redemption stands
        except Exception:
            # A backing service failed after the approval was taken (as the refresh grant
            # does): give it back, so the client's next poll gets the tokens.
            self.server.ciba.store.release(str(self.request.form.get("auth_req_id")), self.request.ciba)
            raise

    def _issue(self) -> Any:
        client = self.request.client
        user = self.request.user
        record = self.request.ciba
        provider = self.server.provider
        token = self.generate_token(user=user, scope=record["scope"],
                                    include_refresh_token=client.check_grant_type("refresh_token"))
        scopes = str(token.get("scope") or "").split()
        if "openid" in scopes:
            from ..oauth.tokens import at_hash

            claims: dict[str, Any] = {
                "sub": provider.subject(client, user.public_id), "aud": client.client_id,
                "azp": client.client_id, "sid": user.sid, "auth_time": user.auth_time, "acr": user.acr,
                "amr": list(user.amr), "at_hash": at_hash(token["access_token"]),
                # CIBA §10.1.1: the auth_req_id and rt_hash claims are for push mode only (not served).
            }
            if user.extra.get("act"):
                claims["act"] = user.extra["act"]
            alg = client.id_token_signed_response_alg or "ES256"
            token["id_token"] = provider.tokens.encode_id_token(claims, alg="RS256" if alg == "RS256" else "ES256")
        self.save_token(token)
        # CIBA tokens belong to the approving session (single sign-out, issue 13 §1).
        provider.sessions.add_client(user.sid, client.client_id)
        actor = json.loads(record["actor"]) if record.get("actor") else None
        self._remember(user.citizen_id, client, actor, scopes)
        provider.audit("ciba.token", client_id=client.client_id, subject=f"citizen:{user.citizen_id}",
                       actor=f"{actor['kind']}:{actor['sub']}"[:200] if actor else None,
                       detail={"request": record.get("display_id", ""), "sid": user.sid, "scope": token.get("scope")})
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def _remember(self, citizen_id: int, client: Any, actor: dict[str, Any] | None, scopes: list[str]) -> None:
        """The account page's "counter X, clerk Y, at time T, scopes S" (the audit chain is the durable record)."""
        if actor is None:
            return
        provider = self.server.provider
        key = f"{provider.prefix}ciba:hist:{citizen_id}"
        item = json.dumps({"client": client.name, "kind": actor["kind"], "name": actor["name"],
                           "office": actor["office"], "at": provider.tokens.now(), "scopes": scopes},
                          ensure_ascii=False)
        pipe = provider.redis.pipeline(transaction=False)
        pipe.lpush(key, item)
        pipe.ltrim(key, 0, HISTORY - 1)
        pipe.expire(key, HISTORY_SECONDS)
        pipe.execute()


def acting_history(redis: Any, prefix: str, citizen_id: int) -> list[dict[str, Any]]:
    """The citizen's recent grants a clerk or agent started, newest first."""
    return [json.loads(raw) for raw in redis.lrange(f"{prefix}ciba:hist:{citizen_id}", 0, HISTORY - 1)]


def register_ciba(server: Any, service: Any) -> None:
    """Register the CIBA endpoint and grant on an Authlib server carrying ``server.provider``."""
    if getattr(server, "ciba", None) is not None:
        return
    server.ciba = service
    server.register_grant(CibaGrant)
    server.register_endpoint(BackchannelAuthenticationEndpoint)
