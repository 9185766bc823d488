"""The region's CA hierarchy: the root CA and the issuing CA, created once and read back.

A region (a province or city, by its administrative division code) runs one
root CA and one issuing CA. Both keys live in a key backend (an HSM can hold
them); the root signs only the issuing CA and the region's exported trust
list.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..backend import Signer
from ..errors import KeysError
from ..sealed import file_lock
from .crl import issue_crl
from .profiles import ca_extensions, region_name
from .storage import (
    BACKDATE,
    CA_ALGORITHMS,
    key_signer,
    new_key,
    now,
    pki_dir,
    read_cert,
    region_state,
    write_cert,
    write_json,
    years,
)
from .tbs import certificate_public_key, sign_tbs

if TYPE_CHECKING:
    from ..keyring import Keyring

logger = logging.getLogger(__name__)

DEFAULT_CRL_URL = "http://127.0.0.1:5100/pki/crl/issuing.crl"

_ROOT_YEARS = 20
_ISSUING_YEARS = 10


@dataclass(frozen=True)
class RegionCA:
    """The region's two CAs."""

    region: str
    """Administrative division code, e.g. ``110000``."""
    name: str
    root: x509.Certificate
    issuing: x509.Certificate
    crl_url: str
    """Where the issuing CA's CRL is published (in every signer certificate)."""


def region_ca(keyring: Keyring) -> RegionCA:
    """The region's root and issuing CA (raises ``KeyNotFound`` before ``ca init``)."""
    state = region_state(keyring)
    d = pki_dir(keyring)
    return RegionCA(
        region=str(state["region"]),
        name=str(state["name"]),
        root=read_cert(d / "root.pem"),
        issuing=read_cert(d / "issuing.pem"),
        crl_url=str(state["crl_url"]),
    )


def region_root(keyring: Keyring) -> x509.Certificate:
    """The trust anchor verifiers install."""
    return region_ca(keyring).root


def root_signer(keyring: Keyring) -> Signer:
    """A signer for the region *root* key (the key stays in its backend).

    The root signs only what other regions check against it as their trust
    anchor: the issuing CA and the region's exported trust list (certstore
    ``trust export``).
    """
    state = region_state(keyring)
    return key_signer(keyring, state["root_key"])


def _ca_certificate(
    *,
    subject: x509.Name,
    subject_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer_name: x509.Name,
    issuer_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    signer: Signer,
    start: dt.datetime,
    lifetime_years: int,
    path_length: int,
) -> x509.Certificate:
    """A CA certificate (the root, self-signed, or the issuing CA, by the root)."""
    builder = ca_extensions(
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(years(start, lifetime_years)),
        path_length=path_length,
    )
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False
    ).add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False)
    return x509.load_der_x509_certificate(sign_tbs("cert", builder, signer))


def init_region(
    keyring: Keyring,
    *,
    region: str,
    name: str,
    crl_url: str | None = None,
    algorithm: str = "ES256",
) -> RegionCA:
    """Create the region's root CA and issuing CA (once; a second call is refused).

    ``crl_url`` is where the issuing CA's CRL will be served (default: certstore's
    embedded address ``/pki/crl/issuing.crl``); it goes into every signer certificate.
    """
    region = region.strip()
    if not (region.isascii() and region.isdigit() and len(region) == 6):
        raise KeysError("a region code is the 6-digit administrative division code, e.g. 110000")
    name = name.strip()
    if not name or len(name) > 64:
        raise KeysError("a region name is 1 to 64 characters")
    if algorithm not in CA_ALGORITHMS:
        raise KeysError(f"CA keys are {' or '.join(CA_ALGORITHMS)}")
    crl_url = crl_url or DEFAULT_CRL_URL
    d = pki_dir(keyring)
    with file_lock(d / ".lock"):
        if (d / "region.json").exists():
            raise KeysError("the region PKI already exists; it is created only once")
        made: list[dict[str, str]] = []
        try:
            root_ref, root_key = new_key(keyring, algorithm, f"ca-root-{region}")
            made.append(root_ref)
            issuing_ref, issuing_key = new_key(keyring, algorithm, f"ca-issuing-{region}")
            made.append(issuing_ref)
            start = now() - BACKDATE
            root_pub = certificate_public_key(root_key.public_key())
            root_name = region_name(region, name, f"{name} Root CA")
            root = _ca_certificate(  # self-signed
                subject=root_name,
                subject_key=root_pub,
                issuer_name=root_name,
                issuer_key=root_pub,
                signer=root_key,
                start=start,
                lifetime_years=_ROOT_YEARS,
                path_length=1,
            )
            issuing = _ca_certificate(
                subject=region_name(region, name, f"{name} Issuing CA"),
                subject_key=certificate_public_key(issuing_key.public_key()),
                issuer_name=root.subject,
                issuer_key=root_pub,
                signer=root_key,
                start=start,
                lifetime_years=_ISSUING_YEARS,
                path_length=0,
            )

            write_cert(d / "root.pem", root)
            write_cert(d / "issuing.pem", issuing)
            write_json(d / "revoked.json", {"revoked": []})
            state = {
                "format": 1,
                "region": region,
                "name": name,
                "crl_url": crl_url,
                "crl_number": 0,
                "root_key": root_ref,
                "issuing_key": issuing_ref,
                "created_at": now().isoformat(),
            }
            write_json(d / "region.json", state)  # written last: it marks the PKI as complete
        except BaseException:
            for ref in made:
                keyring.backend(ref["backend"]).delete(ref["handle"])
            raise
        issue_crl(keyring, state)
    logger.info(
        "created region PKI %s: root %x, issuing CA %x",
        region,
        root.serial_number,
        issuing.serial_number,
    )
    return region_ca(keyring)
