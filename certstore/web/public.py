"""Public pages and files: the verify page, the OpenAPI document, the CRL, the trust list.

None of these needs a login. The verify page works without JavaScript: a
form posts the upload (a QR photo, a QR image, a PDF) or the pasted text and
the answer is rendered on the server, in Chinese by default or English.
Forms carry a CSRF token (double submit: a random cookie, ``SameSite=Strict``,
echoed in a hidden field) and the page runs under a CSP with no inline
script or style.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request

import signing.qr
from keys import pki
from keys.certs import certificate_pem
from keys.locale import N_, gettext, other_language

from ..errors import CertstoreError
from ..views import VerificationResult
from .check_reasons import check_label, reason_code, reason_text
from .context import services
from .language import page_language
from .openapi import openapi_document

__all__ = ["bp", "verdict_of"]

bp = Blueprint("public", __name__, template_folder="templates", static_folder="static", static_url_path="/static")

_CSRF_COOKIE = "cs_csrf"

_TEXT = {
    # Sentences chosen in Python (the rest are _() in verify.html); translated by keys/locale's catalog.
    "csrf": N_("The form expired; please submit it again."),
    "busy": N_("Too many files are being verified right now; please try again in a few seconds."),
    "empty": N_("Choose a QR image or a certificate PDF, or paste the QR text into the box, then press Verify."),
    "signed_out": N_("You are signed out of every service (Yiwang sign-in and the certificate wallet)."),
    "verdict_valid": N_("Valid certificate"),
    "verdict_forged": N_("Not a genuine certificate"),
    "verdict_revoked": N_("Genuine, but no longer valid"),
    "verdict_unreadable": N_("Not a certificate QR code, or it could not be read"),
    "cause_valid": N_("Signature, issuer, validity period and status all checked."),
    "cause_forged": N_("The signature or the content does not check out: this certificate may be forged or altered."),
    "unreadable_text": N_("This is not a certificate QR code: a certificate's QR code starts with YW1:."),
    "unreadable_image": N_("No readable QR code was found in the image. Hold the camera steady on the code and try again."),
    "unreadable_file": N_("This file cannot be read. Upload a QR image (PNG/JPEG) or the certificate PDF."),
    "too_large": N_("The file is too large. Upload the original certificate PDF or a smaller QR image."),
    "error": N_("Cannot verify this upload. Check that it is a certificate PDF or a QR image and try again."),
    "status_revoked": N_("revoked"),
    "status_expired": N_("expired"),
}


def _t(lang: str, key: str) -> str:
    return gettext(lang, _TEXT[key])


_GENUINE_ONLY = frozenset({"status", "validity"})
"""Checks whose failure alone means "genuine, but no longer valid" (revoked, suspended, expired), not forged."""

_UNREADABLE_CODES = {
    "unreadable_image": "unreadable_file",
    "unsupported_upload": "unreadable_file",
    "animated_image": "unreadable_file",
    "not_a_pdf": "unreadable_file",
    "pdf_too_complex": "unreadable_file",
    "no_qr_code": "unreadable_image",
    "image_too_large": "too_large",
    "pdf_too_large": "too_large",
}
"""An upload refused before any check ran: which sentence tells the citizen what to do."""


def verdict_of(result: VerificationResult) -> str:
    """``valid``, ``unreadable`` (not a certificate QR), ``revoked`` (genuine, no longer valid) or ``forged``."""
    if result.valid:
        return "valid"
    failed = {c.name for c in result.failed()}
    if "format" in failed:  # the later checks then say only "not checked"
        return "unreadable"
    if failed <= _GENUINE_ONLY:
        return "revoked"
    return "forged"


def _lang() -> str:
    return page_language()  # ?lang= (the form keeps it), the yw_lang cookie, Accept-Language


def _render(
    lang: str, *, result: VerificationResult | None = None, error: str | None = None, status: int = 200,
    unreadable: str | None = None, notice: str | None = None,
) -> Response:
    token = request.cookies.get(_CSRF_COOKIE)
    if not token or len(token) != 43:
        token = secrets.token_urlsafe(32)
    html = render_template(
        "verify.html",
        lang=lang,
        other=other_language(lang),
        csrf=token,
        result=_present(result, lang) if result else None,
        error=error,
        unreadable=unreadable,
        notice=notice,
    )
    resp = Response(html, status=status, mimetype="text/html")
    resp.set_cookie(
        _CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/verify",
        # behind a TLS-terminating proxy request.is_secure is False: trust the configured URL
        secure=services().settings.public_url.startswith("https://"),
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _pick(lang: str, zh: str, en: str | None) -> str:
    """Of a record's own two names (data, not interface text), the one in the page's language."""
    return zh if lang == "zh-CN" or not en else en


def _present(result: VerificationResult, lang: str) -> dict[str, Any]:
    cert = result.certificate

    def reason(name: str, ok: bool, text: str) -> str:
        if name == "status" and not ok and cert is not None:  # the registry's own status, in the page's language
            return _pick(lang, cert.status_zh, cert.status_en)
        return reason_text(name, ok, text, lang)  # by reason code: never signing's English sentence

    checks = [
        {"label": check_label(c.name, lang), "ok": c.ok, "reason": reason(c.name, c.ok, c.reason),
         "code": reason_code(c.name, c.ok, c.reason)}
        for c in result.checks
    ]
    verdict = verdict_of(result)
    if verdict == "unreadable":  # the later checks only say "not checked": the one that matters is the format
        checks = [c for c, raw in zip(checks, result.checks, strict=True) if raw.name == "format"]
    out: dict[str, Any] = {"valid": result.valid, "checks": checks, "kind": result.kind, "verdict": verdict,
                           "headline": _t(lang, "verdict_" + verdict), "cause": _cause(result, verdict, lang)}
    if cert is not None:
        out.update(
            holder=cert.holder_name_public,
            holder_code=cert.holder_code_masked,
            issuer=_pick(lang, cert.issuer_name_zh, cert.issuer_name_en),
            type=_pick(lang, cert.type_name_zh, cert.type_name_en),
            identifier=cert.identifier,
            valid_from=cert.valid_from.isoformat(),
            valid_until=cert.valid_until.isoformat() if cert.valid_until else None,
            status=_pick(lang, cert.status_zh, cert.status_en),
        )
    elif result.claims:
        c = result.claims
        out.update(
            holder=c.get("holder_name"),
            holder_code=c.get("holder_code_masked"),
            issuer=c.get("issuer"),
            type=c.get("type"),
            identifier=c.get("identifier"),
            valid_from=c.get("valid_from"),
            valid_until=c.get("valid_until"),
            status=None,
        )
    return out


def _cause(result: VerificationResult, verdict: str, lang: str) -> str:
    """The status line: the real cause, in the page's language where the registry knows it."""
    if verdict == "valid":
        return _t(lang, "cause_valid")
    if verdict == "unreadable":
        return _t(lang, "unreadable_text")
    if verdict == "forged":
        return _t(lang, "cause_forged")
    cert = result.certificate
    if cert is not None:
        return "已" + cert.status_zh if lang == "zh-CN" else cert.status_en
    failed = [c for c in result.failed() if c.name in _GENUINE_ONLY]
    if failed and failed[0].name == "validity":
        return _t(lang, "status_expired")
    return _t(lang, "status_revoked")


@bp.get("/verify")
def verify_page() -> Response:
    # The idp's end-session sends the citizen back here with state=signed-out (issue 18 "no dead ends").
    lang = _lang()
    notice = _t(lang, "signed_out") if request.args.get("state") == "signed-out" else None
    return _render(lang, notice=notice)


@bp.post("/verify")
def verify_submit() -> Response:
    lang = _lang()
    cookie = request.cookies.get(_CSRF_COOKIE, "")
    sent = request.form.get("csrf", "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        return _render(lang, error=_t(lang, "csrf"), status=400)
    svc = services().certificates
    try:
        data = b""
        for name in ("file", "camera"):
            upload = request.files.get(name)
            if upload is not None:
                data = upload.read()
                if data:
                    break
        text = request.form.get("text", "").strip()
        if data:
            result = svc.verify_file(data)
        elif text:
            result = svc.verify_qr(text)
        else:
            return _render(lang, error=_t(lang, "empty"), status=400)
    except CertstoreError as e:
        code = e.extra.get("code")
        why = _UNREADABLE_CODES.get(code) if isinstance(code, str) else None
        if why is not None or e.status == 422:  # refused before any check: not a certificate, or unreadable
            return _render(lang, unreadable=_t(lang, why or "unreadable_file"), status=e.status)
        retry_after = e.extra.get("retry_after")
        if not isinstance(retry_after, int):
            return _render(lang, error=_t(lang, "error"), status=e.status)
        resp = _render(lang, error=_t(lang, "busy"), status=e.status)
        resp.headers["Retry-After"] = str(retry_after)
        return resp
    return _render(lang, result=result)


@bp.get("/openapi.json")
def openapi() -> Response:
    settings = services().settings  # servers: the public URL; tokenUrl: the idp's token endpoint (issue 18)
    return jsonify(openapi_document(settings.public_url, token_url=settings.common.issuer + "/token", pages=False))


@bp.get("/pki/crl/issuing.crl")
def issuing_crl() -> Response:
    der = pki.current_crl(services().keyring)
    resp = Response(der, mimetype="application/pkix-crl")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp


@bp.get("/trust-list")
def trust_list() -> Response:
    """This region's issuers and their signer certificates, for offline verifiers."""
    svc = services()
    root = pki.region_root(svc.keyring)
    issuers = []
    for info in svc.registry.issuers():
        d = info.to_dict()
        d["kid"] = signing.qr.qr_kid(info.certificate).hex() if info.certificate else None
        issuers.append(d)
    resp = jsonify(
        {
            "region": svc.settings.region,
            "root_certificate": certificate_pem(root),
            "issuers": issuers,
        }
    )
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp
