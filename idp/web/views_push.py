"""The citizen's Web Push subscription from their signed-in account page (issue 13 §1).

``GET /account/push/key`` gives the VAPID application server key
(:class:`idp.push.vapid.Vapid`); the page's script (``static/push.js``)
subscribes the browser with it and posts the subscription here, a form
with its CSRF token (bound to the SSO session and the ``push`` form);
``/account/push/unsubscribe`` forgets one. Only a signed-in citizen, for
their own account; every change is audited. Answers are JSON.

The service worker (``static/sw.js``) is served by :func:`service_worker` with
its words put before it: a notice is shown when no page is open, so the words
cannot come from a page as other scripts' do; they come from the one catalog
(keys/locale), both languages, and the worker picks the device's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from keys.locale import N_, gettext

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


_WORKER_WORDS = {
    "title": N_("Yiwang"),
    "counter": N_("A service counter request is waiting for your approval."),
    "hotline": N_("A hotline request is waiting for your approval."),
    "request": N_("A request is waiting for your approval."),
}
"""The notice's words (the push carries only its kind, idp.ciba.webpush.payload_of)."""


def service_worker() -> Response:
    """``/static/sw.js``: the worker's code, then ``var TEXTS = {"zh": …, "en": …};`` from the catalog.

    Registered on the application in place of the static file (a fixed rule comes before
    ``/static/<path:filename>``), so the worker keeps its address and scope.
    """
    texts = {short: {key: gettext(lang, msgid) for key, msgid in _WORKER_WORDS.items()}
             for short, lang in (("zh", "zh-CN"), ("en", "en"))}
    code = (Path(current_app.static_folder or "") / "sw.js").read_text(encoding="utf-8")
    resp = Response(code + "var TEXTS = " + json.dumps(texts, ensure_ascii=False) + ";\n",
                    content_type="text/javascript; charset=utf-8")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.record_once
def _serve_the_worker(state: Any) -> None:
    state.app.add_url_rule("/static/sw.js", "push.service_worker", service_worker)


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
