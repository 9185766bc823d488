"""RP-initiated logout: validating the request (OpenID Connect RP-Initiated Logout 1.0).

Framework-free: :func:`plan_logout` turns the request parameters into a
:class:`LogoutPlan` or raises :class:`LogoutRequestError`; the web layer
(:mod:`idp.web.logout`) decides, with the browser's SSO session, whether to end
it at once, ask for confirmation, or end nothing.

The rules, with their sections:

- §2: ``id_token_hint`` is an ID token *we* issued — signature checked against
  our own JWKS (ES256/RS256 only, so ``alg: none`` and HMAC tricks fail), ``iss``
  ours; an expired one is accepted (§4: "the OP SHOULD accept ID Tokens when
  the RP identified by the ID Token's aud claim ... has a current session or
  had a recent session"). A forged, foreign-signed or malformed hint is an
  error: the request is refused and nothing changes.
- §2: ``client_id`` must be the hint's ``aud`` when both are present.
- §3: ``post_logout_redirect_uri`` must match one the client registered,
  exactly (query included); it needs the client to be known (from the hint or
  ``client_id``). Otherwise: an error page, never a redirect.
- §3: ``state`` goes back to the RP on the redirect.
- §2: ``ui_locales`` chooses the language of our pages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from joserfc.jwk import KeySet

from ..oauth.id_token_hint import MAX_HINT as _MAX_PARAM
from ..oauth.id_token_hint import BadHint, HintClaims
from ..oauth.id_token_hint import verify_id_token_hint as verify_hint

__all__ = [
    "LogoutRequestError",
    "LogoutPlan",
    "HintClaims",
    "plan_logout",
    "verify_id_token_hint",
    "add_state",
]

logger = logging.getLogger(__name__)


class LogoutRequestError(Exception):
    """A logout request we refuse; ``message`` is a key of the page's catalogue."""

    def __init__(self, message: str, description: str) -> None:
        super().__init__(description)
        self.message = message
        self.description = description


@dataclass(frozen=True)
class LogoutPlan:
    """A validated logout request."""

    client_id: str | None
    hint: HintClaims | None
    """Set when a valid ``id_token_hint`` came with the request."""
    redirect_uri: str | None
    """The registered ``post_logout_redirect_uri`` (exact match), or ``None``."""
    state: str | None
    ui_locales: str | None

    def proves_session(self, sid: str | None) -> bool:
        """True when the hint names this very session: no confirmation needed (§2, §6)."""
        return bool(self.hint and self.hint.sid and sid and self.hint.sid == sid)

    def final_redirect(self) -> str | None:
        if not self.redirect_uri:
            return None
        return add_state(self.redirect_uri, self.state)


def add_state(uri: str, state: str | None) -> str:
    """Append ``state`` to ``uri``'s query, keeping what the RP registered (§3)."""
    if not state:
        return uri
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode({"state": state})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def verify_id_token_hint(token: str, *, issuer: str, keys: KeySet) -> HintClaims:
    """:func:`idp.oauth.id_token_hint.verify_id_token_hint`, refused as a logout request error."""
    try:
        return verify_hint(token, issuer=issuer, keys=keys)
    except BadHint as e:
        raise LogoutRequestError("logout_bad_hint", str(e)) from None


def plan_logout(
    params: Mapping[str, str],
    *,
    issuer: str,
    keys: Callable[[], KeySet],
    query_client: Callable[[str], Any],
) -> LogoutPlan:
    """Validate an RP-initiated logout request (§2–§3); raise on anything we must refuse."""
    for name in ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales"):
        if len(params.get(name) or "") > _MAX_PARAM:
            raise LogoutRequestError("logout_bad_request", f"{name} is too long")
    hint = None
    raw_hint = params.get("id_token_hint") or ""
    if raw_hint:
        hint = verify_id_token_hint(raw_hint, issuer=issuer, keys=keys())
    client_id = params.get("client_id") or None
    if hint is not None and client_id and client_id != hint.client_id:
        raise LogoutRequestError("logout_bad_request", "client_id is not the audience of id_token_hint")
    client_id = client_id or (hint.client_id if hint else None)
    client = query_client(client_id) if client_id else None
    if client_id and client is None:
        raise LogoutRequestError("logout_bad_request", "unknown client_id")
    redirect_uri = params.get("post_logout_redirect_uri") or None
    if redirect_uri is not None:
        if client is None:
            raise LogoutRequestError(
                "logout_bad_redirect", "post_logout_redirect_uri needs client_id or id_token_hint"
            )
        if not client.check_post_logout_redirect_uri(redirect_uri):
            raise LogoutRequestError(
                "logout_bad_redirect", "post_logout_redirect_uri is not registered for this client"
            )
    return LogoutPlan(
        client_id=client_id,
        hint=hint,
        redirect_uri=redirect_uri,
        state=params.get("state") or None,
        ui_locales=params.get("ui_locales") or None,
    )
