"""Lifecycle API, status lists and the signed regional trust list (issue 6).

* ``POST /api/v1/certificates/<id>/status`` ``{"action": "revoke", "reason": "…"}``
  — actions ``suspend``, ``reinstate``, ``revoke``, ``cancel``, ``expire``,
  ``transfer_out``, ``withdraw`` (:mod:`certstore.lifecycle`): the issuing agency's client-credentials token with ``certs:issue``; another
  agency gets 403, a transition the state machine forbids 409.
* ``GET /status-lists/<id>``: the Status List Token (``application/statuslist+jwt``)
  with ``Cache-Control: public, max-age=<ttl>`` and a strong ``ETag``
  (``If-None-Match`` → 304). Public: fetching a whole list reveals nothing.
* ``GET /trust-list.jwt``: this region's trust list signed by the region root.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from ..issue_request import IssueRequest
from ..lifecycle import Action
from .context import require_issuer, services
from .inputs import json_object, text

__all__ = ["bp", "STATUS_MEDIA_TYPE", "OPENAPI_PATHS"]

bp = Blueprint("lifecycle", __name__)

STATUS_MEDIA_TYPE = "application/statuslist+jwt"
_ISSUE_SCOPE = "certs:issue"


def _change(identifier: str, action: str | None) -> Response:
    issuer = require_issuer(_ISSUE_SCOPE)
    body = json_object(allowed=("action", "reason"))
    action = action or str(text(body, "action", required=True, max_len=32))
    reason = str(text(body, "reason", required=True, max_len=500))
    svc = services().certificates
    event = svc.lifecycle.change(
        identifier, action, reason=reason, actor=f"client:{issuer.client_id}", agency_uscc=issuer.uscc
    )
    view = svc.get(event.identifier)
    return jsonify(
        {
            "identifier": event.identifier,
            "action": event.action.value,
            "from": event.from_status.value,
            "status": view.status,
            "status_zh": view.status_zh,
            "status_en": view.status_en,
            "reason": event.reason,
            "at": event.at.isoformat(),
        }
    )


@bp.post("/api/v1/certificates/<identifier>/status")
def change_status(identifier: str) -> Response:
    return _change(identifier, None)


@bp.post("/api/v1/certificates/<identifier>/versions")
def new_version(identifier: str) -> Response:
    """Issue a new version (same serial, version + 1); the old one is cancelled as superseded."""
    issuer = require_issuer(_ISSUE_SCOPE)
    req = IssueRequest.from_json(json_object())
    req = dataclasses.replace(req, supersedes=identifier)
    result = services().certificates.issue(req, agency_uscc=issuer.uscc, actor=f"client:{issuer.client_id}")
    view = result.certificate
    resp = jsonify(view.to_dict())
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.get_certificate", identifier=view.identifier)
    return resp


@bp.get("/status-lists/<list_id>")
def status_list(list_id: str) -> Response:
    signed = services().certificates.status_lists.signed(list_id)
    tag = signed.etag.strip('"')
    if request.if_none_match.contains(tag):
        resp = Response(status=304)
    else:
        resp = Response(signed.token, mimetype=STATUS_MEDIA_TYPE)
    resp.set_etag(tag)
    resp.headers["Cache-Control"] = f"public, max-age={signed.ttl}"
    resp.headers["Last-Modified"] = signed.issued_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
    resp.headers["Access-Control-Allow-Origin"] = "*"  # offline verifiers in browsers fetch it too
    return resp


@bp.get("/trust-list.jwt")
def signed_trust_list() -> Response:
    text = services().certificates.trust_store.export()
    resp = Response(text, mimetype="application/jwt")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


_PROBLEM = {"$ref": "#/components/responses/Problem"}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/certificates/{identifier}/status": {
        "post": {
            "operationId": "changeStatus",
            "summary": "Suspend, reinstate, revoke, cancel, expire, transfer out or withdraw a certificate",
            "description": "Only the issuing agency (403 otherwise); a transition the state machine "
            "forbids is 409 forbidden_transition. Audited; the status list changes at once.",
            "security": [{"bearer": ["certs:issue"]}],
            "parameters": [{"name": "identifier", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["action", "reason"],
                            "properties": {
                                "action": {"enum": [a.value for a in Action if a is not Action.SUPERSEDE]},
                                "reason": {"type": "string", "maxLength": 500},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "The new status", "content": {"application/json": {}}},
                **{str(c): _PROBLEM for c in (401, 403, 404, 409, 422)},
            },
        }
    },
    "/api/v1/certificates/{identifier}/versions": {
        "post": {
            "operationId": "newVersion",
            "summary": "Issue a new version of a certificate (same serial, version + 1); the old one is cancelled (04)",
            "security": [{"bearer": ["certs:issue"]}],
            "parameters": [{"name": "identifier", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IssueRequest"}}},
            },
            "responses": {
                "201": {"description": "The new version", "content": {"application/json": {}}},
                **{str(c): _PROBLEM for c in (401, 403, 404, 409, 422)},
            },
        }
    },
    "/status-lists/{list_id}": {
        "get": {
            "operationId": "statusList",
            "summary": "A status list (IETF Token Status List, statuslist+jwt), fetched whole",
            "security": [],
            "parameters": [{"name": "list_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "Status List Token", "content": {STATUS_MEDIA_TYPE: {}}},
                "304": {"description": "Not modified (If-None-Match)"},
                "404": _PROBLEM,
            },
        }
    },
    "/trust-list.jwt": {
        "get": {
            "operationId": "signedTrustList",
            "summary": "This region's trust list signed by the region root (trustlist+jwt)",
            "security": [],
            "responses": {"200": {"description": "Trust list", "content": {"application/jwt": {}}}},
        }
    },
}
