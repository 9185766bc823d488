"""The verify page's check lines come from the catalog by reason code, never as signing's English (issue 18)."""

from __future__ import annotations

import re

import pytest

from certstore.web.check_reasons import (
    CHECK_LABELS,
    REASON_TEXT,
    check_label,
    reason_code,
    reason_text,
)

# (check, passed, the English reason signing/ or certstore gives, the code the page shows it by, values)
REASONS = [
    ("format", True, "a well-formed YW1: payload (ES256)", "format_ok", {}),
    ("format", False, "a Yiwang certificate payload starts with YW1:", "format_bad", {}),
    ("signature", False, "key id 0a1b2c is not in the trust list: unknown signer", "signer_unknown", {}),
    ("signature", True, "signed by key 0a1b2c of 11110000000000001X", "signature_ok", {}),
    ("signature", False, "the COSE signature does not verify", "signature_bad", {}),
    ("issuer_trusted", False, "not checked: the signer is unknown", "not_checked", {}),
    ("issuer_trusted", False, "the payload names issuer A but was signed by B's key", "issuer_mismatch", {}),
    ("issuer_trusted", False, "the signer certificate of B was not valid on the issue date 2026-01-02",
     "issuer_expired", {"date": "2026-01-02"}),
    ("type_allowed", False, "B is not allowed to issue type JZZM", "type_bad", {}),
    ("validity", False, "not valid before 2027-01-01", "not_yet_valid", {"date": "2027-01-01"}),
    ("validity", False, "expired at the end of 2025-12-31", "expired", {"date": "2025-12-31"}),
    ("validity", True, "valid from 2026-12-07, no end date", "valid_open", {"start": "2026-12-07"}),
    ("validity", True, "valid from 2026-12-07 to 2027-06-06", "valid_until", {"start": "2026-12-07", "end": "2027-06-06"}),
    ("status", True, "valid according to the issuer's status list (status list fetched 2 minutes ago)", "status_list_ok", {}),
    ("status", False, "the certificate is suspended (暂扣) according to the issuer's status list (fetched now)",
     "status_list_suspended", {}),
    ("status", False, "the certificate is revoked or otherwise no longer valid according to the issuer's status list",
     "status_list_revoked", {}),
    ("status", False, "no certificate with this identifier in this registry, and it names no status list",
     "status_unknown_here", {}),
    ("status", False, "the status cannot be confirmed: the status list could not be fetched (timeout)",
     "status_unconfirmed", {}),
    ("status", False, "not checked: the signature did not verify", "not_checked", {}),
    ("record", False, "no certificate in this registry has this exact PDF (changed after issue?)", "record_missing", {}),
    ("signature_intact", False, "the PDF carries no signature", "unsigned", {}),
    ("signature_intact", False, "the signed content was changed: its digest does not match", "content_changed", {}),
    ("chain_trusted", False, "the signer certificate has been revoked", "signer_revoked", {}),
    ("chain_trusted", False, "the signer certificate does not chain to a trusted root (REVOKED)", "chain_bad", {}),
    ("no_changes_after_signing", True, "only validation data and timestamps were added after signing", "ltv_only", {}),
    ("no_changes_after_signing", False, "form fields were filled in after signing", "form_filled", {}),
    ("coverage", True, "the signature covers its whole revision; later updates were analysed", "covers_revision", {}),
    ("coverage", False, "the signature does not cover its whole revision", "partial", {}),
]


@pytest.mark.parametrize(("name", "ok", "reason", "code", "values"), REASONS)
def test_each_reason_has_its_code_and_sentence(name: str, ok: bool, reason: str, code: str, values: dict) -> None:
    assert reason_code(name, ok, reason) == code
    zh, en = reason_text(name, ok, reason, "zh-CN"), reason_text(name, ok, reason, "en")
    assert en == REASON_TEXT[code] % values if values else en == REASON_TEXT[code]
    assert zh != en and not re.search(r"[A-Za-z]{3,}", zh.replace("YW1", "").replace("PDF", "")), zh  # no English left
    for value in values.values():
        assert value in zh and value in en
    assert reason not in zh and reason not in en


def test_an_unknown_reason_says_only_passed_or_failed() -> None:
    assert reason_text("signature", True, "", "zh-CN") == "由信任列表中的密钥签名。"  # a code without a pattern
    assert reason_text("brand_new_check", False, "something new in English", "zh-CN") == "未通过。"
    assert reason_text("brand_new_check", True, "something new in English", "en") == "Passed."


def test_every_check_has_a_label_in_both_languages() -> None:
    for name in CHECK_LABELS:
        assert check_label(name, "en") != check_label(name, "zh-CN")
    assert check_label("brand_new_check", "zh-CN") == "brand_new_check"
