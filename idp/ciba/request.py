"""The backchannel authentication request (CIBA Core 1.0 §7.1) and its validation (§7.2, §13).

:func:`validate` takes the authenticated client and the request's parameters
and returns a :class:`ValidRequest`, or raises the §13 error:

- only a confidential client that registered the grant type
  ``urn:openid:params:grant-type:ciba`` (``unauthorized_client``);
- a signed request (:mod:`.signed`) where the client must sign, optional
  otherwise; with one, no authentication parameter outside it;
- ``scope`` with ``openid``, cut by :func:`idp.oauth.scopes.decide` like every
  grant (anything refused is ``invalid_scope``);
- exactly one hint: ``login_hint`` (the citizen's ID number — it arrives over
  the back channel only and is never logged; the log has the account's
  masked number at most), ``id_token_hint`` (an ID token this idp issued to the
  same client), or ``login_hint_token`` (a JWT the client signs:
  ``sub_id = {"format": "cn_resident_id", "id": <ID number>}``);
  no account, or a disabled one → ``unknown_user_id``;
- ``binding_message``: at most :data:`BINDING_MESSAGE_MAX` characters, no
  control or format characters → ``invalid_binding_message``;
- ``user_code`` when the client registered ``backchannel_user_code_parameter``:
  the citizen's current authenticator (TOTP) code, throttled and single use
  like at sign-in (``missing_user_code`` / ``invalid_user_code``);
- ``requested_expiry`` (seconds, within :class:`CibaConfig`'s bounds);
- ``acr_values``: the lowest of the requested known levels is what the
  approval needs;
- acting for: a client registered with ``acting`` must send ``actor_token``
  (:mod:`.acting`), and no other client may.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError, UnauthorizedClientError

from ..oauth.scopes import grant_scope
from .errors import (
    ExpiredLoginHintTokenError,
    InvalidBindingMessageError,
    InvalidUserCodeError,
    MissingUserCodeError,
    UnknownUserIdError,
)
from .signed import verify_request_object

__all__ = ["CIBA_GRANT_TYPE", "BINDING_MESSAGE_MAX", "ACR_ORDER", "CibaConfig", "ValidRequest", "validate",
           "acr_rank", "DELIVERY_MODES"]

CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
BINDING_MESSAGE_MAX = 64
"""Characters; CIBA §7.1: "SHOULD be relatively short" (it is shown on a phone and read aloud at a counter)."""
ACR_ORDER = ("urn:yiwang:acr:pwd", "urn:yiwang:acr:2fa", "urn:yiwang:acr:passkey")
"""The idp's levels, weakest first (``acr_values_supported``)."""
DELIVERY_MODES = ("poll", "ping")
_CLIENT_AUTH_PARAMS = frozenset({"client_id", "client_secret", "client_assertion", "client_assertion_type"})
_LOGIN_HINT_TOKEN_FORMAT = "cn_resident_id"  # noqa: S105 - a sub_id format name


def acr_rank(acr: str | None) -> int:
    """The position of ``acr`` in :data:`ACR_ORDER` (``-1``: unknown or none)."""
    return ACR_ORDER.index(acr) if acr in ACR_ORDER else -1


@dataclass(frozen=True)
class CibaConfig:
    default_expiry: int = 300
    """``expires_in`` without ``requested_expiry``."""
    min_expiry: int = 30
    max_expiry: int = 1800
    interval: int = 5
    """§7.3 ``interval``: the least seconds between polls."""


@dataclass(frozen=True)
class ValidRequest:
    citizen: Any
    scope: str
    expires_in: int
    acr: str
    binding_message: str
    mode: str
    notification_token: str
    actor: Any = None
    """An ``idp.staff.actor.Actor`` when someone acts for the citizen."""


def _one(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a string")
    return value


def check_binding_message(message: str | None) -> str:
    if not message:
        return ""
    if len(message) > BINDING_MESSAGE_MAX:
        raise InvalidBindingMessageError(f"the binding message is longer than {BINDING_MESSAGE_MAX} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for c in message):
        raise InvalidBindingMessageError("the binding message may not contain control characters")
    return message


def _expiry(raw: Any, config: CibaConfig) -> int:
    if raw is None or raw == "":
        return config.default_expiry
    try:
        value = int(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        value = None
    if value is None or not config.min_expiry <= value <= config.max_expiry:
        raise InvalidRequestError(
            f"requested_expiry must be a number of seconds from {config.min_expiry} to {config.max_expiry}")
    return value


def _acr(raw: str | None) -> str:
    known = [a for a in (raw or "").split() if a in ACR_ORDER]
    if raw and not known:
        raise InvalidRequestError("none of the acr_values is supported (see acr_values_supported)")
    return min(known, key=acr_rank) if known else ""


def validate(client: Any, params: Mapping[str, Any], *, provider: Any, accounts: Any, config: CibaConfig,
             now: int, ip: str | None = None) -> ValidRequest:
    """The request, checked in CIBA §7.2's order; raises the §13 error for the first problem."""
    from ..oauth import fapi
    from .signed import signing_required

    if client.is_public or not client.check_grant_type(CIBA_GRANT_TYPE):
        raise UnauthorizedClientError("the client is not registered for CIBA (a confidential client with the "
                                      "grant type urn:openid:params:grant-type:ciba)")
    if params.get("request") is not None:
        outside = set(params) - _CLIENT_AUTH_PARAMS - {"request"}
        if outside:
            raise InvalidRequestError("with a signed request, every parameter goes inside it (CIBA 7.1.1)")
        params = verify_request_object(str(params["request"]), client, issuer=provider.issuer, now=now,
                                       redis=provider.redis, prefix=provider.prefix)
    elif signing_required(client):
        raise InvalidRequestError("this client must sign its authentication requests (the request parameter)"
                                  + (" (FAPI)" if fapi.is_fapi2(client) else ""))
    scope = _one(params, "scope") or ""
    if "openid" not in scope.split():
        raise InvalidRequestError("scope must contain openid (CIBA 7.1)")
    scope = grant_scope(client, CIBA_GRANT_TYPE, scope, strict=True)
    hints = [n for n in ("login_hint", "id_token_hint", "login_hint_token") if params.get(n)]
    if len(hints) != 1:
        raise InvalidRequestError("exactly one of login_hint, id_token_hint and login_hint_token is required")
    mode = client.attribute("backchannel_token_delivery_mode") or "poll"
    token = _one(params, "client_notification_token") or ""
    if mode == "ping":
        if not token:
            raise InvalidRequestError("client_notification_token is required in ping mode (CIBA 7.1)")
        if len(token) > 1024 or not all(c.isascii() and (c.isalnum() or c in "-._~+/=") for c in token):
            raise InvalidRequestError("client_notification_token must be a bearer token (RFC 6750 2.1)")
    message = check_binding_message(_one(params, "binding_message"))
    expires_in = _expiry(params.get("requested_expiry"), config)
    acr = _acr(_one(params, "acr_values"))
    actor = _actor(client, _one(params, "actor_token"), now)
    citizen = _citizen(hints[0], params, client, provider=provider, accounts=accounts, now=now)
    if client.attribute("backchannel_user_code_parameter"):
        code = _one(params, "user_code")
        if not code:
            raise MissingUserCodeError("this client must send the citizen's user_code")
        # The citizen's current authenticator code: one use, wrong ones count against the account.
        if not (code.isascii() and code.isdigit() and len(code) == 6) or not accounts.verify_totp(
                citizen.id, code, ip=ip):
            raise InvalidUserCodeError("the user_code is not right")
    return ValidRequest(citizen=citizen, scope=scope, expires_in=expires_in, acr=acr, binding_message=message,
                        mode=mode, notification_token=token, actor=actor)


def _actor(client: Any, actor_token: str | None, now: int) -> Any:
    acting = client.attribute("acting")
    if not acting:
        if actor_token:
            raise InvalidRequestError("this client is not registered to act for citizens (actor_token)")
        return None
    if not actor_token:
        raise InvalidRequestError("this client acts for citizens: actor_token (the clerk's or agent's) is required")
    from .acting import resolve

    return resolve(actor_token, client_id=client.client_id, now=now, kind=acting)


def _citizen(hint: str, params: Mapping[str, Any], client: Any, *, provider: Any, accounts: Any, now: int) -> Any:
    citizen = None
    if hint == "login_hint":
        citizen = accounts.find_by_id_number(str(params["login_hint"])[:64])
    elif hint == "login_hint_token":
        citizen = accounts.find_by_id_number(_login_hint_token_number(str(params["login_hint_token"]), client,
                                                                      issuer=provider.issuer, now=now))
    else:
        citizen = _id_token_citizen(str(params["id_token_hint"]), client, provider=provider, accounts=accounts)
    if citizen is None or citizen.disabled:
        raise UnknownUserIdError("no citizen matches the hint")
    return citizen


def _login_hint_token_number(token: str, client: Any, *, issuer: str, now: int) -> str:
    from joserfc import jwt as jose_jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    from .signed import ALGORITHMS

    if not client.jwks or len(token) > 8192:
        raise InvalidRequestError("the login_hint_token cannot be verified (the client registered no keys)")
    try:
        claims = jose_jwt.decode(token, KeySet.import_key_set(client.jwks), algorithms=list(ALGORITHMS)).claims
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidRequestError("the login_hint_token is not a JWT signed by the client") from None
    aud = claims.get("aud")
    if claims.get("iss") != client.client_id or not (aud == issuer or (isinstance(aud, list) and issuer in aud)):
        raise InvalidRequestError("the login_hint_token's iss must be the client and its aud the issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise InvalidRequestError("the login_hint_token needs a numeric exp")
    if exp <= now:
        raise ExpiredLoginHintTokenError("the login_hint_token has expired")
    sub_id = claims.get("sub_id")
    if not isinstance(sub_id, dict) or sub_id.get("format") != _LOGIN_HINT_TOKEN_FORMAT or not isinstance(
            sub_id.get("id"), str):
        raise InvalidRequestError('the login_hint_token needs sub_id {"format": "cn_resident_id", "id": …}')
    return str(sub_id["id"])[:64]


def _id_token_citizen(token: str, client: Any, *, provider: Any, accounts: Any) -> Any:
    """The citizen of an ID token this idp issued to this client (expired ones too, as hints are)."""
    from joserfc import jwt as jose_jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    if len(token) > 8192 or token.count(".") != 2:
        raise InvalidRequestError("the id_token_hint is not an ID token")
    try:
        keys = KeySet.import_key_set(provider.tokens.jwks())
        claims = dict(jose_jwt.decode(token, keys, algorithms=["ES256", "RS256"]).claims)
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidRequestError("the id_token_hint is not an ID token of this issuer") from None
    aud = claims.get("aud")
    if claims.get("iss") != provider.issuer or not (aud == client.client_id or (
            isinstance(aud, list) and client.client_id in aud)):
        raise InvalidRequestError("the id_token_hint was not issued by this issuer to this client")
    sub = claims.get("sub")
    # A public sub is the account's public id; a pairwise one is found through the
    # session the ID token names (its sid), checked against the sub it derives.
    if client.subject_type == "public" and isinstance(sub, str):
        return accounts.get_by_public_id(sub)
    sid = claims.get("sid")
    session = provider.sessions.get(sid, touch=False) if isinstance(sid, str) else None
    if session is None:
        return None
    citizen = provider.get_citizen(int(session.citizen_id))
    if citizen is None or provider.subject(client, citizen.public_id) != sub:
        return None
    return citizen
