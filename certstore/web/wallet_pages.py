"""The citizen's wallet pages: sign in through the idp (OIDC code + PKCE), list, PDF, QR, who read what.

certstore is an ordinary relying party of the idp here (Authlib's Flask
client, discovery document, ``code`` + PKCE S256), registered as allowed to
receive the ID number. The number comes from the idp's userinfo endpoint
(OIDC Core §5.3), asked with the access token; an ``id_number`` in the ID
token is never read, because an ID token travels further than userinfo
answers do (``id_token_hint`` in a logout URL). The callback turns the
number into the blind index at once and keeps only that index (and the
citizen's pairwise ``sub``) in a server-side session
(``certstore.wallet_sessions``); the cookie holds only a random opaque
value. The number itself is never stored, logged, put in the cookie or in
a URL.

Single sign-out (OpenID Connect Back-Channel Logout 1.0): the session records
the idp's ``sid`` from the ID token, and ``POST /wallet/backchannel-logout``
ends every wallet session of an idp session when the idp says so. Signing
out of the wallet (a POST with the session's form token) deletes the
server-side record (a copied cookie is then worthless) and continues at the
idp's ``end_session_endpoint`` with ``client_id``, ``post_logout_redirect_uri``
and, when the ID token carries no ID number, ``id_token_hint``
(RP-Initiated Logout 1.0 §2). Not by a redirect: Chromium applies the
page's ``form-action 'self'`` to the redirects after a form submission, so a
302 to the idp is blocked and the citizen stays signed in (issue 18 §1). The
POST answers a page whose own GET form goes to the idp, under a CSP that adds
the idp's origin to ``form-action`` for that one page only; a static script
submits it, the button does without JavaScript.

A citizen who does not release the ID number on the idp's consent page gets
a page saying why the wallet needs it, a link to ask again
(``prompt=consent``) and a sign-out (issue 18 §3). certstore files
certificates under the number's blind index and has no trustworthy link
from the wallet's pairwise ``sub`` to a holder, so it lists nothing by
``sub``. That pending session holds no holder, only what signing out needs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import logging
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

import signing.qr
from keys.locale import N_, format_time

from ..errors import CertstoreError
from ..wallet_sessions import (
    InvalidLogoutToken,
    LogoutTokenValidator,
    WalletSessions,
    connect_wallet_redis,
)
from . import CSP
from .context import services
from .language import page_language
from .wallet import wallet_service

__all__ = ["bp", "init_wallet", "COOKIE", "wallet_sessions"]

logger = logging.getLogger(__name__)

bp = Blueprint("wallet", __name__, url_prefix="/wallet", template_folder="templates", static_folder="static", static_url_path="/static")

COOKIE = "yw_wallet"
_SESSION_SECONDS = 3600
_VIA = {"consent": N_("with your consent"), "lookup": N_("lookup by ID number"), "wallet": N_("you")}
_VIA["presentation"] = N_("shown from your wallet (OpenID4VP)")  # issue 15 §2: certstore/vp


def init_wallet(app: Flask) -> None:
    """Open the session store; register the idp as an OAuth client when certstore has its client credentials."""
    svc = services_of(app)
    settings = svc.settings
    app.extensions["certstore.wallet_sessions"] = WalletSessions(
        connect_wallet_redis(settings), prefix=settings.common.redis_prefix, ttl=_SESSION_SECONDS
    )
    if settings.client_id:
        app.extensions["certstore.logout_tokens"] = LogoutTokenValidator(svc.tokens, client_id=settings.client_id)
    if not (settings.client_id and settings.client_secret):
        return
    from authlib.integrations.flask_client import OAuth

    oauth = OAuth(app)
    oauth.register(
        "idp",
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=f"{settings.common.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid id_number", "code_challenge_method": "S256"},
    )
    app.extensions["certstore.oauth"] = oauth


def services_of(app: Flask) -> Any:
    return app.extensions["certstore"]


def _client() -> Any:
    oauth = current_app.extensions.get("certstore.oauth")
    if oauth is None:
        abort(503, "the wallet needs YIWANG_CERTSTORE_CLIENT_ID and YIWANG_CERTSTORE_CLIENT_SECRET")
    return oauth.idp


def wallet_sessions() -> WalletSessions:
    store: WalletSessions = current_app.extensions["certstore.wallet_sessions"]
    return store


def _cookie() -> tuple[str, str]:
    """The wallet cookie's name and path: ``__Host-`` prefixed (so ``Path=/``) when served over https.

    With the prefix a sibling subdomain cannot set or shadow it (issue 19 §1);
    behind a TLS-terminating proxy ``request.is_secure`` is False, so the
    configured URL decides.
    """
    if services().settings.public_url.startswith("https://"):
        return "__Host-" + COOKIE, "/"
    return COOKIE, "/wallet"


def _session() -> dict[str, Any] | None:
    """The browser's wallet session, with or without a holder (see :func:`_holder`)."""
    return wallet_sessions().get(request.cookies.get(_cookie()[0]))


def _holder() -> dict[str, Any] | None:
    data = _session()
    if data is None or "hi" not in data:
        return None  # none, or signed in at the idp without releasing the ID number
    return data


def _page(template: str, status: int = 200, **ctx: Any) -> Response:
    resp = Response(render_template(template, **ctx), status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


_NEXT = "yw_wallet_next"
"""Where the sign-in returns to (Flask's signed session cookie): a wallet path, nothing else."""


def _safe_next(value: str | None) -> str | None:
    """A deep link worth returning to: a path under /wallet on this origin, no scheme, host or query."""
    if not value or len(value) > 300 or not value.startswith("/wallet/") or "//" in value or "\\" in value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.query or parts.fragment or ".." in parts.path:
        return None
    if any(ord(ch) < 0x21 for ch in value):
        return None
    return parts.path


def _to_sign_in() -> BaseResponse:
    """A signed-out deep link: sign in first, then come back to it."""
    nxt = _safe_next(request.path)
    return redirect(url_for("wallet.login", next=nxt) if nxt else url_for("wallet.login"))


def _inactive(identifier: str, status: str) -> dict[str, str]:
    """Why and since when a certificate is no longer valid: its last status change's reason and date (UTC+8)."""
    try:
        events = services().certificates.lifecycle.history(identifier)
    except Exception as e:  # the reason is a courtesy: the status itself is shown regardless
        logger.info("status history unavailable: %s", type(e).__name__)
        return {}
    for event in reversed(events):
        detail = event.detail if isinstance(event.detail, dict) else {}
        if detail.get("to") == status:
            at = event.at if event.at.tzinfo else event.at.replace(tzinfo=dt.UTC)
            return {
                "reason": str(detail.get("reason") or ""),
                "at": format_time(at, page_language()),  # China Standard Time, labelled
            }
    return {}


@bp.get("")
def home() -> Response:
    holder = _holder()
    if holder is None:
        return redirect(url_for("wallet.login"))  # type: ignore[return-value]
    wallet = wallet_service()
    certs = wallet.own_certificates(holder["hi"])
    inactive = {c.identifier: _inactive(c.identifier, c.status) for c in certs if c.status != "01"}
    log = wallet.access_log(holder["hi"])
    reads = [
        {
            "at": r.at,  # shown in China Standard Time, labelled (|cst)
            "who": r.client_name or r.client_id,
            "via": _VIA.get(r.via, r.via),
            "purpose": r.purpose or "—",
            "count": len(r.identifiers),
        }
        for r in log
    ]
    return _page("wallet.html", name=holder.get("name") or "", certs=certs, reads=reads, csrf=holder["csrf"],
                 inactive=inactive)


@bp.get("/login")
def login() -> Any:
    """Start the sign-in; ``?again=1`` (from the page asking for the ID number) shows the consent page again."""
    client = _client()
    extra = {"prompt": "consent"} if request.args.get("again") == "1" else {}
    extra["ui_locales"] = page_language()  # the idp's pages in the wallet's language (OIDC Core §3.1.2.1)
    nxt = _safe_next(request.args.get("next"))
    if nxt:
        session[_NEXT] = nxt
    else:
        session.pop(_NEXT, None)
    try:
        return client.authorize_redirect(url_for("wallet.callback", _external=True), **extra)
    except Exception as e:  # the idp's discovery document cannot be read: say so, no traceback
        logger.warning("wallet sign-in cannot start: %s", type(e).__name__)
        abort(503, "the identity provider cannot be reached; please try again later")


@bp.get("/callback")
def callback() -> Any:
    client = _client()
    try:
        token = client.authorize_access_token()
    except Exception as e:  # Authlib raises OAuthError and friends: the sign-in did not complete
        logger.info("wallet sign-in failed: %s", type(e).__name__)
        abort(400, "the sign-in did not complete; please try again")
    claims = token.get("userinfo") or {}  # Authlib's name for the validated ID token's claims
    try:
        info = client.userinfo(token=token)  # OIDC Core §5.3.1: the access token, in a header
    except Exception as e:  # network or an error answer: the sign-in cannot finish
        logger.info("wallet userinfo request failed: %s", type(e).__name__)
        abort(400, "the sign-in did not complete; please try again")
    # OIDC Core §5.3.2: the userinfo sub must be the ID token's, or the answer is not about this sign-in.
    if claims.get("sub") and info.get("sub") != claims.get("sub"):
        abort(400, "the sign-in did not complete; please try again")
    sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
    id_token = token.get("id_token") if isinstance(token.get("id_token"), str) else None
    # One session per browser: the one it had (pending from an earlier try, or older) ends here.
    wallet_sessions().delete(request.cookies.get(_cookie()[0]))
    number = info.get("id_number")
    if not isinstance(number, str) or not number:
        return _needs_id_number(sub=str(info.get("sub", "")), sid=sid, id_token=id_token)
    resp = redirect(_safe_next(session.get(_NEXT)) or url_for("wallet.home"))
    complete_sign_in(
        resp, number, sub=str(info.get("sub", "")), name=str(info.get("name") or ""), sid=sid, id_token=id_token
    )
    return resp


def complete_sign_in(
    resp: BaseResponse, number: str, *, sub: str, name: str, sid: str | None = None, id_token: str | None = None
) -> str:
    """Start a server-side wallet session for the citizen (blind index, never the number).

    Returns the opaque cookie value, also set on ``resp``.
    """
    index = wallet_service().holder_index(number)
    if id_token and _carries_number(id_token, number):
        id_token = None  # an ID token carrying the number never goes into Redis or a URL
    session.clear()  # Authlib's state, nonce and PKCE verifier are spent
    data = {
        "hi": index,
        "name": name,
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "csrf": secrets.token_urlsafe(24),
        "id_token": id_token or "",
    }
    return _start_session(resp, data, sid=sid, sub=sub)


def _start_session(resp: BaseResponse, data: dict[str, Any], *, sid: str | None, sub: str) -> str:
    value = wallet_sessions().create(data, sid=sid, sub=sub or None)
    name, path = _cookie()
    resp.set_cookie(
        name, value, max_age=_SESSION_SECONDS, httponly=True, samesite="Lax", path=path,
        secure=services().settings.public_url.startswith("https://"),
    )
    return value


def _needs_id_number(*, sub: str, sid: str | None, id_token: str | None) -> Response:
    """The idp signed the citizen in but did not release the number: say why it is needed, offer a way on.

    403 as before, but a page. The session started here has no holder (it
    opens no certificate); it keeps the form token and the ID token so that
    "sign out" ends the idp session too, and the back-channel logout finds it.
    """
    if id_token and _carries_number(id_token, None):
        id_token = None
    session.clear()  # Authlib's state, nonce and PKCE verifier are spent
    data = {"at": dt.datetime.now(dt.UTC).isoformat(), "csrf": secrets.token_urlsafe(24), "id_token": id_token or ""}
    resp = _page("wallet_id_number.html", 403, csrf=data["csrf"])
    _start_session(resp, data, sid=sid, sub=sub)
    return resp


def _carries_number(id_token: str, number: str | None) -> bool:
    """Whether the ID token's payload holds an ``id_number`` claim or the number itself."""
    try:
        part = id_token.split(".")[1]
        payload = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8")
        claims = json.loads(payload)
    except (IndexError, ValueError):
        return True  # unreadable: assume the worst and keep it nowhere
    if not isinstance(claims, dict) or "id_number" in claims:
        return True
    return bool(number) and str(number).upper() in payload.upper()


def _end_session(id_token: str) -> tuple[str, dict[str, str]] | None:
    """The idp's end_session_endpoint and its parameters (RP-Initiated Logout 1.0 §2): ``client_id``,
    ``post_logout_redirect_uri`` and ``id_token_hint`` (only an ID token without the number is ever kept)."""
    oauth = current_app.extensions.get("certstore.oauth")
    load = getattr(getattr(oauth, "idp", None), "load_server_metadata", None)
    if load is None:
        return None
    try:
        endpoint = load().get("end_session_endpoint")
    except Exception as e:  # the idp is unreachable: the local sign-out has happened anyway
        logger.info("cannot read the idp's discovery document: %s", type(e).__name__)
        return None
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        return None
    settings = services().settings
    if not settings.client_id:
        return None
    # A GET form replaces its action's query: the endpoint's own parameters become fields.
    parts = urlsplit(endpoint)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    endpoint = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    params |= {"client_id": settings.client_id, "post_logout_redirect_uri": f"{settings.public_url}/verify",
               # the idp sends it back: the verify page then says "signed out of every service"
               "state": "signed-out"}
    if id_token:
        params["id_token_hint"] = id_token
    return endpoint, params


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@bp.post("/logout")
def logout() -> Any:
    """Sign out here, then at the idp (ending the SSO session) through a page whose form goes there."""
    current = _session()
    sent = request.form.get("csrf", "")
    if current is not None and not hmac.compare_digest(sent.encode(), str(current.get("csrf", "")).encode()):
        abort(400, "the form expired; please try again")
    name, path = _cookie()
    wallet_sessions().delete(request.cookies.get(name))
    session.clear()
    end = _end_session(str(current.get("id_token") or "")) if current else None
    if end is None:
        # no idp to continue at: to our own page, which form-action 'self' allows
        resp: BaseResponse = redirect(url_for("public.verify_page", state="signed-out"))
    else:
        endpoint, params = end
        resp = _page("wallet_signing_out.html", endpoint=endpoint, params=params)
        # This page's form, and only this page's, may go to the idp (issue 18 §1).
        resp.headers["Content-Security-Policy"] = CSP.replace(
            "form-action 'self'", f"form-action 'self' {_origin(endpoint)}"
        )
    resp.delete_cookie(name, path=path, secure=services().settings.public_url.startswith("https://"))
    return resp


@bp.post("/backchannel-logout")
def backchannel_logout() -> Response:
    """OpenID Connect Back-Channel Logout 1.0 §2.5–§2.8: the idp ends a session here."""
    validator: LogoutTokenValidator | None = current_app.extensions.get("certstore.logout_tokens")
    if validator is None:
        return _logout_reply(400, "invalid_request", "the wallet is not registered at the identity provider")
    token = request.form.get("logout_token", "")
    try:
        claims = validator.validate(token)
    except InvalidLogoutToken as e:
        logger.info("refused a logout token: %s", e)
        return _logout_reply(400, "invalid_request", str(e))
    store = wallet_sessions()
    if store.first_use_of_jti(claims.jti, ttl=claims.exp - int(validator.keys.clock()) + validator.keys.leeway):
        ended = store.end(sid=claims.sid, sub=claims.sub)
        logger.info("back-channel logout ended %d wallet session(s)", ended)
    return _logout_reply(200)


def _logout_reply(status: int, error: str | None = None, description: str | None = None) -> Response:
    # §2.8: 200 on success, 400 with an OAuth error body otherwise; never cached.
    resp = jsonify({"error": error, "error_description": description} if error else {})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _own(identifier: str) -> Any:
    holder = _holder()
    if holder is None:
        abort(401, "sign in to the wallet first")
    try:
        return wallet_service().owns(holder["hi"], identifier)
    except CertstoreError:
        abort(404)


@bp.get("/certificates/<identifier>/pdf")
def pdf(identifier: str) -> Response:
    view = _own(identifier)
    data = services().certificates.pdf(view.identifier)
    resp = Response(data, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'attachment; filename="{view.identifier}.pdf"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/certificates/<identifier>/qr")
def qr(identifier: str) -> Any:
    if _holder() is None:
        return _to_sign_in()
    view = _own(identifier)
    info = _inactive(view.identifier, view.status) if view.status != "01" else {}
    return _page("wallet_qr.html", cert=view, inactive=info)


@bp.get("/certificates/<identifier>/qr.svg")
def qr_svg(identifier: str) -> Response:
    view = _own(identifier)
    resp = Response(signing.qr.qr_svg(view.qr_text, module_size=8), mimetype="image/svg+xml")
    resp.headers["Cache-Control"] = "no-store"
    return resp
