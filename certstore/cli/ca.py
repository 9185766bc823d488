"""``certstore ca …``: the region's agency PKI (root CA → issuing CA → agency signers).

``init`` creates the two CAs once; ``issue-signer`` gives an agency, named by
its unified social credit code (checked strictly, GB 32100-2015), its signing
key and certificate; ``revoke-signer`` revokes it and re-signs the CRL, which
certstore serves at ``/pki/crl/issuing.crl`` (the URL in every signer
certificate) and ``crl`` writes to a file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from cryptography import x509

from keys import pki
from keys.certs import certificate_fingerprint, certificate_pem
from keys.keyring import Keyring, open_keyring
from keys.sealed import atomic_write

from ..settings import CertstoreSettings

__all__ = ["register"]

_REASONS = sorted(f.value for f in x509.ReasonFlags if f is not x509.ReasonFlags.remove_from_crl)


def _keyring(settings: CertstoreSettings) -> Keyring:
    return open_keyring(settings.common.keys)


def _describe(label: str, cert: x509.Certificate) -> None:
    click.echo(f"{label}: {cert.subject.rfc4514_string()}")
    click.echo(f"  serial {cert.serial_number:x}")
    click.echo(
        f"  valid {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}"
    )
    click.echo(f"  SHA-256 {certificate_fingerprint(cert)}")


def _write(path: str, data: bytes) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        atomic_write(Path(path), data, mode=0o644)


@click.group("ca")
def ca_group() -> None:
    """The agency PKI: region CAs, agency signer certificates, CRL."""


@ca_group.command("init")
@click.option(
    "--region", help="6-digit administrative division code (default YIWANG_CERTSTORE_REGION)."
)
@click.option("--name", required=True, help="Region name, e.g. 北京市.")
@click.option("--crl-url", help="Where the CRL is served (default PUBLIC_URL/pki/crl/issuing.crl).")
@click.pass_obj
def init(settings: CertstoreSettings, region: str | None, name: str, crl_url: str | None) -> None:
    """Create the region root CA and issuing CA (once)."""
    ca = pki.init_region(
        _keyring(settings),
        region=region or settings.region,
        name=name,
        crl_url=crl_url or f"{settings.public_url}/pki/crl/issuing.crl",
    )
    _describe("root CA", ca.root)
    _describe("issuing CA", ca.issuing)
    click.echo(f"CRL URL: {ca.crl_url}")


@ca_group.command("issue-signer")
@click.option("--uscc", required=True, help="The agency's unified social credit code.")
@click.option("--name", required=True, help="The agency's name (certificate O and CN).")
@click.option("--replace", is_flag=True, help="Replace (and revoke as superseded) a current one.")
@click.pass_obj
def issue_signer(settings: CertstoreSettings, uscc: str, name: str, replace: bool) -> None:
    """Issue an agency's signer certificate (subject carries its USCC)."""
    signer = pki.issue_signer(_keyring(settings), uscc=uscc, name=name, replace=replace)
    _describe(f"signer certificate of {signer.uscc}", signer.certificate)


@ca_group.command("revoke-signer")
@click.option("--uscc", required=True, help="The agency's unified social credit code.")
@click.option("--reason", default="unspecified", show_default=True, type=click.Choice(_REASONS))
@click.pass_obj
def revoke_signer(settings: CertstoreSettings, uscc: str, reason: str) -> None:
    """Revoke an agency's signer certificate and re-sign the CRL."""
    keyring = _keyring(settings)
    pki.revoke_signer(keyring, uscc=uscc, reason=reason)
    crl = x509.load_der_x509_crl(pki.current_crl(keyring))
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    click.echo(
        f"revoked the signer certificate of {uscc.strip().upper()} ({reason}); CRL #{number}"
    )


@ca_group.command("crl")
@click.option("--out", required=True, help="File to write the DER CRL to ('-' for stdout).")
@click.pass_obj
def crl(settings: CertstoreSettings, out: str) -> None:
    """Write the issuing CA's current CRL (DER)."""
    _write(out, pki.current_crl(_keyring(settings)))


@ca_group.command("root")
@click.option(
    "--out", required=True, help="File to write the root certificate to ('-' for stdout)."
)
@click.pass_obj
def root(settings: CertstoreSettings, out: str) -> None:
    """Write the region root certificate (PEM), the trust anchor verifiers install."""
    _write(out, certificate_pem(pki.region_root(_keyring(settings))).encode())


@ca_group.command("show")
@click.pass_obj
def show(settings: CertstoreSettings) -> None:
    """Show the region CAs, the CRL and every agency signer."""
    keyring = _keyring(settings)
    ca = pki.region_ca(keyring)
    click.echo(f"region {ca.region} {ca.name}")
    _describe("root CA", ca.root)
    _describe("issuing CA", ca.issuing)
    current = x509.load_der_x509_crl(pki.current_crl(keyring))
    number = current.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    click.echo(
        f"CRL #{number} at {ca.crl_url}: {len(current)} revoked, "
        f"next update {current.next_update_utc:%Y-%m-%d %H:%M}Z"
    )
    signers = pki.list_signers(keyring)
    click.echo(f"agency signers: {len(signers)}")
    for s in signers:
        status = "revoked" if s.revoked else "valid"
        click.echo(
            f"  {s.uscc}  {status:<7}  until {s.not_after:%Y-%m-%d}  serial {s.serial:x}  {s.name}"
        )


def register(group: click.Group) -> None:
    group.add_command(ca_group)
