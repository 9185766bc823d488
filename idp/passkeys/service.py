"""Passkey ceremonies with py_webauthn: registration, sign-in, step-up (WebAuthn Level 3 §7).

- Discoverable credentials (``residentKey: required``): the sign-in options name
  no credential, the authenticator offers the citizen's passkeys and returns
  the ``userHandle``, so nobody types an ID number.
- User verification is required in every ceremony and checked on the answer
  (UV flag): a passkey without it signs nobody in (``no_user_verification``).
- Challenges are single-use and bound to the browser (:mod:`.challenges`).
- Clone signals (§6.1.1 sign counter, §6.1.3 backup eligibility that changed)
  block the credential, checked only *after* the signature is verified (a
  forged answer must not be able to block somebody's passkey), and are audited.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    bytes_to_base64url,
    generate_user_handle,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..models import Citizen
from .amr import amr_for
from .challenges import ChallengeStore
from .models import PasskeyCredential
from .policy import PasskeyPolicy
from .store import PasskeyStore, clean_name, same

__all__ = ["PasskeyService", "PasskeyError", "SignedIn", "REGISTER", "SIGN_IN"]

logger = logging.getLogger(__name__)

REGISTER = "register"
SIGN_IN = "sign_in"
_ALGS = [COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.EDDSA,
         COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256]
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


class PasskeyError(Exception):
    """A ceremony refused; ``reason`` is a short code (also the message key ``passkey_<reason>``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SignedIn:
    citizen_id: int
    passkey_id: int
    amr: list[str]


def _challenge_of(client_data_json: bytes) -> str:
    try:
        return bytes_to_base64url(parse_client_data_json(client_data_json).challenge)
    except (WebAuthnException, ValueError, TypeError, KeyError):
        return ""


class PasskeyService:
    def __init__(self, *, db: Any, redis: Any, keyspace: Any, policy: PasskeyPolicy, audit: Any = None) -> None:
        self.db = db
        self.store = PasskeyStore(db)
        self.policy = policy
        self.challenges = ChallengeStore(redis, keyspace, ttl_seconds=policy.challenge_seconds)
        self._audit_log = audit

    @classmethod
    def from_services(cls, services: Any, settings: Any) -> PasskeyService:
        return cls(db=services.db, redis=services.redis, keyspace=services.keyspace,
                   policy=PasskeyPolicy.from_settings(settings), audit=services.audit)

    def audit(self, kind: str, **kw: Any) -> None:
        if self._audit_log is None:
            return
        try:
            self._audit_log.record(kind, **kw)
        except Exception:
            logger.exception("audit record %s failed", kind)

    # ------------------------------------------------------------ registration

    def registration_options(self, citizen: Citizen, browser_hash: str) -> dict[str, Any]:
        """``PublicKeyCredentialCreationOptions`` as JSON (for ``PublicKeyCredential.parseCreationOptionsFromJSON``)."""
        handle = self.store.user_handle_of(citizen.id) or bytes_to_base64url(generate_user_handle())
        user_id = _b64d(handle)
        challenge = self.challenges.issue(REGISTER, browser_hash, citizen_id=citizen.id, user_handle=handle)
        options = generate_registration_options(
            rp_id=self.policy.rp_id, rp_name=self.policy.rp_name,
            user_name=citizen.id_number_masked, user_id=user_id, user_display_name=citizen.name,
            challenge=challenge, timeout=self.policy.timeout_ms,
            attestation=(AttestationConveyancePreference.DIRECT if self.policy.wants_attestation
                         else AttestationConveyancePreference.NONE),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED),
            exclude_credentials=[_descriptor(cid, tr) for cid, tr in self.store.credential_ids(citizen.id)],
            supported_pub_key_algs=_ALGS,
        )
        return json.loads(options_to_json(options))  # type: ignore[no-any-return]

    def register(self, citizen: Citizen, browser_hash: str, credential: dict[str, Any] | str,
                 *, name: str = "") -> PasskeyCredential:
        try:
            parsed = parse_registration_credential_json(credential)
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise PasskeyError("malformed") from None
        chal = self.challenges.take(REGISTER, browser_hash, _challenge_of(parsed.response.client_data_json))
        if chal is None or chal.citizen_id != citizen.id:
            raise PasskeyError("challenge")
        try:
            verified = verify_registration_response(
                credential=parsed, expected_challenge=chal.value, expected_rp_id=self.policy.rp_id,
                expected_origin=list(self.policy.origins), require_user_verification=True,
                supported_pub_key_algs=_ALGS, pem_root_certs_bytes_by_fmt=dict(self.policy.attestation_roots) or None,
            )
        except WebAuthnException as e:
            logger.info("passkey registration refused: %s", e)
            raise PasskeyError("no_user_verification" if "verif" in str(e).lower() else "invalid") from None
        fmt = getattr(verified.fmt, "value", str(verified.fmt))
        refused = self.policy.refusal(fmt=fmt, aaguid=verified.aaguid)
        if refused is not None:
            self.audit("passkey.refused", subject=str(citizen.id), detail={"reason_code": refused, "aaguid": verified.aaguid})
            raise PasskeyError(refused)
        cid = bytes_to_base64url(verified.credential_id)
        if self.store.by_credential_id(cid) is not None:
            raise PasskeyError("already_registered")
        transports = [t.value if hasattr(t, "value") else str(t) for t in (parsed.response.transports or [])]
        row = self.store.add(PasskeyCredential(
            citizen_id=citizen.id, credential_id=cid,
            user_handle=self.store.user_handle_of(citizen.id) or chal.user_handle or "",
            public_key=verified.credential_public_key, sign_count=verified.sign_count,
            transports=[t for t in transports if t in _TRANSPORTS], aaguid=verified.aaguid,
            attestation_format=fmt,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up, name=clean_name(name, "passkey"),
        ))
        self.audit("passkey.registered", subject=str(citizen.id),
                   detail={"passkey": row.id, "aaguid": verified.aaguid, "format": fmt})
        return row

    # ----------------------------------------------------------------- sign-in

    def authentication_options(self, browser_hash: str, *, citizen_id: int | None = None) -> dict[str, Any]:
        """``PublicKeyCredentialRequestOptions`` as JSON.

        Without ``citizen_id``: a discoverable sign-in (no ``allowCredentials``).
        With it (a step-up of a signed-in citizen): that account's passkeys only.
        """
        allow = ([_descriptor(cid, tr) for cid, tr in self.store.credential_ids(citizen_id, usable_only=True)]
                 if citizen_id is not None else [])
        challenge = self.challenges.issue(SIGN_IN, browser_hash, citizen_id=citizen_id)
        options = generate_authentication_options(
            rp_id=self.policy.rp_id, challenge=challenge, timeout=self.policy.timeout_ms,
            allow_credentials=allow, user_verification=UserVerificationRequirement.REQUIRED)
        return json.loads(options_to_json(options))  # type: ignore[no-any-return]

    def authenticate(self, browser_hash: str, credential: dict[str, Any] | str, *, ip: str | None = None) -> SignedIn:
        """Check an assertion; the account it signs in, or :class:`PasskeyError`."""
        try:
            parsed = parse_authentication_credential_json(credential)
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise PasskeyError("malformed") from None
        chal = self.challenges.take(SIGN_IN, browser_hash, _challenge_of(parsed.response.client_data_json))
        if chal is None:
            raise PasskeyError("challenge")
        row = self.store.by_credential_id(bytes_to_base64url(parsed.raw_id))
        if row is None:
            raise PasskeyError("unknown")
        if chal.citizen_id is not None and chal.citizen_id != row.citizen_id:
            raise PasskeyError("wrong_account")  # a step-up answered with somebody else's passkey
        handle = parsed.response.user_handle
        if handle is not None and not same(bytes_to_base64url(handle), row.user_handle):
            raise PasskeyError("unknown")  # WebAuthn §7.2 step 6
        try:
            verified = verify_authentication_response(
                credential=parsed, expected_challenge=chal.value, expected_rp_id=self.policy.rp_id,
                expected_origin=list(self.policy.origins), credential_public_key=row.public_key,
                credential_current_sign_count=0,  # compared below, after the signature is known good
                require_user_verification=False)  # checked below, for its own answer
        except WebAuthnException as e:
            logger.info("passkey %s: assertion refused: %s", row.id, e)
            self.audit("passkey.sign_in_failure", subject=str(row.citizen_id), ip=ip,
                       detail={"passkey": row.id, "reason_code": "invalid"})
            raise PasskeyError("invalid") from None
        if row.blocked:
            raise PasskeyError("blocked")
        signal = self._clone_signal(row, verified.new_sign_count,
                                    verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE)
        if signal is not None:
            self.store.block(row.id, signal)
            self.audit("passkey.blocked", subject=str(row.citizen_id), ip=ip,
                       detail={"passkey": row.id, "reason_code": signal, "stored_count": row.sign_count,
                               "presented_count": verified.new_sign_count})
            logger.warning("passkey %s of account %s blocked: %s", row.id, row.citizen_id, signal)
            raise PasskeyError("blocked")
        if not verified.user_verified:
            self.audit("passkey.sign_in_failure", subject=str(row.citizen_id), ip=ip,
                       detail={"passkey": row.id, "reason_code": "no_user_verification"})
            raise PasskeyError("no_user_verification")
        self.store.used(row.id, sign_count=verified.new_sign_count, backed_up=verified.credential_backed_up)
        self.audit("passkey.sign_in", subject=str(row.citizen_id), ip=ip, detail={"passkey": row.id})
        return SignedIn(row.citizen_id, row.id, amr_for(backup_eligible=row.backup_eligible, user_verified=True))

    @staticmethod
    def _clone_signal(row: PasskeyCredential, presented: int, backup_eligible: bool) -> str | None:
        # §6.1.1: a counter that does not grow (both not zero) means two copies of the key.
        if (presented or row.sign_count) and presented <= row.sign_count:
            return "sign_count_regression"
        # §6.1.3: backup eligibility is fixed when the credential is made.
        if backup_eligible != row.backup_eligible:
            return "backup_eligibility_changed"
        return None

    # ---------------------------------------------------------- account page

    def of_citizen(self, citizen_id: int) -> list[PasskeyCredential]:
        return self.store.of_citizen(citizen_id)

    def rename(self, citizen_id: int, passkey_id: int, name: str) -> bool:
        done = self.store.rename(citizen_id, passkey_id, name)
        if done:
            self.audit("passkey.renamed", subject=str(citizen_id), detail={"passkey": passkey_id})
        return done

    def remove(self, citizen_id: int, passkey_id: int) -> bool:
        """Remove a passkey; :class:`idp.passkeys.store.LastFactor` when it is the last way in."""
        done = self.store.remove(citizen_id, passkey_id)
        if done:
            self.audit("passkey.removed", subject=str(citizen_id), detail={"passkey": passkey_id})
        return done


def _b64d(text: str) -> bytes:
    from webauthn.helpers import base64url_to_bytes

    return base64url_to_bytes(text)


def _descriptor(credential_id: str, transports: list[str]) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=_b64d(credential_id),
        transports=[AuthenticatorTransport(t) for t in transports if t in _TRANSPORTS] or None)
