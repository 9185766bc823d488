"""A demo government portal: a relying party of the idp, built only on Authlib's client.

It is what an agency's portal would write, and nothing more: it knows the idp
by its discovery URL, signs in with the authorization code flow and PKCE
(Authlib's Flask client), signs out with RP-initiated logout (OIDC
RP-Initiated Logout 1.0 §2, ``id_token_hint`` and a registered
``post_logout_redirect_uri``), and receives back-channel logout tokens
(Back-Channel Logout 1.0 §2.5), which it validates as §2.6 says before ending
its own sessions for that ``sid``; it also answers front-channel logout
(``/frontchannel-logout?iss=…&sid=…``, Front-Channel Logout 1.0 §2) when
registered for it.

With ``--certstore URL`` the portal also shows consented sharing (issue 6):
``/certificates`` asks the idp for ``certs:read`` (the citizen approves on
the idp's consent screen; single sign-on, no password), then reads the
citizen's certificates from certstore's ``/api/v1/me/certificates`` with that
access token, whose audience is certstore. The read shows up in the citizen's
wallet under "who read my certificates".

``/kiosk`` plays a kiosk or TV (RFC 8628 device authorization grant): it
shows the user code and a QR code (SVG) of ``verification_uri_complete``, and
polls the token endpoint (``<meta refresh>``, honouring ``interval`` and
``slow_down``) until the citizen approves on their phone.

Its sessions are server-side (a dict in memory — a demo); the browser holds a
random id in a cookie named after the portal, so two portals on the same host
keep separate cookies. Sign-out is a POST form with a CSRF token (a GET would
let any page sign the citizen out). Every answer carries a strict CSP
(``default-src 'self'; frame-ancestors 'none'`` — the front-channel receiver
alone may be framed, by the idp's origin), ``nosniff`` and ``no-store``.

``/_state`` (signed-in sids, every logout token received) exists for the
tests only: it is served only with ``--expose-state``, which ``demo.serve``
never passes.

Run: ``python -m demo.portal --name A --port 5201 --issuer http://127.0.0.1:5000
--client-id …`` with ``PORTAL_CLIENT_SECRET`` set (``demo.serve`` does this for you).
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import secrets
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, Response, jsonify, redirect, request, session

with warnings.catch_warnings():  # authlib.jose announces its move to joserfc
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import JoseError

__all__ = [
    "PortalConfig",
    "SessionBook",
    "create_portal",
    "validate_logout_token",
    "validate_id_token",
    "qr_svg",
    "main",
]

logger = logging.getLogger(__name__)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_ALGORITHMS = ["ES256", "RS256", "EdDSA"]  # never "none"
_MAX_TOKEN_AGE = 300


@dataclass(frozen=True)
class PortalConfig:
    name: str
    port: int
    issuer: str
    client_id: str
    client_secret: str
    host: str = "127.0.0.1"
    expose_state: bool = False
    """Serve ``/_state`` (signed-in sessions, received logout tokens): for tests only, never in the demo."""
    certstore_url: str | None = None
    """With it, ``/certificates`` reads the citizen's certificates with their consent (``certs:read``)."""

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class LocalSession:
    sub: str
    sid: str | None
    name: str
    id_token: str
    signed_in_at: float = field(default_factory=time.time)
    certs_token: str | None = field(default=None, repr=False)
    """Access token with ``certs:read`` (audience certstore), once the citizen consented."""


class SessionBook:
    """The portal's own sessions, indexed by the idp's ``sid`` for back-channel logout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, LocalSession] = {}
        self._seen_jti: dict[str, float] = {}
        self.received: list[dict[str, Any]] = []
        """Logout tokens received and accepted: ``{"token", "sid", "sub", "ended"}``."""
        self.rejected = 0
        self.frontchannel: list[dict[str, Any]] = []
        """Front-channel logout requests received: ``{"sid", "ended"}``."""

    def add(self, s: LocalSession) -> str:
        key = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[key] = s
        return key

    def get(self, key: str | None) -> LocalSession | None:
        if not key:
            return None
        with self._lock:
            return self._sessions.get(key)

    def drop(self, key: str | None) -> None:
        with self._lock:
            self._sessions.pop(key or "", None)

    def end_for(self, *, sid: str | None, sub: str | None) -> int:
        """§2.7: end the sessions of ``sid`` (or, with only ``sub``, all of that subject's)."""
        with self._lock:
            doomed = [
                k
                for k, s in self._sessions.items()
                if (sid and s.sid == sid) or (not sid and sub and s.sub == sub)
            ]
            for k in doomed:
                del self._sessions[k]
        return len(doomed)

    def first_use_of(self, jti: str, exp: float) -> bool:
        """§2.6 step 8 (optional): refuse a ``jti`` seen before."""
        now = time.time()
        with self._lock:
            for k in [k for k, e in self._seen_jti.items() if e < now]:
                del self._seen_jti[k]
            if jti in self._seen_jti:
                return False
            self._seen_jti[jti] = max(exp, now) + _MAX_TOKEN_AGE
            return True

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def sids(self) -> list[str | None]:
        with self._lock:
            return [s.sid for s in self._sessions.values()]


class _Jwks:
    """The idp's JWKS, fetched from the discovery document and refreshed on an unknown kid."""

    def __init__(self, metadata: Any) -> None:
        self._metadata = metadata
        self._jwks: dict[str, Any] | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def get(self, kid: str | None) -> Any:
        with self._lock:
            known = {k.get("kid") for k in (self._jwks or {}).get("keys", [])}
            if self._jwks is None or (kid not in known and time.time() - self._at > 5):
                uri = self._metadata()["jwks_uri"]
                self._jwks = requests.get(uri, timeout=5).json()
                self._at = time.time()
            return JsonWebKey.import_key_set(self._jwks)


class LogoutTokenError(Exception):
    pass


def validate_logout_token(token: str, *, keys: Any, issuer: str, client_id: str) -> dict[str, Any]:
    """Back-Channel Logout 1.0 §2.6 steps 1–7; returns the claims or raises :class:`LogoutTokenError`."""
    jwt = JsonWebToken(_ALGORITHMS)
    try:
        claims = jwt.decode(
            token,
            keys,
            claims_options={
                "iss": {"essential": True, "value": issuer},  # step 4
                "aud": {"essential": True, "value": client_id},  # step 4
                "iat": {"essential": True},  # step 4
                "exp": {"essential": True},
                "jti": {"essential": True},
            },
        )
        claims.validate(leeway=30)
    except (JoseError, ValueError) as e:  # steps 2–4
        raise LogoutTokenError(f"invalid logout token ({type(e).__name__})") from None
    if claims.header.get("typ") not in (None, "logout+jwt"):  # §2.4 explicit typing
        raise LogoutTokenError("not a logout token (typ)")
    if time.time() - int(claims["iat"]) > _MAX_TOKEN_AGE:
        raise LogoutTokenError("logout token too old")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):  # step 5
        raise LogoutTokenError("no back-channel logout event")
    if not (claims.get("sid") or claims.get("sub")):  # step 6
        raise LogoutTokenError("neither sid nor sub")
    if "nonce" in claims:  # step 7
        raise LogoutTokenError("a logout token must not carry a nonce")
    return dict(claims)


def qr_svg(text: str) -> str:
    """An SVG QR code (level M) of ``text`` for the kiosk screen."""
    import qrcode
    import qrcode.image.svg

    img = qrcode.make(
        text,
        image_factory=qrcode.image.svg.SvgPathImage,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
    )
    return str(img.to_string(encoding="unicode"))


def validate_id_token(token: str, *, keys: Any, issuer: str, client_id: str) -> dict[str, Any]:
    """An ID token from the token endpoint (OIDC Core §3.1.3.7): signature, iss, aud, exp."""
    claims = JsonWebToken(_ALGORITHMS).decode(
        token,
        keys,
        claims_options={
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
            "exp": {"essential": True},
            "sub": {"essential": True},
        },
    )
    claims.validate(leeway=30)
    return dict(claims)


def _mask(text: str) -> str:
    return text[:1] + "*" * max(1, len(text) - 1) if text else ""


CSP = "default-src 'self'; frame-ancestors 'none'"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def create_portal(config: PortalConfig) -> Flask:
    app = Flask(f"portal-{config.name}")
    app.secret_key = secrets.token_bytes(32)
    app.config["SESSION_COOKIE_NAME"] = f"portal_{config.name.lower()}"
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    book = SessionBook()
    app.extensions["portal_sessions"] = book

    oauth = OAuth(app)
    idp = oauth.register(
        "yiwang",
        client_id=config.client_id,
        client_secret=config.client_secret,
        server_metadata_url=f"{config.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile", "code_challenge_method": "S256"},
    )
    jwks = _Jwks(idp.load_server_metadata)

    def current() -> LocalSession | None:
        return book.get(session.get("sid_local"))

    def csrf_token() -> str:
        token = session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(24)
            session["csrf"] = token
        return token

    frame_ancestors = f"default-src 'self'; frame-ancestors {_origin(config.issuer)}"

    @app.after_request
    def _headers(resp: Response) -> Response:
        # Only the front-channel logout receiver is loaded in a frame, by the idp (Front-Channel Logout 1.0 §2).
        framed = request.path == "/frontchannel-logout"
        resp.headers["Content-Security-Policy"] = frame_ancestors if framed else CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/")
    def home() -> Response:
        s = current()
        title = f"Demo portal {html.escape(config.name)}"
        if s is None:
            body = (
                f"<h1>{title}</h1><p id='state'>signed out</p>"
                f"<p><a id='login' href='/login'>Sign in with Yiwang</a></p>"
                f"<p><a id='kiosk' href='/kiosk'>Kiosk mode: sign in with your phone</a></p>"
            )
        else:
            body = (
                f"<h1>{title}</h1><p id='state'>signed in as {html.escape(_mask(s.name))}"
                f" (sub {html.escape(s.sub[:6])}…)</p>"
                + (
                    "<p><a id='certs' href='/certificates'>我的电子证照 · My certificates"
                    " (read from the certificate store with your consent)</a></p>"
                    if config.certstore_url
                    else ""
                )
                + "<form method='post' action='/logout' id='logout-form'>"
                f"<input type='hidden' name='csrf' value='{html.escape(csrf_token())}'>"
                "<button type='submit' id='logout'>Sign out</button></form>"
            )
        return Response(f"<!doctype html><meta charset=utf-8><title>{title}</title>{body}", mimetype="text/html")

    @app.get("/login")
    def login() -> Any:
        return idp.authorize_redirect(f"{config.base_url}/callback")

    @app.get("/callback")
    def callback() -> Any:
        if "error" in request.args:
            return Response(
                f"sign-in failed: {html.escape(request.args.get('error', ''))}", status=400, mimetype="text/plain"
            )
        token = idp.authorize_access_token()  # checks state, PKCE, ID token (sig, iss, aud, nonce)
        userinfo = token.get("userinfo") or {}
        info = idp.userinfo(token=token)
        s = LocalSession(
            sub=str(userinfo.get("sub")),
            sid=userinfo.get("sid"),
            name=str(info.get("name") or ""),
            id_token=token["id_token"],
        )
        if session.pop("want_certs", False) and "certs:read" in str(token.get("scope", "")).split():
            s.certs_token = token["access_token"]
            session["sid_local"] = book.add(s)
            return redirect("/certificates")
        session["sid_local"] = book.add(s)
        return redirect("/")

    @app.get("/certificates")
    def certificates() -> Any:
        """Consented sharing: ``certs:read`` from the idp, then certstore's ``/api/v1/me/certificates``."""
        if not config.certstore_url:
            return Response("this portal does not read certificates", status=404, mimetype="text/plain")
        s = current()
        if s is None:
            return redirect("/login")
        if s.certs_token is None:
            session["want_certs"] = True
            return idp.authorize_redirect(f"{config.base_url}/callback", scope="openid profile certs:read")
        resp = requests.get(
            f"{config.certstore_url}/api/v1/me/certificates",
            params={"purpose": "社保待遇资格认证 (demo)"},
            headers={"Authorization": f"Bearer {s.certs_token}"},
            timeout=10,
        )
        if resp.status_code == 401:  # expired or revoked: ask again
            s.certs_token = None
            return redirect("/certificates")
        if resp.status_code != 200:
            return Response(f"the certificate store answered {resp.status_code}", status=502, mimetype="text/plain")
        rows = "".join(
            f"<li class='cert' data-identifier='{html.escape(str(c.get('identifier', '')))}'>"
            f"{html.escape(str((c.get('type') or {}).get('name_zh', '')))} · "
            f"{html.escape(str((c.get('issuer') or {}).get('name_zh', '')))} · "
            f"{html.escape(str(c.get('identifier', '')))}</li>"
            for c in resp.json().get("certificates", [])
        )
        body = (
            f"<h1>Demo portal {html.escape(config.name)}: 我的电子证照 · certificates</h1>"
            f"<p>Read from the certificate store with your consent (certs:read).</p>"
            f"<ul id='certs'>{rows or '<li>none</li>'}</ul><p><a href='/'>back</a></p>"
        )
        return Response(f"<!doctype html><meta charset=utf-8><title>certificates</title>{body}", mimetype="text/html")

    @app.post("/logout")
    def logout() -> Any:
        sent = request.form.get("csrf", "")
        expected = session.get("csrf")
        if not isinstance(expected, str) or not secrets.compare_digest(sent.encode(), expected.encode()):
            return Response("the sign-out form expired; go back and try again", status=400, mimetype="text/plain")
        s = current()
        book.drop(session.pop("sid_local", None))
        end = idp.load_server_metadata().get("end_session_endpoint")
        if s is None or not end:
            return redirect("/")
        state = secrets.token_urlsafe(16)
        session["logout_state"] = state
        params = {
            "id_token_hint": s.id_token,
            "client_id": config.client_id,
            "post_logout_redirect_uri": f"{config.base_url}/",
            "state": state,
        }
        return redirect(f"{end}?{urlencode(params)}")

    @app.get("/frontchannel-logout")
    def frontchannel_logout() -> Response:
        """Front-Channel Logout 1.0 §2: loaded by the idp in an iframe, with ``iss`` and ``sid``."""
        iss, sid = request.args.get("iss"), request.args.get("sid")
        ended = 0
        if iss == config.issuer and sid:  # §2: both must match what we know
            ended = book.end_for(sid=sid, sub=None)
            book.frontchannel.append({"sid": sid, "ended": ended})
        return Response(
            "<!doctype html><meta charset=utf-8><title>signed out</title>",
            mimetype="text/html",
            headers={"Cache-Control": "no-store"},
        )

    @app.post("/backchannel-logout")
    def backchannel_logout() -> Response:
        headers = {"Cache-Control": "no-store"}
        token = request.form.get("logout_token", "")
        try:
            keys = jwks.get(_kid_of(token))
            claims = validate_logout_token(token, keys=keys, issuer=config.issuer, client_id=config.client_id)
            if not book.first_use_of(str(claims["jti"]), float(claims["exp"])):
                raise LogoutTokenError("logout token replayed")
        except LogoutTokenError as e:
            book.rejected += 1
            logger.warning("portal %s rejected a logout token: %s", config.name, e)
            return Response('{"error":"invalid_request"}', status=400, headers=headers, mimetype="application/json")
        ended = book.end_for(sid=claims.get("sid"), sub=claims.get("sub"))
        book.received.append({"token": token, "sid": claims.get("sid"), "sub": claims.get("sub"), "ended": ended})
        logger.info("portal %s: back-channel logout ended %d session(s)", config.name, ended)
        return Response("", status=200, headers=headers)

    # -- kiosk mode (RFC 8628): this portal as a kiosk/TV client ----------------
    kiosks: dict[str, dict[str, Any]] = {}

    def _kiosk_page(k: dict[str, Any], note: str = "") -> Response:
        qr = qr_svg(k["verification_uri_complete"])
        body = (
            f"<h1>Kiosk · portal {html.escape(config.name)}</h1>"
            f"<p>Scan with your phone, or open <b>{html.escape(k['verification_uri'])}</b> "
            f"and enter <b id='user-code'>{html.escape(k['user_code'])}</b></p>"
            f"<div id='qr'>{qr}</div><p id='kiosk-note'>{html.escape(note)}</p>"
        )
        head = f"<meta http-equiv='refresh' content='{int(k['interval'])};url=/kiosk/poll'>"
        return Response(
            f"<!doctype html><meta charset=utf-8>{head}<title>Kiosk</title>{body}", mimetype="text/html"
        )

    def _client_auth() -> tuple[str, str]:
        return (config.client_id, config.client_secret)

    @app.get("/kiosk")
    def kiosk_start() -> Any:
        meta = idp.load_server_metadata()
        resp = requests.post(
            meta["device_authorization_endpoint"], data={"scope": "openid profile"}, auth=_client_auth(), timeout=10
        )
        if resp.status_code != 200:
            return Response(f"device authorization failed: HTTP {resp.status_code}", status=502, mimetype="text/plain")
        k = resp.json()
        kid = secrets.token_urlsafe(16)
        kiosks[kid] = k
        session["kiosk"] = kid
        return _kiosk_page(k)

    @app.get("/kiosk/poll")
    def kiosk_poll() -> Any:
        k = kiosks.get(session.get("kiosk") or "")
        if k is None:
            return redirect("/kiosk")
        meta = idp.load_server_metadata()
        resp = requests.post(
            meta["token_endpoint"],
            data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": k["device_code"]},
            auth=_client_auth(),
            timeout=10,
        )
        data = resp.json()
        if resp.status_code == 200:
            kiosks.pop(session.pop("kiosk"), None)
            claims = validate_id_token(
                data["id_token"], keys=jwks.get(_kid_of(data["id_token"])), issuer=config.issuer,
                client_id=config.client_id,
            )
            info = idp.userinfo(token=data)
            session["sid_local"] = book.add(
                LocalSession(sub=str(claims["sub"]), sid=claims.get("sid"), name=str(info.get("name") or ""),
                             id_token=data["id_token"])
            )
            return redirect("/")
        error = data.get("error")
        if error == "slow_down":  # RFC 8628 §3.5: five seconds more, from now on
            k["interval"] = int(k["interval"]) + 5
        if error in ("authorization_pending", "slow_down"):
            return _kiosk_page(k, "waiting for approval…")
        kiosks.pop(session.pop("kiosk"), None)
        return Response(
            f"<!doctype html><meta charset=utf-8><p id='kiosk-note'>{html.escape(str(error))}</p>"
            "<p><a href='/kiosk'>start again</a></p>",
            status=400,
            mimetype="text/html",
        )

    if config.expose_state:

        @app.get("/_state")
        def state() -> Response:
            return jsonify(
                {
                    "portal": config.name,
                    "client_id": config.client_id,
                    "signed_in": book.count(),
                    "sids": book.sids(),
                    "logout_tokens": book.received,
                    "rejected": book.rejected,
                    "frontchannel": book.frontchannel,
                }
            )

    return app


def _kid_of(token: str) -> str | None:
    import base64
    import json

    try:
        head = token.split(".", 1)[0]
        kid = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))).get("kid")
        return kid if isinstance(kid, str) else None
    except Exception:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Yiwang demo portal")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument(
        "--client-secret", help="default: $PORTAL_CLIENT_SECRET (keeps it out of the process list)"
    )
    parser.add_argument("--certstore", help="certstore's base URL: read the citizen's certificates with consent")
    parser.add_argument(
        "--expose-state", action="store_true",
        help="serve /_state (sessions and received logout tokens) — for tests only, never in a demo",
    )
    args = parser.parse_args(argv)
    secret = args.client_secret or os.environ.get("PORTAL_CLIENT_SECRET")
    if not secret:
        parser.error("no client secret: pass --client-secret or set PORTAL_CLIENT_SECRET")
    logging.basicConfig(level=logging.INFO, format=f"portal-{args.name} %(levelname)s %(message)s")
    app = create_portal(
        PortalConfig(
            name=args.name,
            port=args.port,
            issuer=args.issuer.rstrip("/"),
            client_id=args.client_id,
            client_secret=secret,
            certstore_url=args.certstore.rstrip("/") if args.certstore else None,
            expose_state=args.expose_state,
        )
    )
    from werkzeug.serving import WSGIRequestHandler, run_simple

    class _NoQueryLog(WSGIRequestHandler):
        # The callback's query carries the authorization code and state: log paths only.
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            self.log("info", '"%s %s" %s %s', self.command, self.path.split("?", 1)[0], code, size)

    run_simple(
        "127.0.0.1", args.port, app, threaded=True, use_reloader=False, request_handler=_NoQueryLog
    )


if __name__ == "__main__":
    main()
