"""Who we are to an authenticator, and which authenticators an agency accepts (issue 13 §2).

The relying party id is the issuer's host name and the origin the issuer's
(WebAuthn Level 3 §5.1.3, §13.4.9): a page on a sibling subdomain or another
port cannot use our credentials. The mobile app's own origin (Android:
``android:apk-key-hash:…``) is added with ``YIWANG_IDP_PASSKEY_EXTRA_ORIGINS``.

Attestation is ``none`` by default (WebAuthn §5.4.7): a citizen's own phone or
computer is enough, and nothing identifies its model. An agency that only
accepts certified authenticators sets :attr:`PasskeyPolicy.allowed_aaguids`
and/or :attr:`PasskeyPolicy.allowed_formats` (``YIWANG_IDP_PASSKEY_AAGUIDS``,
``YIWANG_IDP_PASSKEY_ATTESTATION_FORMATS``): registration then asks for
``direct`` attestation, which py_webauthn verifies (with the vendors' roots
in :attr:`PasskeyPolicy.attestation_roots` where a format needs them), and
:meth:`PasskeyPolicy.refusal` refuses the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["PasskeyPolicy"]


@dataclass(frozen=True)
class PasskeyPolicy:
    rp_id: str
    """The host name of the issuer (never an IP address: WebAuthn refuses those)."""
    rp_name: str
    origins: tuple[str, ...]
    """The origins a ceremony may come from (``clientDataJSON.origin``)."""
    allowed_aaguids: frozenset[str] = frozenset()
    """Lower-case AAGUIDs accepted; empty: any."""
    allowed_formats: frozenset[str] = frozenset()
    """Attestation statement formats accepted (``packed``, ``tpm``, ``apple`` …); empty: any."""
    attestation_roots: Mapping[Any, list[bytes]] = field(default_factory=dict)
    """PEM roots per :class:`webauthn.helpers.structs.AttestationFormat`, beside py_webauthn's own."""
    challenge_seconds: int = 300
    """How long an options answer may wait for its ceremony (WebAuthn §15.4 recommends minutes)."""
    timeout_ms: int = 120_000

    @classmethod
    def from_settings(cls, settings: Any) -> PasskeyPolicy:
        parts = urlsplit(settings.issuer)
        origin = f"{parts.scheme}://{parts.netloc}"
        return cls(
            rp_id=parts.hostname or "localhost",
            rp_name="一网通办 Yiwang",
            origins=(origin, *(getattr(settings, "passkey_extra_origins", ()) or ())),
            allowed_aaguids=frozenset(a.lower() for a in getattr(settings, "passkey_aaguids", ()) or ()),
            allowed_formats=frozenset(getattr(settings, "passkey_attestation_formats", ()) or ()),
        )

    @property
    def usable(self) -> bool:
        """Whether browsers will run a ceremony for this RP id: a host name, never an IP address
        (WebAuthn §5.1.3; the plain ``127.0.0.1`` demo therefore shows no passkey buttons)."""
        import ipaddress

        try:
            ipaddress.ip_address(self.rp_id.strip("[]"))
        except ValueError:
            return bool(self.rp_id)
        return False

    @property
    def wants_attestation(self) -> bool:
        """Whether registration asks for ``direct`` attestation (an agency's policy), not ``none``."""
        return bool(self.allowed_aaguids or self.allowed_formats)

    def refusal(self, *, fmt: str, aaguid: str) -> str | None:
        """Why a verified registration is not acceptable under this policy, or ``None``."""
        if not self.wants_attestation:
            return None
        if fmt == "none":
            return "attestation_required"
        if self.allowed_formats and fmt not in self.allowed_formats:
            return "attestation_format"
        if self.allowed_aaguids and aaguid.lower() not in self.allowed_aaguids:
            return "authenticator_not_allowed"
        return None
