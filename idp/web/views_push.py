"""The citizen's Web Push subscription from their signed-in account page (issue 13 §1).

``GET /account/push/key`` gives the VAPID application server key
(:class:`idp.push.vapid.Vapid`); the page's script (``static/push.js``)
subscribes the browser with it and posts the subscription here, a form
with its CSRF token (bound to the SSO session and the ``push`` form);
``/account/push/unsubscribe`` forgets one. Only a signed-in citizen, for
their own account; every change is audited. Answers are JSON.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from ..errors import InvalidInput
from ..push.subscriptions import SubscriptionStore
from ..push.vapid import Vapid
from .common import client_ip, current_session, rt
from .security import check_csrf

__all__ = ["bp", "CSRF_FORM"]

bp = Blueprint("push", __name__, url_prefix="/account/push")

CSRF_FORM = "push"
"""The CSRF binding of the push forms (``csrf_token('push')`` in the page)."""


def _parts() -> tuple[SubscriptionStore, Vapid]:
    built = current_app.extensions.get("yiwang_push")
    if built is None:
        r = rt()
        built = (SubscriptionStore(r.services.db, allow_loopback=r.settings.loopback_callbacks_allowed),
                 Vapid(r.services.keyring, r.settings.issuer))
        current_app.extensions["yiwang_push"] = built
    return built


def _error(status: int, error: str, description: str) -> Any:
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    return resp


def _signed_in() -> tuple[Any, Any] | None:
    """The session and citizen, if a citizen is signed in and the form's CSRF token is good."""
    session = current_session()
    if session is None:
        return None
    citizen = rt().services.accounts.get(int(session.citizen_id))
    return (session, citizen) if citizen is not None and not citizen.disabled else None


@bp.after_app_request
def _service_worker_scope(resp: Any) -> Any:
    """``static/sw.js`` may control every page of the idp (its default scope would be /static/)."""
    if request.path == "/static/sw.js":
        resp.headers["Service-Worker-Allowed"] = "/"
    return resp


@bp.get("/key")
def key() -> Any:
    resp = jsonify({"applicationServerKey": _parts()[1].application_server_key()})
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/subscribe")
def subscribe() -> Any:
    who = _signed_in()
    if who is None:
        return _error(401, "login_required", "sign in first")
    if not check_csrf(CSRF_FORM):
        return _error(400, "invalid_request", "the form's CSRF token is missing or wrong")
    session, citizen = who
    try:
        data = json.loads(request.form.get("subscription", ""))
    except ValueError:
        return _error(400, "invalid_request", "subscription is not JSON")
    store = _parts()[0]
    try:
        store.add(citizen.id, data, user_agent=request.headers.get("User-Agent"))
    except InvalidInput as e:
        return _error(400, "invalid_request", str(e))
    rt().services.audit.record("push.subscribed", actor="citizen", subject=citizen.id_number_masked,
                               ip=client_ip(), detail={"devices": store.count(citizen.id)})
    resp = jsonify({"devices": store.count(citizen.id)})
    resp.status_code = 201
    return resp


@bp.post("/unsubscribe")
def unsubscribe() -> Any:
    who = _signed_in()
    if who is None:
        return _error(401, "login_required", "sign in first")
    if not check_csrf(CSRF_FORM):
        return _error(400, "invalid_request", "the form's CSRF token is missing or wrong")
    _session, citizen = who
    store = _parts()[0]
    endpoint = request.form.get("endpoint", "")
    removed = store.remove(citizen.id, endpoint) if endpoint else 0
    if removed:
        rt().services.audit.record("push.unsubscribed", actor="citizen", subject=citizen.id_number_masked,
                                   ip=client_ip(), detail={"devices": store.count(citizen.id)})
    return jsonify({"devices": store.count(citizen.id), "removed": removed})
