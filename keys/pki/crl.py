"""Revocation: the issuing CA's CRL of agency certificates, the root's CRL of CA certificates.

Both CRLs are re-signed when they are about to expire, by whichever process
asks for them first (under the PKI lock). Revoking an agency's signer
certificate records it in ``revoked.json``, re-issues the CRL and destroys
the signer's key.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from ..errors import KeyNotFound, KeysError
from ..identifiers import parse_uscc
from ..sealed import atomic_write, file_lock
from .storage import (
    key_signer,
    now,
    pki_dir,
    read_cert,
    read_json,
    region_state,
    signer_paths,
    write_json,
)
from .tbs import certificate_public_key, sign_tbs

if TYPE_CHECKING:
    from ..keyring import Keyring

logger = logging.getLogger(__name__)

_CRL_DAYS = 7
_CRL_REFRESH = dt.timedelta(days=1)  # re-sign when less than this is left
_ARL_DAYS = 365
_ARL_REFRESH = dt.timedelta(days=30)
_REASONS = {flag.value: flag for flag in x509.ReasonFlags} | {
    flag.name: flag for flag in x509.ReasonFlags
}


def _crl_builder(
    issuer: x509.Certificate, number: int, days: int
) -> x509.CertificateRevocationListBuilder:
    at = now()
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(at)
        .next_update(at + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                certificate_public_key(issuer.public_key())
            ),
            critical=False,
        )
    )


# -- the root's CRL (ARL) ----------------------------------------------------------------------


def _issue_root_crl(keyring: Keyring, state: dict[str, Any]) -> bytes:
    """Sign the root CA's CRL of revoked CA certificates (none: the issuing CA is replaced with
    the region) and store it. Long-term (PAdES B-LTA) validation needs revocation data for every
    certificate of a path, the issuing CA's too (ETSI EN 319 102-1 §5.6.2.1, the time slide)."""
    d = pki_dir(keyring)
    number = int(state.get("root_crl_number", 0)) + 1
    builder = _crl_builder(read_cert(d / "root.pem"), number, _ARL_DAYS)
    der = sign_tbs("crl", builder, key_signer(keyring, state["root_key"]))
    atomic_write(d / "root.crl", der, mode=0o644)
    state["root_crl_number"] = number
    write_json(d / "region.json", state)
    return der


def current_root_crl(keyring: Keyring) -> bytes:
    """The root CA's current CRL (DER; it lists revoked CA certificates), re-signed when due."""
    d = pki_dir(keyring)

    def fresh() -> bytes | None:
        try:
            der = (d / "root.crl").read_bytes()
            next_update = x509.load_der_x509_crl(der).next_update_utc
        except (FileNotFoundError, ValueError):
            return None
        return der if next_update is not None and next_update - now() > _ARL_REFRESH else None

    der = fresh()
    if der is not None:
        return der
    with file_lock(d / ".lock"):
        der = fresh()
        return der if der is not None else _issue_root_crl(keyring, region_state(keyring))


# -- revocation and the issuing CA's CRL -----------------------------------------------------


def reason_flag(reason: str) -> x509.ReasonFlags:
    flag = _REASONS.get(reason.strip())
    if flag is None or flag is x509.ReasonFlags.remove_from_crl:
        choices = ", ".join(
            f.value for f in x509.ReasonFlags if f is not x509.ReasonFlags.remove_from_crl
        )
        raise KeysError(f"unknown revocation reason {reason!r}; use one of {choices}")
    return flag


def revoke(keyring: Keyring, state: dict[str, Any], meta: dict[str, Any], reason: str) -> None:
    """Record a revocation and re-issue the CRL (caller holds the PKI lock)."""
    flag = reason_flag(reason)
    d = pki_dir(keyring)
    revoked = read_json(d / "revoked.json")
    entries = list(revoked.get("revoked", []))
    entries.append(
        {
            "serial": meta["serial"],
            "uscc": meta["uscc"],
            "reason": flag.value,
            "revoked_at": now().isoformat(),
        }
    )
    write_json(d / "revoked.json", {"revoked": entries})
    issue_crl(keyring, state)
    meta_path, _ = signer_paths(keyring, str(meta["uscc"]))
    if read_json(meta_path).get("serial") == meta["serial"]:  # not when superseded
        write_json(meta_path, {**meta, "revoked": True})
    try:
        keyring.backend(meta["key"]["backend"]).delete(meta["key"]["handle"])
    except KeysError as e:
        logger.warning("could not destroy the revoked signer key of %s: %s", meta["uscc"], e)
    logger.info(
        "revoked signer certificate %s of agency %s (%s)", meta["serial"], meta["uscc"], flag.value
    )


def revoke_signer(keyring: Keyring, *, uscc: str, reason: str = "unspecified") -> None:
    """Revoke the agency's current signer certificate and publish a new CRL."""
    code, _ = parse_uscc(uscc, strict=False)
    reason_flag(reason)
    with file_lock(pki_dir(keyring) / ".lock"):
        state = region_state(keyring)
        meta_path, _ = signer_paths(keyring, code)
        try:
            meta = read_json(meta_path)
        except FileNotFoundError:
            raise KeyNotFound(f"agency {code} has no signer certificate") from None
        if meta.get("revoked"):
            raise KeysError(f"the signer certificate of agency {code} is already revoked")
        revoke(keyring, state, meta, reason)


def issue_crl(keyring: Keyring, state: dict[str, Any]) -> bytes:
    """Sign a fresh CRL of the issuing CA (RFC 5280 §5) and store it (caller holds the lock)."""
    d = pki_dir(keyring)
    number = int(state.get("crl_number", 0)) + 1
    builder = _crl_builder(read_cert(d / "issuing.pem"), number, _CRL_DAYS)
    for entry in read_json(d / "revoked.json").get("revoked", []):
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(entry["serial"], 16))
            .revocation_date(dt.datetime.fromisoformat(entry["revoked_at"]))
        )
        if entry.get("reason") and entry["reason"] != "unspecified":
            revoked = revoked.add_extension(
                x509.CRLReason(reason_flag(entry["reason"])), critical=False
            )
        builder = builder.add_revoked_certificate(revoked.build())
    der = sign_tbs("crl", builder, key_signer(keyring, state["issuing_key"]))
    atomic_write(d / "issuing.crl", der, mode=0o644)
    state["crl_number"] = number
    write_json(d / "region.json", state)
    return der


def _fresh_crl(path: Path) -> bytes | None:
    try:
        der = path.read_bytes()
        next_update = x509.load_der_x509_crl(der).next_update_utc
    except FileNotFoundError:
        return None
    except ValueError:
        logger.warning("the stored CRL is unreadable; issuing a new one")
        return None
    if next_update is not None and next_update - now() > _CRL_REFRESH:
        return der
    return None


def current_crl(keyring: Keyring) -> bytes:
    """The issuing CA's current CRL (DER), re-signed when it is about to expire."""
    d = pki_dir(keyring)
    der = _fresh_crl(d / "issuing.crl")
    if der is not None:
        return der
    with file_lock(d / ".lock"):
        state = region_state(keyring)
        der = _fresh_crl(d / "issuing.crl")  # another process may have just re-signed it
        return der if der is not None else issue_crl(keyring, state)
