"""What a passkey sign-in says about itself: ``amr`` values (RFC 8176) and the kind of authenticator.

- ``hwk`` / ``swk`` (RFC 8176 §2): a passkey that cannot leave its device
  (backup-eligible flag off: a security key, a TPM, a phone's secure element)
  is a hardware-secured key; a synced passkey (flag on: iCloud Keychain,
  Google Password Manager, a password manager) is copied between devices by
  software, so we say ``swk``.
- ``user``: the authenticator verified the citizen (WebAuthn UV flag, required
  here). ``mfa``: possession of the key and the citizen's verification.
- ``fpt`` / ``face`` / ``pin`` are *not* sent: WebAuthn tells a relying party
  that the user was verified, never how (the ``uvm`` extension that once did
  is not implemented by browsers, and a fingerprint and a PIN unlock the same
  key). We do not guess.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["amr_for", "authenticator_kind", "KNOWN_AAGUIDS"]

KNOWN_AAGUIDS = {
    "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
    "fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "iCloud Keychain",
    "08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
    "adce0002-35bc-c60a-648b-0b25f1f05503": "Chrome on Mac",
}
"""A few well-known AAGUIDs (passkey providers publish theirs); others are described by their transports."""


def amr_for(*, backup_eligible: bool, user_verified: bool) -> list[str]:
    amr = ["swk" if backup_eligible else "hwk"]
    if user_verified:
        amr += ["user", "mfa"]
    return amr


def authenticator_kind(*, transports: Sequence[str], backup_eligible: bool, aaguid: str) -> str:
    """A message key for the account page: what kind of authenticator holds this passkey."""
    if aaguid.lower() in KNOWN_AAGUIDS:
        return "passkey_kind_provider"
    t = set(transports)
    if t & {"usb", "nfc", "ble", "smart-card"} and "internal" not in t:
        return "passkey_kind_security_key"
    if "hybrid" in t and "internal" not in t:
        return "passkey_kind_phone"
    if backup_eligible:
        return "passkey_kind_synced"
    return "passkey_kind_device"
