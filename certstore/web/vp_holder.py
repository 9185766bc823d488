"""Our wallet as a holder, over HTTP (issue 15 §2): its pages and the request check it relies on.

* ``GET /wallet/holder`` — the credentials kept in this browser, and "add one"
  (an OpenID4VCI offer link and its transaction code), ``vp_holder_ui.html``;
  the signed-in wallet page links here (``_wallet_holder.html``);
* ``GET /wallet/present?client_id=…&request_uri=…`` — the same-device link a
  counter shows: who asks, for which items, "Share" or "Decline";
* ``GET /wallet/present/request`` — the verifier's request checked for the page
  (:func:`certstore.vp.holder.inspect_request`), with the items' labels.

The key and the credentials never reach the server: ``static/wallet_holder.js``
does the cryptography in the browser. These two pages get
``connect-src 'self'``: the script talks to this origin only.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, render_template, request

from keys.identifiers import HOLDER_CODE_RESIDENT_ID, HOLDER_CODE_USCC
from keys.locale import N_, gettext

from ..vp.holder import inspect_request
from . import CSP
from .context import services
from .vp import _claim_choices, verifier

__all__ = ["bp", "install"]

bp = Blueprint("vp_holder", __name__, url_prefix="/wallet", template_folder="templates")

_PAGES = frozenset({"vp_holder.holder", "vp_holder.present"})


def install(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.after_request
    def _connect_self(resp: Response) -> Response:
        # The holder script fetches this origin's VCI and OpenID4VP endpoints (nothing else).
        if request.endpoint in _PAGES:
            resp.headers["Content-Security-Policy"] = CSP + "; connect-src 'self'"
        return resp


@bp.get("/holder")
def holder() -> str:
    from .holder_issue import signin_choices

    return render_template("vp_holder.html", signin_types=signin_choices(), holder_labels=_labels(),
                           holder_client=services().settings.holder_client_id or "")


@bp.get("/present")
def present() -> str:
    return render_template("vp_present.html", holder_labels=_labels())


def _labels() -> dict[str, dict[str, str]]:
    """This service's certificate types, their items and the kinds of holder code, named in the page's
    language, for the script that lists the credentials kept in the browser (a credential holds codes)."""
    from .language import page_language, pick

    types = services().registry.types()
    claims: dict[str, str] = {}
    for code in [None, *(t.code for t in types)]:
        for name, label in _claim_choices(code):
            claims.setdefault(name, label)
    lang = page_language()
    return {"types": {t.code: pick(t.name_zh, t.name_en) for t in types}, "claims": claims,
            "kinds": {HOLDER_CODE_RESIDENT_ID: gettext(lang, N_("Resident ID number")),
                      HOLDER_CODE_USCC: gettext(lang, N_("Unified social credit code"))}}


@bp.get("/present/request")
def present_request() -> Response:
    got: dict[str, Any] = inspect_request(
        verifier(), services().certificates,
        client_id=request.args.get("client_id", "")[:200], request_uri=request.args.get("request_uri", "")[:500],
    )
    labels = dict(_claim_choices(got["type"]))
    got["claims"] = [{"name": n, "label": labels.get(n, n)} for n in got["claims"]]
    from .language import page_language, pick

    verifier_of = got["verifier"]
    got["verifier_name"] = pick(verifier_of["name"], verifier_of.get("name_en"))  # the agency's, in the page's language
    try:
        spec = services().registry.get_type(got["type"])
        got["type_name"] = spec.name_zh if page_language().startswith("zh") else spec.name_en
    except Exception:  # noqa: BLE001 — a foreign type this registry does not know: its code
        got["type_name"] = got["type"]
    resp = jsonify(got)
    resp.headers["Cache-Control"] = "no-store"
    return resp
