"""CIBA over HTTP (OpenID CIBA Core 1.0): the backchannel endpoint and the citizen's approval pages.

- ``POST /bc-authorize``: the backchannel authentication endpoint (§7), answered
  by :class:`idp.ciba.grant.BackchannelAuthenticationEndpoint` through the
  Authlib server (client authentication, the §13 errors as JSON);
- ``GET /ciba/pending``: the signed-in citizen's pending requests as JSON, which
  the account page's script (``static/ciba_live.js``) asks for every few
  seconds, so a request shows up without reload (the embedded notifier,
  :class:`idp.ciba.live.LiveNotifier`);
- ``GET``/``POST /ciba/<display id>``: the approval page (§8): the client, the
  clerk or agent and their counter or hotline, the binding message and the
  scopes; CSRF-protected, bound to the citizen's session (only the citizen the
  request names sees it: anyone else gets the same "not found" as for an
  unknown id); a request whose acr is above the session's asks for a fresh
  sign-in first (``/ciba/<id>/sign-in``: the login page, with passkey sign-in
  where the citizen has one, returning here).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, make_response, redirect, request, url_for

from ..ciba.grant import ENDPOINT_PATH, acting_history
from ..oauth.claims import ID_NUMBER_SCOPE
from ..oauth.discovery import ACR_PASSKEY
from ..oauth.flow import Flow, Step
from .common import current_session, render, rt
from .security import check_csrf

__all__ = ["bp"]

logger = logging.getLogger(__name__)

bp = Blueprint("ciba", __name__)


def _service() -> Any:
    return rt().server.ciba


def _page(template: str, status: int = 200, **ctx: Any) -> Any:
    html, status = render(template, status, **ctx)
    resp = make_response(html, status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post(ENDPOINT_PATH)
def backchannel_authentication() -> Any:
    """CIBA Core 1.0 §7.1: the client's request, authenticated; §7.3 answer or §13 error."""
    return rt().server.create_endpoint_response("backchannel_authentication")


@bp.get("/ciba/pending")
def pending() -> Any:
    """The signed-in citizen's pending requests (the live notifier's read side); 401 when signed out."""
    session = current_session(touch=False)
    if session is None:
        return jsonify({"error": "login_required"}), 401
    items = [{"id": p.display_id, "client": p.client_name, "message": p.binding_message or "",
              "actor": {"kind": p.actor.kind, "name": p.actor.name, "office": p.actor.office} if p.actor else None,
              "expires_at": p.expires_at, "url": url_for("ciba.approve", display_id=p.display_id)}
             for p in _service().pending_for(int(session.citizen_id))]
    return jsonify({"pending": items})


def _to_login(display_id: str) -> Any:
    back = url_for("ciba.approve", display_id=display_id)
    fid = rt().flows.create(Flow.login_only(back))
    return redirect(url_for("auth.login", flow=fid), code=303)


def _view(display_id: str, session: Any) -> Any:
    return _service().view(display_id, int(session.citizen_id))


def _show(view: Any, session: Any, status: int = 200, error: str | None = None) -> Any:
    client = rt().provider.query_client(view.client_id)
    scopes = [s for s in view.scopes if s != ID_NUMBER_SCOPE or (client is not None and client.may_receive_id_number)]
    return _page("ciba_approve.html", status, view=view, scopes=scopes, asks_id_number=ID_NUMBER_SCOPE in scopes,
                 needs_sign_in=_service().needs_stronger_sign_in(view, session), error=error,
                 expires=dt.datetime.fromtimestamp(view.expires_at, dt.UTC))


@bp.get("/ciba/<display_id>")
def approve(display_id: str) -> Any:
    session = current_session(touch=True)
    if session is None:
        return _to_login(display_id)
    view = _view(display_id, session)
    if view is None:
        return _page("ciba_done.html", 404, outcome="missing")
    if view.status != "pending":
        return _page("ciba_done.html", 410, outcome=view.status)
    return _show(view, session)


@bp.get("/ciba/<display_id>/sign-in")
def sign_in_again(display_id: str) -> Any:
    """A fresh sign-in that comes back to the request.

    A request that needs a passkey, from a citizen who has one: the passkey step-up page
    (``idp.web.views_passkeys``, the flow its ``step_up_url`` builds; that module sits in a
    layer above this one). Otherwise the login page (password and second factor, or a passkey).
    """
    session = current_session(touch=False)
    view = _view(display_id, session) if session is not None else None
    if view is not None and view.acr == ACR_PASSKEY and "passkeys.step_up" in current_app.view_functions:
        from ..passkeys.store import has_usable_passkey

        if has_usable_passkey(rt().services.db, int(session.citizen_id)):
            flow = Flow.login_only(url_for("ciba.approve", display_id=display_id))
            flow.wait_for(Step.PASSKEY)
            return redirect(url_for("passkeys.step_up", flow=rt().flows.create(flow)), code=303)
    return _to_login(display_id)


@bp.post("/ciba/<display_id>")
def decide(display_id: str) -> Any:
    session = current_session(touch=True)
    if session is None:
        return _to_login(display_id)
    if not check_csrf():
        return _page("ciba_done.html", 400, outcome="csrf")
    view = _view(display_id, session)
    if view is None:
        return _page("ciba_done.html", 404, outcome="missing")
    if view.status != "pending":
        return _page("ciba_done.html", 410, outcome=view.status)
    decision = request.form.get("decision")
    if decision not in ("approve", "deny"):
        return _show(view, session, 400)
    approve_it = decision == "approve"
    if approve_it:
        if _service().needs_stronger_sign_in(view, session):
            return _show(view, session, 403, error="stronger")
        client = rt().provider.query_client(view.client_id)
        if client is None:
            return _page("ciba_done.html", 404, outcome="missing")
        # The approval is the citizen's consent, as on the device page: the ID number only
        # with its own tick, remembered beside what the client already holds.
        scope = rt().consents.approve_device(int(session.citizen_id), client, list(view.scopes),
                                             share_id_number=request.form.get("share_id_number") == "yes")
        view = dataclasses.replace(view, scopes=tuple(scope.split()))
    if not _service().decide(view, session, approve=approve_it):
        return _page("ciba_done.html", 410, outcome="expired")
    return _page("ciba_done.html", outcome="approved" if approve_it else "denied")


@bp.app_context_processor
def _account_ciba() -> dict[str, Any]:
    """``ciba_acting_history()`` for the account page's partial (_account_ciba.html)."""

    def history() -> list[dict[str, Any]]:
        session = current_session(touch=False)
        if session is None:
            return []
        r = rt()
        out = acting_history(r.services.redis, r.services.keyspace.base, int(session.citizen_id))
        for item in out:
            item["when"] = dt.datetime.fromtimestamp(int(item["at"]), dt.UTC)
        return out

    return {"ciba_acting_history": history}
