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

    return render_template("vp_holder.html", signin_types=signin_choices(),
                           holder_client=services().settings.holder_client_id or "")


@bp.get("/present")
def present() -> str:
    return render_template("vp_present.html")


@bp.get("/present/request")
def present_request() -> Response:
    got: dict[str, Any] = inspect_request(
        verifier(), services().certificates,
        client_id=request.args.get("client_id", "")[:200], request_uri=request.args.get("request_uri", "")[:500],
    )
    labels = dict(_claim_choices(got["type"]))
    got["claims"] = [{"name": n, "label": labels.get(n, n)} for n in got["claims"]]
    try:
        spec = services().registry.get_type(got["type"])
        from .language import page_language

        got["type_name"] = spec.name_zh if page_language().startswith("zh") else spec.name_en
    except Exception:  # noqa: BLE001 — a foreign type this registry does not know: its code
        got["type_name"] = got["type"]
    resp = jsonify(got)
    resp.headers["Cache-Control"] = "no-store"
    return resp
