"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness) for load balancers and orchestrators.

``/healthz`` answers 200 as long as the process serves requests: it asks no
dependency, so a database outage never gets healthy instances restarted.
``/readyz`` answers 200 when the database answers a ``SELECT 1`` and Redis a
``PING``; otherwise the 503 ``service_unavailable`` problem every request
gets during an outage (:mod:`certstore.web.errors`), with ``Retry-After``. A
read-only database is ready: reads (verify, get) keep working, and writes
answer 503 on their own.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify

from ..availability import REDIS
from .context import services

__all__ = ["bp", "OPENAPI_PATHS"]

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    with services().engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    sessions = current_app.extensions.get("certstore.wallet_sessions")
    if sessions is not None:
        sessions.client.ping()
        REDIS.answered()
    return jsonify({"status": "ready", "database": "ok", "redis": "ok"})


def _status_body(example: str) -> dict[str, Any]:
    return {
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": ["status"], "properties": {"status": {"const": example}}}
            }
        }
    }


OPENAPI_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "operationId": "liveness",
            "summary": "Liveness: the process serves requests (asks no dependency)",
            "responses": {"200": {"description": "Alive", **_status_body("ok")}},
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readiness",
            "summary": "Readiness: the database and Redis answer",
            "responses": {
                "200": {"description": "Ready", **_status_body("ready")},
                "503": {
                    "description": "The database or Redis does not answer (Retry-After)",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
                },
            },
        }
    },
}
