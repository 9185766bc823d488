"""The citizen's wallet pages: sign in through the idp (OIDC code + PKCE), list, PDF, QR, who read what.

certstore is an ordinary relying party of the idp here (Authlib's Flask
client, discovery document, ``code`` + PKCE S256), registered as allowed to
receive the ID number: the callback asks for the ``id_number`` claim, turns
it into the blind index at once and keeps only that index (and the citizen's
pairwise ``sub``) in the signed session cookie. The number itself is never
stored, logged or put in the cookie.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

import signing.qr

from ..errors import CertstoreError
from .context import services
from .wallet import wallet_service

__all__ = ["bp", "init_wallet", "SESSION_KEY"]

logger = logging.getLogger(__name__)

bp = Blueprint("wallet", __name__, url_prefix="/wallet", template_folder="templates", static_folder="static", static_url_path="/static")

SESSION_KEY = "wallet"
_SESSION_MAX_AGE = dt.timedelta(hours=1)
_VIA = {"consent": ("经您授权", "with your consent"), "lookup": ("按身份证号查询", "lookup by ID number"), "wallet": ("本人", "you")}


def init_wallet(app: Flask) -> None:
    """Register the idp as an OAuth client when certstore has its client credentials."""
    settings = services_of(app).settings
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


def _holder() -> dict[str, Any] | None:
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict) or "hi" not in data:
        return None
    try:
        at = dt.datetime.fromisoformat(str(data.get("at")))
    except ValueError:
        return None
    if dt.datetime.now(dt.UTC) - at > _SESSION_MAX_AGE:
        session.pop(SESSION_KEY, None)
        return None
    return data


def _csrf() -> str:
    token = session.get("wallet_csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        session["wallet_csrf"] = token
    return token


def _page(template: str, **ctx: Any) -> Response:
    resp = Response(render_template(template, **ctx), mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("")
def home() -> Response:
    holder = _holder()
    if holder is None:
        return redirect(url_for("wallet.login"))  # type: ignore[return-value]
    wallet = wallet_service()
    certs = wallet.own_certificates(holder["hi"])
    log = wallet.access_log(holder["hi"])
    reads = [
        {
            "at": r.at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M"),
            "who": r.client_name or r.client_id,
            "via": _VIA.get(r.via, (r.via, r.via)),
            "purpose": r.purpose or "—",
            "count": len(r.identifiers),
        }
        for r in log
    ]
    return _page("wallet.html", name=holder.get("name") or "", certs=certs, reads=reads, csrf=_csrf())


@bp.get("/login")
def login() -> Any:
    return _client().authorize_redirect(url_for("wallet.callback", _external=True))


@bp.get("/callback")
def callback() -> Any:
    client = _client()
    try:
        token = client.authorize_access_token()
    except Exception as e:  # Authlib raises OAuthError and friends: the sign-in did not complete
        logger.info("wallet sign-in failed: %s", type(e).__name__)
        abort(400, "the sign-in did not complete; please try again")
    info = token.get("userinfo") or {}
    number = info.get("id_number")
    if not number:
        info = client.userinfo(token=token)
        number = info.get("id_number")
    if not isinstance(number, str) or not number:
        abort(403, "the identity provider did not release your ID number to the wallet; allow it on the consent page")
    complete_sign_in(number, sub=str(info.get("sub", "")), name=str(info.get("name") or ""))
    return redirect(url_for("wallet.home"))


def complete_sign_in(number: str, *, sub: str, name: str) -> None:
    """Put the signed-in citizen (as blind index, never the number) into the session."""
    index = wallet_service().holder_index(number)
    session.clear()
    session[SESSION_KEY] = {"hi": index, "sub": sub, "name": name, "at": dt.datetime.now(dt.UTC).isoformat()}
    session.permanent = False


@bp.post("/logout")
def logout() -> Any:
    sent = request.form.get("csrf", "")
    if not hmac.compare_digest(sent.encode(), str(session.get("wallet_csrf", "")).encode()):
        abort(400, "the form expired; please try again")
    session.clear()
    return redirect(url_for("public.verify_page"))


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
def qr(identifier: str) -> Response:
    view = _own(identifier)
    return _page("wallet_qr.html", cert=view)


@bp.get("/certificates/<identifier>/qr.svg")
def qr_svg(identifier: str) -> Response:
    view = _own(identifier)
    resp = Response(signing.qr.qr_svg(view.qr_text, module_size=8), mimetype="image/svg+xml")
    resp.headers["Cache-Control"] = "no-store"
    return resp
