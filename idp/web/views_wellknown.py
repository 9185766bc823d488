"""Discovery (OIDC Discovery 1.0 §4, RFC 8414 §3), JWKS, health."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..oauth.discovery import discovery_document
from .common import rt

__all__ = ["bp"]

bp = Blueprint("wellknown", __name__)


def _route(*candidates: str) -> str | None:
    """The first of ``candidates`` that this application serves (logout and device flow are optional)."""
    rules = {rule.rule for rule in current_app.url_map.iter_rules()}
    return next((c for c in candidates if c in rules), None)


def _doc() -> Any:
    # Built once per application: the document changes only with the deployment.
    body = current_app.extensions.get("yiwang.discovery")
    if body is None:
        r = rt()
        body = json.dumps(discovery_document(
            r.provider.issuer, require_par=r.provider.config.require_par,
            end_session_path=_route("/logout", "/end_session", "/session/end"),
            device_path=_route("/device/authorize", "/device_authorization", "/device/code"),
            mtls=getattr(r.server, "mtls", None),
        ), ensure_ascii=False).encode()
        current_app.extensions["yiwang.discovery"] = body
    resp = Response(body, mimetype="application/json")
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.set_etag(hashlib.sha256(body).hexdigest()[:32])  # issue 16: a 304 for a client that has it
    return resp.make_conditional(request)


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> Any:
    return _doc()


@bp.get("/.well-known/oauth-authorization-server")
def oauth_metadata() -> Any:
    return _doc()


@bp.get("/jwks.json")
def jwks() -> Any:
    resp = jsonify(rt().provider.tokens.jwks())
    # Short: a rotated key must reach relying parties before it signs (next key is published early).
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    r = rt()
    r.services.db.ping()
    r.services.redis.ping()
    return jsonify({"status": "ready"})
