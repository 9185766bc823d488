"""Authlib grants and extensions, completed with what Yiwang adds.

Registered by :func:`idp.oauth.server.configure_server`::

    server.register_grant(AuthorizationCodeGrant, [OpenIDCode(require_nonce=False),
                                                   CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7636 import CodeChallenge as _CodeChallenge
from authlib.oidc.core import grants as oidc_grants

from ..faults import fault_point
from .binding import BoundTokens, binding_of
from .claims import user_claims
from .client_assertion import PrivateKeyJWTAuth
from .codes import AuthorizationCode, CitizenSnapshot, snapshot_of
from .dpop import JKT_PATTERN, InvalidDPoPProofError, check_code_key
from .provider import GrantUser
from .refresh_lifetime import refresh_family_expired
from .scopes import grant_scope
from .tokens import at_hash

__all__ = [
    "CitizenSnapshot",
    "AUTH_METHODS",
    "AuthorizationCodeGrant",
    "RefreshTokenGrant",
    "ClientCredentialsGrant",
    "OpenIDCode",
    "OpenIDRefresh",
    "CodeChallenge",
    "PrivateKeyJWTAuth",
]

logger = logging.getLogger(__name__)

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none",
                "tls_client_auth", "self_signed_tls_client_auth"]  # RFC 8705 §2 (idp.oauth.mtls)


def _provider(grant: Any) -> Any:
    return grant.server.provider


class CodeChallenge(_CodeChallenge):
    """PKCE (RFC 7636) with S256 only, required for public clients.

    RFC 9700 §2.1.1: ``plain`` is refused; a public client must send a
    challenge. A missing or wrong verifier is ``invalid_grant`` (RFC 7636
    §4.6: the server "MUST" refuse the token request with that error).
    """

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and not data.get("code_challenge_method"):
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)
        client = grant.request.client
        if getattr(client, "is_public", False) and not data.get("code_challenge"):
            raise InvalidRequestError("PKCE (code_challenge with S256) is required for this client")

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        code = grant.request.authorization_code
        if code.code_challenge and not grant.request.form.get("code_verifier"):
            raise InvalidGrantError("Missing 'code_verifier'")
        try:
            super().validate_code_verifier(grant, result)
        except InvalidRequestError as e:
            raise InvalidGrantError(e.description) from None


class OpenIDCode(oidc_grants.OpenIDCode):
    """OIDC Core §3.1: the ID token, signed through ``keys`` (an HSM key works)."""

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        # Replay of a nonce is the RP's to detect (OIDC Core §15.5.2); codes are single use.
        return False

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        provider = request._provider
        client = request.client
        code: AuthorizationCode | None = request.authorization_code
        user: GrantUser = request.user
        scopes = scope_to_list(token.get("scope") or "") or []
        claims: dict[str, Any] = {
            "sub": user.staff["sub"] if user.staff else provider.subject(client, user.public_id),
            "aud": client.client_id,
            "azp": client.client_id,
            "auth_time": user.auth_time,
            "acr": user.acr,
            "amr": list(user.amr),
        }
        if user.sid:
            claims["sid"] = user.sid
        if user.extra.get("act"):  # RFC 8693 §4.1: a refreshed CIBA grant a clerk started (idp.ciba)
            claims["act"] = user.extra["act"]
        if code is not None and code.nonce:
            claims["nonce"] = code.nonce
        if token.get("access_token"):
            claims["at_hash"] = at_hash(token["access_token"])
        if user.staff:  # a clerk or agent (idp.staff.signin): their name, kind and office, no citizen
            claims.update(user.staff["claims"])
        citizen = None if user.staff else (
            user.citizen if user.citizen is not None else provider.get_citizen(user.citizen_id))
        if citizen is not None:
            # Never the ID number, whatever the client and scope (issue 11 §4):
            # an ID token travels through browsers, logs and id_token_hint URLs.
            # The number is released by userinfo only (idp.oauth.endpoints.userinfo_claims).
            claims.update(user_claims(
                provider.citizen_claims(citizen, with_id_number=False), scopes,
                may_receive_id_number=False,
            ))
        alg = client.id_token_signed_response_alg or "ES256"
        return provider.tokens.encode_id_token(claims, alg="RS256" if alg == "RS256" else "ES256")

    def process_token(self, grant: Any, response: Any) -> Any:
        grant.request._provider = grant.server.provider
        return super().process_token(grant, response)


class OpenIDRefresh(OpenIDCode):
    """OIDC Core §12.2: a refresh of an ``openid`` grant returns a new ID token.

    Same ``iss``, ``sub``, ``aud``, ``sid`` and the original ``auth_time``;
    no ``nonce`` (there is no authentication request to echo).
    """

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_create_token_response", self.process_token)


class AuthorizationCodeGrant(BoundTokens, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    _validated: tuple[dict[str, str], str] | None = None
    """The request's parameters but ``scope``, and its redirect URI, once validated."""

    def generate_authorization_code(self) -> str:  # replaced by save below
        return ""

    def validate_authorization_request(self) -> str:
        """Authlib's checks, then the scope policy (PAR requests come through here too).

        OIDC Core §3.1.2.1: scope values not understood SHOULD be ignored, so
        what the policy refuses is dropped, not an error; the consent page
        then shows only what may be granted, and the token response's
        ``scope`` says what was (RFC 6749 §5.1).
        """
        others = {k: v for k, v in self.request.payload.data.items() if k != "scope"}
        seen = self._validated
        if seen is not None and seen[0] == others and self.request.client is not None:
            # Validated already, and only the scope changed since: the sign-in cuts it
            # in the parameters after its decision, and Authlib's create_authorization_response
            # validates the request again before the code is issued (idp.signin). So the
            # checks of the scope run again, the others (client, redirect URI, response
            # type, PKCE, nonce, dpop_jkt) are not run twice over the same values.
            redirect_uri = seen[1]
            try:
                self.validate_requested_scope()
                scope = self.request.client.get_allowed_scope(self.request.payload.scope)
                if scope is None:
                    raise InvalidScopeError()
            except OAuth2Error as error:
                error.redirect_uri = redirect_uri
                raise
            self.request.scope = scope
        else:
            redirect_uri = super().validate_authorization_request()
            jkt = self.request.payload.data.get("dpop_jkt")
            if jkt is not None and not JKT_PATTERN.fullmatch(jkt):  # RFC 9449 §10, told to the client
                raise InvalidRequestError("dpop_jkt must be a base64url SHA-256 JWK thumbprint",
                                          redirect_uri=redirect_uri)
        self.request.scope = grant_scope(self.request.client, self.GRANT_TYPE, self.request.scope, strict=False)
        self._validated = (others, redirect_uri)
        return redirect_uri

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> Any:
        """RFC 6749 §4.1.2, with the code minted by :class:`~idp.oauth.codes.CodeStore`."""
        if not grant_user:
            return super().create_authorization_response(redirect_uri, grant_user)
        self.request.user = grant_user
        code = self.save_authorization_code(None, self.request)
        from authlib.common.urls import add_params_to_uri

        params = [("code", code)]
        if self.request.payload.state:
            params.append(("state", self.request.payload.state))
        params.append(("iss", _provider(self).issuer))  # RFC 9207 §2, last: idp.oauth.server.YiwangIssuerParameter
        return 302, "", [("Location", add_params_to_uri(redirect_uri, params))]

    def save_authorization_code(self, code: Any, request: Any) -> str:
        user: GrantUser = request.user
        data = request.payload.data
        resource = data.get("resource")
        provider = _provider(self)
        client_id = request.client.client_id
        also = None
        extra = user.on_code_issue
        if user.sid or extra is not None:
            # The session learns its new relying party in the code's round trip
            # (and the web layer's finished flow is deleted in it too).
            def also(pipe: Any) -> None:
                if user.sid:
                    provider.sessions.add_client(user.sid, client_id, pipe=pipe)
                if extra is not None:
                    extra(pipe)

        return provider.codes.issue(AuthorizationCode(
            client_id=request.client.client_id,
            redirect_uri=data.get("redirect_uri") or "",
            scope=request.scope or "",
            citizen_id=str(user.citizen_id),
            sid=user.sid,
            auth_time=user.auth_time,
            acr=user.acr,
            amr=list(user.amr),
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            resource=[resource] if resource else [],
            citizen=snapshot_of(user.citizen),
            dpop_jkt=data.get("dpop_jkt") or None,
            staff=user.staff,
        ), also=also)

    def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
        provider = _provider(self)
        result = provider.codes.consume(code)
        if result.status == "replayed":
            # RFC 6749 §4.1.2 / §10.5: deny, and revoke what the code produced (its
            # records carry the code's hash: provider.generate_token).
            n = provider.tokens.revoke(code_hash=provider.codes.hash_of(code))
            provider.audit("token.code_replay", client_id=client.client_id, detail={"revoked": n})
            logger.warning("authorization code replayed by client %s; %d token(s) revoked", client.client_id, n)
            return None
        if result.code is None or result.code.client_id != client.client_id:
            return None
        check_code_key(result.code.dpop_jkt, self.request)
        return result.code

    def delete_authorization_code(self, authorization_code: Any) -> None:
        pass  # consumed atomically in query_authorization_code

    def authenticate_user(self, authorization_code: AuthorizationCode) -> GrantUser | None:
        provider = _provider(self)
        if authorization_code.staff is not None:  # a staff portal's code (idp.staff.signin): no citizen
            return GrantUser(
                citizen_id=None, public_id="", sid=None,  # type: ignore[arg-type]
                auth_time=authorization_code.auth_time, acr=authorization_code.acr,
                amr=list(authorization_code.amr), code_hash=authorization_code.code_hash,
                extra={"resource": authorization_code.resource}, staff=authorization_code.staff,
            )
        snap = authorization_code.citizen
        if snap is not None:
            # Read when the code was issued (the ID token never carries the ID
            # number, so the snapshot is all it needs); the account is checked
            # again (exists, not disabled) atomically when the tokens are recorded.
            citizen: Any = CitizenSnapshot(**snap)
        else:
            citizen = provider.get_citizen(int(authorization_code.citizen_id))
        if citizen is None or citizen.disabled:
            return None
        return GrantUser(
            citizen_id=citizen.id, public_id=citizen.public_id, sid=authorization_code.sid,
            auth_time=authorization_code.auth_time, acr=authorization_code.acr,
            amr=list(authorization_code.amr), code_hash=authorization_code.code_hash,
            extra={"resource": authorization_code.resource}, citizen=citizen,
        )


class _RefreshRecord:
    """A refresh-token record as Authlib's RefreshTokenGrant reads it."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row

    def check_client(self, client: Any) -> bool:
        return self.row["client_id"] == client.client_id

    def get_scope(self) -> str:
        return self.row["scope"]


class RefreshTokenGrant(BoundTokens, grants.RefreshTokenGrant):
    """RFC 6749 §6 with rotation on every use and family revocation on reuse (RFC 9700 §4.14.2).

    Issue 20 §1: the parent is consumed before its child is stored and sent.
    A backing service failing after that undoes the take (:meth:`_release`),
    so the retry is an ordinary refresh (an unreadable session store is a
    503, never a revocation). Where the undo could not run (the process
    died, the database is away), the parent's own client may present it once
    more within ``refresh_reuse_grace_seconds``: the retry supersedes the
    undelivered children, so one chain lives; any further use is reuse.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    _taken: tuple[str, str, int] | None = None  # (parent jti, take status, time) once taken
    _stored: tuple[str, ...] = ()  # the jtis this request stores (revoked if it fails after all)

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshRecord | None:
        provider = _provider(self)
        if not refresh_token or len(refresh_token) > 200:
            return None
        from .tokens import refresh_hash

        jti = refresh_hash(refresh_token)
        now = provider.tokens.now()
        binding = binding_of(self.request)
        status, row = provider.tokens.store.take_refresh(
            jti, self.request.client.client_id, now,
            grace_seconds=provider.config.refresh_reuse_grace_seconds,
            jkt=binding.jkt if binding is not None else None,
        )
        if status == "wrong_key":  # RFC 9449 §5: bound to another DPoP key; the token stays as it was
            raise InvalidDPoPProofError("the refresh token is bound to another DPoP key")
        if status == "reused" and row is not None:
            n = provider.tokens.revoke(family_id=row["family_id"])
            provider.audit("token.refresh_reuse", client_id=row["client_id"], detail={"revoked": n})
            logger.warning("rotated refresh token reused by client %s; family revoked (%d)", row["client_id"], n)
            return None
        if status not in ("ok", "retry") or row is None:
            return None
        provider.dpop.check_retry_key(provider.tokens.store, jti, status, now, self.request,
                                      provider.config.refresh_reuse_grace_seconds)
        if refresh_family_expired(provider, self.request.client, row, now):  # idle/absolute (issue 21)
            return None
        self._taken = (jti, status, now)
        fault_point("refresh.after_consume")
        if status == "retry":  # an audit record, not a warning: a crash's honest retry
            provider.audit("token.refresh_retry", client_id=row["client_id"], detail={"family": row["family_id"]})
        # A session-bound refresh token dies with its session (issue 4 §6); a
        # session store that does not answer says nothing about it (a 503).
        if row["sid"] and not row["offline"] and self._guarded(provider.sessions.get, row["sid"], touch=False) is None:
            provider.tokens.revoke(family_id=row["family_id"])
            return None
        return _RefreshRecord(row)

    def create_token_response(self) -> Any:
        return self._guarded(super().create_token_response)

    def save_token(self, token: dict[str, Any]) -> Any:
        provider = _provider(self)
        self._stored = tuple(r["jti"] for r in token.get("_rows") or ())
        if self._taken is not None and self._taken[1] == "retry":
            # Before the new child exists: every child of the parent so far is superseded.
            parent, _, now = self._taken
            gone = provider.tokens.store.supersede_children(parent, now)
            logger.info("retried refresh: %d undelivered child token(s) superseded", len(gone))
        result = super().save_token(token)
        fault_point("refresh.after_store")
        return result

    def _guarded(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """``call(...)``; if a backing service fails in it, undo the take and re-raise (a 5xx)."""
        try:
            return call(*args, **kwargs)
        except OAuth2Error:
            raise  # a protocol answer: what was taken stays taken
        except Exception:
            self._release()
            raise

    def _release(self) -> None:
        taken, self._taken = self._taken, None
        try:
            if taken is not None:
                _provider(self).tokens.store.release_refresh(*taken, drop=self._stored)
        except Exception as e:  # the database is away too: the grace window covers the retry
            logger.warning("refresh failed and its token could not be released (%s); "
                           "the client's retry falls in the grace window", type(e).__name__)

    def authenticate_user(self, refresh_token: _RefreshRecord) -> GrantUser | None:
        provider = _provider(self)
        row = refresh_token.row
        citizen: Any = None
        if row.get("citizen") is not None:
            # Read in the take's own statement (records._take_statement); the
            # records are written only while the account is live (save_token).
            citizen = CitizenSnapshot(**row["citizen"])
        elif row["citizen_id"]:
            citizen = provider.get_citizen(int(row["citizen_id"]))
        if citizen is None or citizen.disabled:
            return None
        data = row.get("data") or {}
        return GrantUser(
            citizen_id=citizen.id, public_id=citizen.public_id, sid=row["sid"],
            auth_time=int(data.get("auth_time", 0)), acr=data.get("acr", ""),
            amr=list(data.get("amr", [])), family_id=row["family_id"], parent_jti=row["jti"],
            citizen=citizen, extra={"act": data["act"]} if data.get("act") else {},  # idp.ciba
        )

    def revoke_old_credential(self, refresh_token: Any) -> None:
        pass  # consumed (rotated) atomically in authenticate_refresh_token

    def validate_token_request(self) -> None:
        # Authlib's order, with the scope policy before the refresh token is
        # consumed (a refused request leaves the token usable). A scope named
        # here must be allowed by the policy (invalid_scope) and, RFC 6749 §6,
        # within the original grant (Authlib's _validate_token_scope). Without
        # one, the original scope is cut by the policy when the token is
        # generated, so a registration narrowed since then applies.
        client = self._validate_request_client()
        self.request.client = client
        if self.request.payload.scope:
            grant_scope(client, self.GRANT_TYPE, self.request.payload.scope, strict=True)
            self._check_not_wider(client)
        refresh_token = self._validate_request_token(client)
        self._validate_token_scope(refresh_token)
        self.request.refresh_token = refresh_token

    def _check_not_wider(self, client: Any) -> None:
        # RFC 6749 §6, checked on a read before the token is consumed: a
        # client asking too much must not lose its token (a retry with it
        # would then look like reuse and revoke the family). One primary-key
        # read, only for the rare refresh that names a scope.
        from .tokens import refresh_hash

        value = self.request.form.get("refresh_token")
        if not value or len(value) > 200:
            return  # Authlib's own checks answer
        row = _provider(self).tokens.store.get(refresh_hash(value))
        if row is None or row.get("client_id") != client.client_id or row.get("kind") != "refresh":
            return
        if not set(scope_to_list(self.request.payload.scope) or []) <= set(scope_to_list(row["scope"]) or []):
            raise InvalidScopeError("the scope may not exceed the original grant (RFC 6749 section 6)")


class ClientCredentialsGrant(BoundTokens, grants.ClientCredentialsGrant):
    """RFC 6749 §4.4: a scope beyond what the policy allows this client is ``invalid_scope``.

    RFC 6749 §5.2 ("exceeds the scope granted by the resource owner" — here
    the registration), as Keycloak and Hydra answer; nothing is downscoped
    silently, so an agency learns at once that it asked for too much. No
    ``scope`` gets a token with no scope (RFC 6749 §3.3 lets the server pick
    the default; least privilege picks none).
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt",
                                   "tls_client_auth", "self_signed_tls_client_auth"]

    def validate_requested_scope(self) -> None:
        # Called by Authlib's validate_token_request once the client is authenticated.
        grant_scope(self.request.client, self.GRANT_TYPE, self.request.payload.scope, strict=True)
