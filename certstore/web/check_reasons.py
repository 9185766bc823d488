"""The verify page's check lines in the citizen's language (issue 18: no English reason on a Chinese page).

``signing/`` and :mod:`certstore.verification` explain each check in English
for the API and the logs. The page does not show that text: it recognises
the reason (a code per known sentence, :data:`_REASONS`) and shows the
catalog's sentence for that code, with the dates or status it carried; a
reason it does not know gets the check's plain "passed" / "did not pass"
sentence, never the English. The API's JSON keeps the English reasons.
"""

from __future__ import annotations

import re
from typing import Any

from keys.locale import N_, gettext

__all__ = ["CHECK_LABELS", "REASON_TEXT", "check_label", "reason_text", "reason_code"]

CHECK_LABELS: dict[str, str] = {
    "format": N_("Format"),
    "signature": N_("Signature"),
    "issuer_trusted": N_("Issuer trusted"),
    "type_allowed": N_("Issuer may issue this type"),
    "validity": N_("Validity period"),
    "status": N_("Certificate status"),
    "record": N_("Matches the registry record"),
    "signature_intact": N_("Signature intact"),
    "chain_trusted": N_("Signer certificate trusted"),
    "no_changes_after_signing": N_("Not modified after signing"),
    "coverage": N_("Signature covers the document"),
}

# (check name or "*", passed?, pattern of the English reason, code, sentence). First match wins.
_REASONS: list[tuple[str, bool, str, str, str]] = [
    ("*", False, r"^not checked", "not_checked", N_("Not checked: an earlier check did not pass.")),
    ("format", True, r"", "format_ok", N_("A well-formed Yiwang certificate QR code.")),
    ("format", False, r"", "format_bad", N_("This is not a Yiwang certificate QR code (those start with YW1:), or it is damaged.")),
    ("signature", True, r"", "signature_ok", N_("Signed with a key in the trust list.")),
    ("signature", False, r"not in the trust list", "signer_unknown",
     N_("Signed with a key that is not in the trust list: the signer is unknown.")),
    ("signature", False, r"", "signature_bad", N_("The signature does not verify.")),
    ("issuer_trusted", True, r"", "issuer_ok", N_("The issuer is in the trust list.")),
    ("issuer_trusted", False, r"but was signed by", "issuer_mismatch",
     N_("The issuer named in the code did not sign it.")),
    ("issuer_trusted", False, r"not valid on the issue date (?P<date>\S+)", "issuer_expired",
     N_("The issuer's signing certificate was not valid on the issue date %(date)s.")),
    ("type_allowed", True, r"", "type_ok", N_("The issuer may issue this type of certificate.")),
    ("type_allowed", False, r"", "type_bad", N_("The issuer may not issue this type of certificate.")),
    ("validity", False, r"^not valid before (?P<date>\S+)", "not_yet_valid", N_("Not valid before %(date)s.")),
    ("validity", False, r"^expired at the end of (?P<date>\S+)", "expired", N_("Expired at the end of %(date)s.")),
    ("validity", True, r"^valid from (?P<start>\S+), no end date", "valid_open",
     N_("Valid from %(start)s, with no end date.")),
    ("validity", True, r"^valid from (?P<start>\S+) to (?P<end>\S+)", "valid_until",
     N_("Valid from %(start)s to %(end)s.")),
    ("status", True, r"status list", "status_list_ok", N_("Valid according to the issuer's status list.")),
    ("status", True, r"", "status_ok", N_("The registry shows it as valid.")),
    ("status", False, r"suspended .*status list", "status_list_suspended",
     N_("Suspended according to the issuer's status list.")),
    ("status", False, r"revoked or otherwise .*status list", "status_list_revoked",
     N_("Revoked or otherwise no longer valid according to the issuer's status list.")),
    ("status", False, r"names no status list", "status_unknown_here",
     N_("Not in this registry, and the code names no status list to ask.")),
    ("status", False, r"status list id that is not valid", "status_list_bad",
     N_("The code names a status list that is not valid; it was not fetched.")),
    ("status", False, r"publishes no status list", "status_list_none",
     N_("The issuer's region publishes no status list known here.")),
    ("status", False, r"cannot be confirmed|could not be fetched|answered HTTP|expired|larger than", "status_unconfirmed",
     N_("The status cannot be confirmed right now: the issuer's status list could not be read.")),
    ("record", True, r"", "record_ok", N_("The registry holds this exact document.")),
    ("record", False, r"", "record_missing",
     N_("No certificate in this registry has this exact PDF: it may have been changed after issue.")),
    ("signature_intact", True, r"", "intact_ok", N_("The signed content is unchanged and the signature verifies.")),
    ("signature_intact", False, r"carries no signature", "unsigned", N_("The PDF carries no signature.")),
    ("signature_intact", False, r"was changed", "content_changed", N_("The signed content was changed after signing.")),
    ("signature_intact", False, r"", "intact_bad", N_("The signature does not verify.")),
    ("chain_trusted", True, r"", "chain_ok", N_("The signer certificate chains to a trusted root.")),
    ("chain_trusted", False, r"has been revoked", "signer_revoked", N_("The signer certificate has been revoked.")),
    ("chain_trusted", False, r"", "chain_bad", N_("The signer certificate does not chain to a trusted root.")),
    ("no_changes_after_signing", True, r"validation data", "ltv_only",
     N_("Only validation data and timestamps were added after signing.")),
    ("no_changes_after_signing", True, r"", "unchanged", N_("No changes after signing.")),
    ("no_changes_after_signing", False, r"form fields", "form_filled", N_("Form fields were filled in after signing.")),
    ("no_changes_after_signing", False, r"annotations", "annotated", N_("Annotations were added or changed after signing.")),
    ("no_changes_after_signing", False, r"", "changed", N_("The document was changed after signing.")),
    ("coverage", True, r"whole revision", "covers_revision",
     N_("The signature covers its whole revision; later updates were checked.")),
    ("coverage", True, r"", "covers_file", N_("The signature covers the whole file.")),
    ("coverage", False, r"", "partial", N_("The signature does not cover its whole revision.")),
]
_EXTRA: list[tuple[str, str]] = [
    # codes the offline verifier's script gives (static/offline/verify.js), beside the ones above
    ("status_list_invalid", N_("The issuer's status list does not verify, so the status cannot be confirmed.")),
]
REASON_TEXT: dict[str, str] = {code: text for _n, _ok, _p, code, text in _REASONS} | dict(_EXTRA)
"""Reason code → English msgid (the offline verifier's script gets them translated from its page)."""
_COMPILED = [(name, ok, re.compile(pattern), code, text) for name, ok, pattern, code, text in _REASONS]
_PASSED, _FAILED = N_("Passed."), N_("Did not pass.")


def check_label(name: str, lang: str) -> str:
    return gettext(lang, CHECK_LABELS[name]) if name in CHECK_LABELS else name


def _match(name: str, ok: bool, reason: str) -> tuple[str, str, dict[str, Any]] | None:
    for check, passed, pattern, code, text in _COMPILED:
        if check in ("*", name) and passed == ok:
            found = pattern.search(reason or "")
            if found:
                return code, text, {k: v.rstrip(".,;") for k, v in found.groupdict().items()}
    return None


def reason_code(name: str, ok: bool, reason: str) -> str:
    """The code of a check's reason (``expired``, ``signer_unknown``…; ``passed``/``failed`` if unknown)."""
    found = _match(name, ok, reason)
    return found[0] if found else ("passed" if ok else "failed")


def reason_text(name: str, ok: bool, reason: str, lang: str) -> str:
    """The sentence for a check's reason in ``lang``; the English reason itself is never returned."""
    found = _match(name, ok, reason)
    if found is None:
        return gettext(lang, _PASSED if ok else _FAILED)
    _code, text, values = found
    return gettext(lang, text, **values) if values else gettext(lang, text)
