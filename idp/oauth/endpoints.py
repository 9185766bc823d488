"""The token, introspection (RFC 7662), revocation (RFC 7009) and userinfo (OIDC Core §5.3) endpoints.

Each ``*_reply`` function answers one request as a plain ``(status, headers,
body)`` :data:`Reply`, with no web framework: the Flask views
(:mod:`idp.web.views_oauth`) and the WSGI hot path (:mod:`idp.web.hotpaths`)
both call them, so the two front doors give the same answers by construction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from authlib.common.errors import ContinueIteration
from authlib.oauth2.rfc6749.errors import (
    InvalidRequestError,
    OAuth2Error,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint as _Revocation
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _Introspection

from .binding import cnf_of
from .claims import CitizenClaims, user_claims
from .dpop import resource_challenge, resource_refusal
from .grants import AUTH_METHODS
from .mtls import check_certificate_binding
from .tokens import AccessTokenClaims, refresh_hash

__all__ = [
    "IntrospectionEndpoint",
    "RevocationEndpoint",
    "userinfo_claims",
    "FoundToken",
    "NO_STORE",
    "Reply",
    "json_reply",
    "bearer_error",
    "dpop_error",
    "token_reply",
    "endpoint_reply",
    "userinfo_reply",
]

logger = logging.getLogger(__name__)

_CLIENT_AUTH = [m for m in AUTH_METHODS if m != "none"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_NO_STORE_ITEMS = list(NO_STORE.items())
_JSON = "application/json"

Reply = tuple[int, list[tuple[str, str]], bytes]
"""An HTTP answer: status code, headers, body."""


class FoundToken:
    """An access token (verified JWT) or a refresh token (SQL row) found by value."""

    def __init__(self, kind: str, *, access: AccessTokenClaims | None = None,
                 row: dict[str, Any] | None = None, revoked: bool = False, now: int = 0) -> None:
        self.kind = kind
        self.access = access
        self.row = row
        self.revoked = revoked
        self.now = now
        self.caller: Any = None
        """The client introspecting this token (set once its permission is checked)."""

    @property
    def client_id(self) -> str:
        return self.access.client_id if self.access else str(self.row["client_id"])  # type: ignore[index]

    @property
    def expires_at(self) -> int:
        return self.access.exp if self.access else int(self.row["expires_at"])  # type: ignore[index]

    def check_client(self, client: Any) -> bool:
        return self.client_id == client.client_id

    def is_expired(self) -> bool:
        return self.expires_at <= self.now

    def is_revoked(self) -> bool:
        if self.revoked:
            return True
        if self.row is not None:
            return self.row["revoked_at"] is not None or self.row["consumed_at"] is not None
        return False

    def audiences(self) -> list[str]:
        if self.access is None:
            return [self.client_id]
        aud = self.access.claims.get("aud")
        return [aud] if isinstance(aud, str) else list(aud or [])


def _find(provider: Any, token: str, hint: str | None) -> FoundToken | None:
    if not isinstance(token, str) or not token or len(token) > 4096:
        return None
    now = provider.tokens.now()
    order = ["refresh", "access"] if hint == "refresh_token" else ["access", "refresh"]
    for kind in order:
        if kind == "access" and token.count(".") == 2:
            claims = provider.tokens.verify_access_token(token, check_revoked=False)
            if claims is not None:
                return FoundToken("access", access=claims, now=now,
                                  revoked=provider.tokens.is_revoked(claims.jti))
        if kind == "refresh" and "." not in token:
            row = provider.tokens.store.get(refresh_hash(token))
            if row is not None and row["kind"] == "refresh":
                return FoundToken("refresh", row=row, now=now)
    return None


class UnsupportedTokenTypeError(OAuth2Error):
    """RFC 7009 §2.2.1: "The authorization server does not support the revocation of the
    presented token type." Answered with 400 as every RFC 6749 §5.2 error."""

    error = "unsupported_token_type"
    status_code = 400


def _check_hint(request: Any, supported: tuple[str, ...]) -> None:
    """RFC 7009 §2.2.1: an unsupported hint is ``unsupported_token_type``, a 400 (RFC 6749 §5.2)."""
    if "token" not in request.form:
        raise InvalidRequestError("Missing 'token'")
    hint = request.form.get("token_type_hint")
    if hint and hint not in supported:
        raise UnsupportedTokenTypeError()


class IntrospectionEndpoint(_Introspection):
    """RFC 7662: any authenticated client may ask about a token issued to it or meant for it."""

    CLIENT_AUTH_METHODS = _CLIENT_AUTH

    def check_params(self, request: Any, client: Any) -> None:
        _check_hint(request, self.SUPPORTED_TOKEN_TYPES)

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return _find(self.server.provider, token_string, token_type_hint)

    def check_permission(self, token: FoundToken, client: Any, request: Any) -> bool:
        # §4: a resource server may learn only about tokens it may accept.
        allowed = token.check_client(client) or client.client_id in token.audiences()
        if allowed:
            token.caller = client  # introspect_token (which Authlib calls without it) needs the caller
        return bool(allowed)

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        if token.access is not None:
            c = token.access.claims
            out = {k: c[k] for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "sid", "act")
                   if k in c}
            out["token_type"] = "DPoP" if (token.access.cnf or {}).get("jkt") else "Bearer"  # noqa: S105
            if token.access.cnf:
                out["cnf"] = dict(token.access.cnf)  # RFC 7662 §2.2 / RFC 9449 §6.2 / RFC 8705 §3.2
            out.update(_id_number_for_resource_server(self.server.provider, token))
        else:
            row = token.row or {}
            out = {"scope": row["scope"], "client_id": row["client_id"], "exp": row["expires_at"],
                   "iat": row["issued_at"], "iss": self.server.provider.issuer,
                   "token_type": "refresh_token"}
            cnf = cnf_of(row.get("data"))
            if cnf:
                out["cnf"] = dict(cnf)
        out["active"] = True
        return out


def _id_number_for_resource_server(provider: Any, token: FoundToken) -> dict[str, Any]:
    """``{"id_number": …}`` for the one reader allowed it, else ``{}``.

    certstore (issue 6) must know whose certificates a citizen's token is about,
    but the token's ``sub`` is pairwise per portal and the number must never be
    in a token the portal holds. So the number is released here only to a
    *resource server* — a client in the token's audience, not the client the
    token was issued to — registered ``may_receive_id_number``.
    """
    caller = getattr(token, "caller", None)
    if token.access is None or caller is None or token.check_client(caller):
        return {}
    if caller.client_id not in token.audiences() or not getattr(caller, "may_receive_id_number", False):
        return {}
    citizen = provider.token_citizen(token.access.jti)
    if citizen is None or citizen.disabled:
        return {}
    number = provider.citizen_claims(citizen, with_id_number=True).id_number
    if not number:
        return {}
    out: dict[str, Any] = {"id_number": number}
    holder = provider.query_client(token.client_id)
    if holder is not None and getattr(holder, "name", None):
        out["client_name"] = holder.name  # so the citizen's wallet can say who read their certificates
    return out


class RevocationEndpoint(_Revocation):
    """RFC 7009. Revoking a refresh token also revokes its family's access tokens (§2.1)."""

    CLIENT_AUTH_METHODS = _CLIENT_AUTH

    def check_params(self, request: Any, client: Any) -> None:
        _check_hint(request, self.SUPPORTED_TOKEN_TYPES)

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return _find(self.server.provider, token_string, token_type_hint)

    def authenticate_token(self, request: Any, client: Any) -> FoundToken | None:
        """The token to revoke, or ``None`` when there is nothing this client may revoke.

        RFC 7009 §2.2: "invalid tokens do not cause an error response" — and a
        token issued to another client is one this client may not revoke. It
        gets the same empty 200 as an unknown token (Authlib answers
        ``invalid_grant``, which tells the caller the token is live) and the
        token is left alone.
        """
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and not token.check_client(client):
            logger.info("client %s asked to revoke a token of another client; ignored", client.client_id)
            return None
        return token

    def revoke_token(self, token: FoundToken, request: Any) -> None:
        provider = self.server.provider
        if token.access is not None:
            provider.tokens.revoke_access_token(token.access.jti, token.access.exp)
            detail = {"kind": "access", "jti": token.access.jti}
        else:
            row = token.row or {}
            if row.get("family_id"):
                provider.tokens.revoke(family_id=row["family_id"])
            else:
                provider.tokens.revoke(jtis=[row["jti"]])
            detail = {"kind": "refresh"}
        provider.audit("token.revoke", client_id=token.client_id, detail=detail)


def userinfo_claims(provider: Any, access: AccessTokenClaims) -> dict[str, Any] | None:
    """OIDC Core §5.3.2 claims for a verified, unrevoked access token; ``None`` if it has no citizen.

    The claims come from the snapshot taken when the token was issued (one
    Redis round trip); the database is read only for the ID number or for a
    token issued without a snapshot.
    """
    scopes = scope_to_list(access.scope) or []
    if "openid" not in scopes:
        return None
    client = provider.query_client(access.client_id)
    if client is None:
        return None
    allowed = provider.id_number_allowed(client, scopes)
    revoked, snap = provider.tokens.snapshot_if_live(access.jti)
    if revoked:
        return None
    if snap is not None and not allowed:
        info = CitizenClaims(public_id=snap["public_id"], name=snap["name"], phone=snap.get("phone"),
                             email=snap.get("email"))
    else:
        citizen = provider.token_citizen(access.jti)
        if citizen is None or citizen.disabled:
            return None
        info = provider.citizen_claims(citizen, with_id_number=allowed)
    claims: dict[str, Any] = {"sub": provider.subject(client, info.public_id)}
    claims.update(user_claims(info, scopes, may_receive_id_number=allowed))
    return claims


# ----------------------------------------------------------- HTTP answers


def json_reply(status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """A JSON answer that no cache keeps (RFC 6749 §5.1, RFC 6750 §3)."""
    if isinstance(body, dict):
        body.pop("_rows", None)  # the provider's note to itself (records), never sent
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    out = [("Content-Type", _JSON)]
    out.extend((k, v) for k, v in headers if k.lower() not in ("content-type", "cache-control", "pragma"))
    out.extend(_NO_STORE_ITEMS)
    return status, out, data


def _authlib_reply(result: tuple[int, Any, Any]) -> Reply:
    status, body, headers = result
    return json_reply(status, body, headers or ())


def _error_reply(server: Any, request: Any, error: OAuth2Error) -> Reply:
    return _authlib_reply(error(server.get_error_uri(request, error)))


def token_reply(server: Any, request: Any) -> Reply:
    """``POST /token`` for an ``OAuth2Request`` (Authlib's ``create_token_response``, answered as a Reply)."""
    try:
        grant = server.get_token_grant(request)
    except UnsupportedGrantTypeError as error:
        return _error_reply(server, request, error)
    dpop = server.provider.dpop
    try:
        # The grant's statements (a refresh token's take, the new records) share one
        # pooled connection: one checkout per request, not one per statement (issue 16).
        with server.provider.tokens.store.one_connection():
            proof = dpop.bind_token_request(request)  # RFC 9449 §5; None without a DPoP header
            grant.validate_token_request()
            dpop.after_client_known(request, request.client)  # grants outside idp.oauth.grants too
            reply = _authlib_reply(grant.create_token_response())
    except OAuth2Error as error:
        return _error_reply(server, request, error)
    if proof is not None and "token" in dpop.nonce_endpoints:
        reply[1].extend(dpop.nonce_header("token"))  # §8: the next nonce
    return reply


def endpoint_reply(server: Any, name: str, request: Any) -> Reply:
    """``POST /introspect`` (``"introspection"``) or ``/revoke`` (``"revocation"``) for an ``OAuth2Request``."""
    for endpoint in server._endpoints[name]:
        request = endpoint.create_endpoint_request(request)
        try:
            return _authlib_reply(endpoint(request))
        except ContinueIteration:
            continue
        except OAuth2Error as error:
            return _error_reply(server, request, error)
    raise RuntimeError(f"no {name} endpoint answered")  # pragma: no cover - one is registered for each


def bearer_error(error: str, status: int, description: str | None = None) -> Reply:
    """RFC 6750 §3: a protected resource's error, in ``WWW-Authenticate``."""
    value = 'Bearer realm="yiwang"'
    if error:
        value += f', error="{error}"'
        if description:
            value += f', error_description="{description}"'
    return json_reply(status, {"error": error or "invalid_token"}, [("WWW-Authenticate", value)])


def dpop_error(error: str, description: str | None = None, *,
               nonce: Iterable[tuple[str, str]] = ()) -> Reply:
    """RFC 9449 §7.1: a protected resource's DPoP error, in ``WWW-Authenticate: DPoP``."""
    status, value = resource_challenge(error, description)
    return json_reply(status, {"error": error}, [("WWW-Authenticate", value), *nonce])


def userinfo_reply(provider: Any, method: str, headers: Any, form: Mapping[str, str]) -> Reply:
    """``GET``/``POST /userinfo`` (OIDC Core §5.3): the token from the header or, on POST, the form."""
    auth = headers.get("Authorization", "")
    token_value = None
    scheme = "bearer"
    if auth[:7].lower() == "bearer ":
        token_value = auth[7:].strip()
    elif auth[:5].lower() == "dpop ":  # RFC 9449 §7.1
        token_value, scheme = auth[5:].strip(), "dpop"
    elif method == "POST" and "access_token" in form:  # RFC 6750 §2.2
        token_value = form["access_token"]
    if not token_value:
        return bearer_error("", 401)
    # Revocation is checked with the claims snapshot, in the same round trip.
    access = provider.tokens.verify_access_token(token_value, check_revoked=False)
    if access is None:
        if scheme == "dpop":
            return dpop_error("invalid_token", "the access token is not valid")
        return bearer_error("invalid_token", 401, "the access token is not valid")
    token_jkt = access.cnf.get("jkt") if access.cnf else None
    if scheme == "dpop" or token_jkt:  # an unbound Bearer token costs nothing more
        refused = resource_refusal(provider.dpop, headers, method=method, endpoint="userinfo",
                                   token=token_value, token_jkt=token_jkt, scheme=scheme)
        if refused is not None:
            # use_dpop_nonce comes only where nonces are on, so the header is there then (§9).
            return dpop_error(*refused, nonce=provider.dpop.nonce_header("userinfo"))
    if access.cnf and (why := check_certificate_binding(access.cnf, headers)):  # RFC 8705 §3.2
        return bearer_error("invalid_token", 401, why)
    # A token of an ended session is already revoked: the session-end hook
    # marks its jti, which the snapshot read checks.
    claims = userinfo_claims(provider, access)
    if claims is None:
        if provider.tokens.is_revoked(access.jti):
            return bearer_error("invalid_token", 401, "the access token was revoked")
        if access.sub.startswith("staff:"):  # idp.staff.models.SUBJECT_PREFIX: a clerk's or agent's token
            return bearer_error("invalid_token", 401, "staff tokens have no citizen userinfo; "
                                "use the ID token's claims")
        return bearer_error("insufficient_scope", 403, "the token does not grant openid")
    return json_reply(200, claims, provider.dpop.nonce_header("userinfo") if scheme == "dpop" else ())
