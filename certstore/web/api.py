"""The JSON API under ``/api/v1`` (documented in ``openapi.py``; errors in ``errors.py``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

import signing.qr

from ..errors import InvalidInput
from ..issue_request import IssueRequest
from ..views import CertificateView
from .context import require_issuer, services
from .inputs import json_object, query_int, query_text, text

__all__ = ["bp", "ISSUE_SCOPE"]

bp = Blueprint("api", __name__, url_prefix="/api/v1")

ISSUE_SCOPE = "certs:issue"
_MAX_QR_TEXT = 8192  # a QR code holds at most 7,089 characters


def _with_links(view: CertificateView) -> dict[str, Any]:
    d = view.to_dict()
    ident = view.identifier
    d["links"] = {
        "self": url_for("api.get_certificate", identifier=ident),
        "pdf": url_for("api.certificate_pdf", identifier=ident),
        "qr_png": url_for("api.certificate_qr_png", identifier=ident),
        "qr_svg": url_for("api.certificate_qr_svg", identifier=ident),
    }
    return d


@bp.post("/certificates")
def issue_certificate() -> Response:
    issuer = require_issuer(ISSUE_SCOPE)
    body = json_object()
    key = request.headers.get("Idempotency-Key")
    if key is not None and (not key.strip() or len(key) > 200 or not key.isprintable()):
        raise InvalidInput("Idempotency-Key must be printable text of at most 200 characters", field="Idempotency-Key")
    req = IssueRequest.from_json(body, idempotency_key=key)
    result = services().certificates.issue(req, agency_uscc=issuer.uscc, actor=f"client:{issuer.client_id}")
    resp = jsonify(_with_links(result.certificate))
    resp.status_code = 200 if result.replayed else 201
    resp.headers["Location"] = url_for("api.get_certificate", identifier=result.certificate.identifier)
    if result.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@bp.get("/certificates")
def list_certificates() -> Response:
    issuer = require_issuer(ISSUE_SCOPE)
    limit = query_int("limit", 50, low=1, high=500)
    offset = query_int("offset", 0)
    views = services().certificates.list(
        agency_uscc=issuer.uscc, type_code=query_text("type", max_len=32), limit=limit, offset=offset
    )
    return jsonify({"certificates": [_with_links(v) for v in views]})


@bp.get("/certificates/<identifier>")
def get_certificate(identifier: str) -> Response:
    issuer = require_issuer(ISSUE_SCOPE)
    view = services().certificates.get(identifier, agency_uscc=issuer.uscc)
    return jsonify(_with_links(view))


@bp.get("/certificates/<identifier>/pdf")
def certificate_pdf(identifier: str) -> Response:
    issuer = require_issuer(ISSUE_SCOPE)
    data = services().certificates.pdf(identifier, agency_uscc=issuer.uscc)
    resp = Response(data, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'attachment; filename="{identifier}.pdf"'
    return resp


@bp.get("/certificates/<identifier>/qr.png")
def certificate_qr_png(identifier: str) -> Response:
    issuer = require_issuer(ISSUE_SCOPE)
    view = services().certificates.get(identifier, agency_uscc=issuer.uscc)
    return Response(signing.qr.qr_png(view.qr_text), mimetype="image/png")


@bp.get("/certificates/<identifier>/qr.svg")
def certificate_qr_svg(identifier: str) -> Response:
    issuer = require_issuer(ISSUE_SCOPE)
    view = services().certificates.get(identifier, agency_uscc=issuer.uscc)
    return Response(signing.qr.qr_svg(view.qr_text), mimetype="image/svg+xml")


@bp.post("/verify")
def verify() -> Response:
    """Anyone may verify: QR text as JSON, or a QR image / PDF as a multipart upload."""
    svc = services().certificates
    if request.is_json:
        payload = text(json_object(allowed=("text",)), "text", max_len=_MAX_QR_TEXT)
        if payload is None:
            raise InvalidInput('send {"text": "<QR payload>"}', field="text")
        result = svc.verify_qr(payload)
    elif request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is not None and upload.filename is not None:
            data = upload.read()
            if not data:
                raise InvalidInput("the uploaded file is empty", field="file")
            result = svc.verify_file(data)
        elif request.form.get("text", "").strip():
            if len(request.form["text"]) > _MAX_QR_TEXT:
                raise InvalidInput(f"text may be at most {_MAX_QR_TEXT} characters", field="text")
            result = svc.verify_qr(request.form["text"].strip())
        else:
            raise InvalidInput("upload a file (field file) or send the QR text (field text)", field="file")
    else:
        raise InvalidInput(
            "send JSON {\"text\": …} or a multipart/form-data upload", field="body", code="unsupported_media_type"
        )
    return jsonify(result.to_dict())
