"""The offline verify page (issue 6, "Build" 3): ``/verify/offline/``.

A static page and script (``static/offline/verify.js``, no inline script)
that verify a QR payload entirely in the browser, and a service worker
(``sw.js``) that keeps the page, the trust list and the status lists so it
works with the network cut once loaded. ``trust.json`` is the merged trust
list (local and imported regions) as the script needs it: each issuer's QR
``kid``, public key as a JWK, allowed types, certificate validity and the
base URL of its status lists, plus the local status lists to prefetch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, render_template, send_from_directory

from keys.certs import webcrypto_jwk
from keys.locale import N_, gettext
from keys.web_assets import STYLESHEET

from ..models import StatusListRow
from .check_reasons import CHECK_LABELS, REASON_TEXT, check_label
from .context import services
from .language import page_language

__all__ = ["bp", "OPENAPI_PATHS"]

bp = Blueprint("offline", __name__, url_prefix="/verify/offline", template_folder="templates")

_STATIC = Path(__file__).with_name("static") / "offline"


def _origins() -> str:
    svc = services().certificates
    merged = svc.trust_store.merged(svc.trust_list())
    origins = {"'self'"}
    for base in merged.status_base.values():
        parts = urlsplit(base)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return " ".join(sorted(origins))


def _csp() -> str:
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src {_origins()}; worker-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


_SCRIPT_TEXT = {
    # What the page's script says (the check lines: check_reasons), translated here for the page's language.
    "ready": N_("Ready to use offline (%(n)s issuers)."),
    "offline": N_("Offline: using the saved trust list."),
    "no_trust": N_("No trust list is saved on this device yet: open this page once while online."),
    "no_qr": N_("No readable QR code was found in the image. Hold the camera steady on the code and try again."),
    "passed": N_("passed"),
    "failed": N_("failed"),
    "verdict_valid": N_("Valid certificate"),
    "verdict_forged": N_("Not a genuine certificate"),
    "verdict_revoked": N_("Genuine, but no longer valid"),
    "verdict_unreadable": N_("Not a certificate QR code, or it could not be read"),
}


def _script_messages(lang: str) -> dict[str, str]:
    out = {key: gettext(lang, text) for key, text in _SCRIPT_TEXT.items()}
    out |= {"check_" + name: check_label(name, lang) for name in CHECK_LABELS}
    out |= {"reason_" + code: gettext(lang, text) for code, text in REASON_TEXT.items()}
    out["colon"] = "：" if lang == "zh-CN" else ": "
    return out


@bp.get("/")
def page() -> Response:
    lang = page_language()
    html = render_template("verify_offline.html", lang=lang, messages=_script_messages(lang))
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = _csp()
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def _static(name: str, mimetype: str) -> Response:
    resp = send_from_directory(_STATIC, name, mimetype=mimetype, max_age=0)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/verify.js")
def script() -> Response:
    return _static("verify.js", "text/javascript")


@bp.get("/vendor/jsQR.js")
def jsqr() -> Response:
    """jsQR 1.4.0 (Apache-2.0, vendored unmodified: static/offline/vendor/README.md)."""
    return _static("vendor/jsQR.js", "text/javascript")


@bp.get("/verify.css")
def style() -> Response:
    """The one stylesheet of every citizen page (keys/web_assets/yiwang.css), at a URL the service worker keeps."""
    resp = send_from_directory(STYLESHEET.parent, STYLESHEET.name, mimetype="text/css", max_age=0)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/sw.js")
def service_worker() -> Response:
    resp = _static("sw.js", "text/javascript")
    resp.headers["Content-Security-Policy"] = _csp()  # governs the worker's own fetches
    return resp


@bp.get("/trust.json")
def trust_json() -> Response:
    svc = services()
    certs = svc.certificates
    merged = certs.trust_store.merged(certs.trust_list())
    issuers: list[dict[str, Any]] = []
    for issuer in merged.trust_list:
        jwk = webcrypto_jwk(issuer.public_key)
        if jwk is None:
            continue  # the browser checks ES256 only
        issuers.append(
            {
                "kid": issuer.kid.hex(),
                "uscc": issuer.uscc,
                "name": issuer.name,
                "region": issuer.region,
                "allowed_types": sorted(issuer.allowed_types),
                "jwk": jwk,
                "not_before": issuer.certificate.not_valid_before_utc.date().isoformat(),
                "not_after": issuer.not_after.date().isoformat(),
                "status_base": merged.status_base.get(issuer.kid),
            }
        )
    with svc.sessions() as s:
        ids = list(s.scalars(sa.select(StatusListRow.id).order_by(StatusListRow.id)))
    resp = jsonify(
        {
            "region": svc.settings.region,
            "status_list_max_age": svc.settings.status_list_max_age,
            "issuers": issuers,
            "status_lists": [certs.status_lists.uri(str(i)) for i in ids],
        }
    )
    resp.headers["Cache-Control"] = "no-cache"
    return resp


OPENAPI_PATHS: dict[str, Any] = {
    path: {
        "get": {
            "operationId": op,
            "summary": summary,
            "security": [],
            "responses": {"200": {"description": summary}},
        }
    }
    for path, op, summary in (
        ("/verify/offline/", "offlineVerifyPage", "Verify a QR entirely in the browser (works offline once loaded)"),
        ("/verify/offline/verify.js", "offlineVerifyScript", "The page's script"),
        ("/verify/offline/verify.css", "offlineVerifyStyle", "The page's style sheet"),
        ("/verify/offline/vendor/jsQR.js", "offlineQrReader", "jsQR, the QR reader the page uses on images"),
        ("/verify/offline/sw.js", "offlineServiceWorker", "The page's service worker"),
        ("/verify/offline/trust.json", "offlineTrustList", "The merged trust list as the page's script needs it"),
    )
}
