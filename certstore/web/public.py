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

from ..errors import CertstoreError
from ..views import VerificationResult
from .context import services
from .openapi import openapi_document

__all__ = ["bp", "MESSAGES"]

bp = Blueprint("public", __name__, template_folder="templates", static_folder="static", static_url_path="/static")

_CSRF_COOKIE = "cs_csrf"

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "title": "电子证照核验",
        "intro": "上传或拍摄证照上的二维码，或上传证照 PDF，或粘贴二维码内容。核验不需要登录。",
        "file": "二维码图片或 PDF",
        "camera": "用相机拍摄二维码",
        "text": "二维码内容",
        "submit": "核验",
        "valid": "有效",
        "invalid": "无效",
        "holder": "持证人",
        "holder_code": "持证人代码",
        "issuer": "发证机关",
        "type": "证照类型",
        "identifier": "证照标识",
        "valid_from": "有效期起",
        "valid_until": "有效期至",
        "no_end": "长期",
        "status": "状态",
        "checks": "核验项目",
        "ok": "通过",
        "failed": "未通过",
        "error": "无法核验",
        "csrf": "表单已过期，请重新提交。",
        "busy": "同时核验的文件太多，请几秒钟后再试。",
        "switch": "English",
        "brand": "一网通办 电子证照",
        "empty": "请选择二维码图片或证照 PDF，或把二维码内容粘贴到文本框中，然后点击“核验”。",
        "signed_out": "您已退出所有政务服务网站（统一身份认证及电子证照）。",
        "verdict_valid": "有效证照",
        "verdict_forged": "不是真实证照",
        "verdict_revoked": "证照真实，但已不再有效",
        "verdict_unreadable": "不是电子证照二维码，或无法识别",
        "cause": "原因",
        "cause_valid": "签名、发证机关、有效期和状态均核验通过。",
        "cause_forged": "签名或内容核验未通过：此证照可能被伪造或篡改。",
        "cause_unreadable": "请换一张更清晰的照片重试，或上传证照 PDF。",
        "unreadable_text": "这不是电子证照二维码：电子证照二维码的内容以 YW1: 开头。",
        "colon": "：",
        "unreadable_image": "图片中没有找到可识别的二维码。请对准二维码、保持清晰后重试。",
        "unreadable_file": "无法读取此文件。请上传二维码图片（PNG/JPEG）或证照 PDF。",
        "too_large": "文件太大。请上传证照 PDF 原件或较小的二维码图片。",
        "status_revoked": "已撤销",
        "status_expired": "已过期",
        "wallet": "我的电子证照",
        "offline": "离线核验",
    },
    "en": {
        "title": "Verify an electronic certificate",
        "intro": "Upload or photograph the QR code on a certificate, upload the certificate PDF, or paste the QR text. No login needed.",
        "file": "QR image or PDF",
        "camera": "Photograph the QR code",
        "text": "QR text",
        "submit": "Verify",
        "valid": "valid",
        "invalid": "not valid",
        "holder": "Holder",
        "holder_code": "Holder code",
        "issuer": "Issuer",
        "type": "Type",
        "identifier": "Identifier",
        "valid_from": "Valid from",
        "valid_until": "Valid until",
        "no_end": "no end date",
        "status": "Status",
        "checks": "Checks",
        "ok": "passed",
        "failed": "failed",
        "error": "Cannot verify",
        "csrf": "The form expired; please submit it again.",
        "busy": "Too many files are being verified right now; please try again in a few seconds.",
        "switch": "中文",
        "brand": "Yiwang certificates",
        "empty": "Choose a QR image or a certificate PDF, or paste the QR text into the box, then press Verify.",
        "signed_out": "You are signed out of every service (Yiwang sign-in and the certificate wallet).",
        "verdict_valid": "Valid certificate",
        "verdict_forged": "Not a genuine certificate",
        "verdict_revoked": "Genuine, but no longer valid",
        "verdict_unreadable": "Not a certificate QR code, or it could not be read",
        "cause": "Cause",
        "cause_valid": "Signature, issuer, validity period and status all checked.",
        "cause_forged": "The signature or the content does not check out: this certificate may be forged or altered.",
        "cause_unreadable": "Try again with a sharper photo, or upload the certificate PDF.",
        "unreadable_text": "This is not a certificate QR code: a certificate's QR code starts with YW1:.",
        "colon": ": ",
        "unreadable_image": "No readable QR code was found in the image. Hold the camera steady on the code and try again.",
        "unreadable_file": "This file cannot be read. Upload a QR image (PNG/JPEG) or the certificate PDF.",
        "too_large": "The file is too large. Upload the original certificate PDF or a smaller QR image.",
        "status_revoked": "revoked",
        "status_expired": "expired",
        "wallet": "My certificates",
        "offline": "Verify offline",
    },
}

CHECK_LABELS: dict[str, tuple[str, str]] = {
    "format": ("格式", "format"),
    "signature": ("签名", "signature"),
    "issuer_trusted": ("发证机关可信", "issuer trusted"),
    "type_allowed": ("有权签发此类证照", "issuer may issue this type"),
    "validity": ("有效期", "validity period"),
    "status": ("证照状态", "status"),
    "record": ("与登记记录一致", "matches the registry record"),
    "signature_intact": ("签名完整", "signature intact"),
    "chain_trusted": ("签名证书可信", "signer certificate trusted"),
    "no_changes_after_signing": ("签名后未修改", "not modified after signing"),
    "coverage": ("签名覆盖全文", "signature covers the document"),
}


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
    lang = request.values.get("lang", "zh")
    return lang if lang in MESSAGES else "zh"


def _render(
    lang: str, *, result: VerificationResult | None = None, error: str | None = None, status: int = 200,
    unreadable: str | None = None, notice: str | None = None,
) -> Response:
    token = request.cookies.get(_CSRF_COOKIE)
    if not token or len(token) != 43:
        token = secrets.token_urlsafe(32)
    html = render_template(
        "verify.html",
        m=MESSAGES[lang],
        lang=lang,
        other="en" if lang == "zh" else "zh",
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


def _present(result: VerificationResult, lang: str) -> dict[str, Any]:
    i = 0 if lang == "zh" else 1
    cert = result.certificate

    def reason(name: str, ok: bool, text: str) -> str:
        if name == "status" and not ok and cert is not None:  # the registry's own status, in the page's language
            return cert.status_zh if i == 0 else cert.status_en
        return text

    checks = [
        {"label": CHECK_LABELS.get(c.name, (c.name, c.name))[i], "ok": c.ok, "reason": reason(c.name, c.ok, c.reason),
         "reason_lang": "zh-CN" if i == 0 and c.name == "status" and cert is not None else "en"}
        for c in result.checks
    ]
    m = MESSAGES[lang]
    verdict = verdict_of(result)
    if verdict == "unreadable":  # the later checks only say "not checked": the one that matters is the format
        checks = [c for c, raw in zip(checks, result.checks, strict=True) if raw.name == "format"]
    out: dict[str, Any] = {"valid": result.valid, "checks": checks, "kind": result.kind, "verdict": verdict,
                           "headline": m["verdict_" + verdict], "cause": _cause(result, verdict, lang)}
    if cert is not None:
        out.update(
            holder=cert.holder_name_public,
            holder_code=cert.holder_code_masked,
            issuer=cert.issuer_name_zh if i == 0 or not cert.issuer_name_en else cert.issuer_name_en,
            type=cert.type_name_zh if i == 0 else cert.type_name_en,
            identifier=cert.identifier,
            valid_from=cert.valid_from.isoformat(),
            valid_until=cert.valid_until.isoformat() if cert.valid_until else None,
            status=cert.status_zh if i == 0 else cert.status_en,
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
    m = MESSAGES[lang]
    if verdict == "valid":
        return m["cause_valid"]
    if verdict == "unreadable":
        return m["unreadable_text"]
    if verdict == "forged":
        return m["cause_forged"]
    cert = result.certificate
    if cert is not None:
        return "已" + cert.status_zh if lang == "zh" else cert.status_en
    failed = [c for c in result.failed() if c.name in _GENUINE_ONLY]
    if failed and failed[0].name == "validity":
        return m["status_expired"]
    return m["status_revoked"]


@bp.get("/verify")
def verify_page() -> Response:
    # The idp's end-session sends the citizen back here with state=signed-out (issue 18 "no dead ends").
    lang = _lang()
    notice = MESSAGES[lang]["signed_out"] if request.args.get("state") == "signed-out" else None
    return _render(lang, notice=notice)


@bp.post("/verify")
def verify_submit() -> Response:
    lang = _lang()
    m = MESSAGES[lang]
    cookie = request.cookies.get(_CSRF_COOKIE, "")
    sent = request.form.get("csrf", "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        return _render(lang, error=m["csrf"], status=400)
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
            return _render(lang, error=m["empty"], status=400)
    except CertstoreError as e:
        code = e.extra.get("code")
        why = _UNREADABLE_CODES.get(code) if isinstance(code, str) else None
        if why is not None or e.status == 422:  # refused before any check: not a certificate, or unreadable
            return _render(lang, unreadable=m[why or "unreadable_file"], status=e.status)
        retry_after = e.extra.get("retry_after")
        if not isinstance(retry_after, int):
            return _render(lang, error=f"{m['error']}: {e}", status=e.status)
        resp = _render(lang, error=m["busy"], status=e.status)
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
