"""The PKI's files under ``key_dir/pki`` and its key references; its clock.

Layout::

    region.json           region code and name, CA key handles, CRL URL and number
    root.pem, issuing.pem the two CA certificates
    signers/<USCC>.json   the agency's current key handle and certificate serial
    signers/<USCC>.pem    the agency's current signer certificate
    tsa.json, tsa.pem     the region TSA's key handle and certificate
    revoked.json          revoked serials (the CRL's content)
    issuing.crl, root.crl the current DER CRLs of the issuing CA and of the root

Private keys are never here: a key reference (``{"backend", "handle",
"algorithm"}``) names the key in its backend.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..backend import Signer, jwk_thumbprint
from ..errors import KeyNotFound, KeyStoreCorrupt
from ..sealed import atomic_write

if TYPE_CHECKING:
    from ..keyring import Keyring

CA_ALGORITHMS = ("ES256", "RS256")
BACKDATE = dt.timedelta(minutes=5)  # tolerate clock skew of verifiers


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def years(start: dt.datetime, count: int) -> dt.datetime:
    return start + dt.timedelta(days=365 * count + count // 4)


def pki_dir(keyring: Keyring) -> Path:
    return keyring.directory / "pki"


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise KeyStoreCorrupt(f"{path} cannot be read ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise KeyStoreCorrupt(f"{path} is malformed")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False).encode() + b"\n", mode=0o644)


def read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise
    except ValueError:
        raise KeyStoreCorrupt(f"{path} is not a PEM certificate") from None


def write_cert(path: Path, cert: x509.Certificate) -> None:
    atomic_write(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def file_stamp(path: Path) -> object:
    """Changes whenever ``path`` is replaced (for caches); ``None`` while it is missing."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, ValueError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def region_state(keyring: Keyring) -> dict[str, Any]:
    try:
        return read_json(pki_dir(keyring) / "region.json")
    except FileNotFoundError:
        raise KeyNotFound("the region PKI is not set up; run `certstore ca init` first") from None


def key_signer(keyring: Keyring, ref: dict[str, Any]) -> Signer:
    try:
        backend = keyring.backend(str(ref["backend"]))
        handle, algorithm = str(ref["handle"]), str(ref["algorithm"])
    except KeyError:
        raise KeyStoreCorrupt("a PKI key reference is malformed") from None
    return backend.signer(handle, algorithm, jwk_thumbprint(backend.public_key(handle)))


def new_key(keyring: Keyring, algorithm: str, label: str) -> tuple[dict[str, str], Signer]:
    backend = keyring.backend()
    handle = backend.generate(algorithm, label)
    ref = {"backend": backend.name, "handle": handle, "algorithm": algorithm}
    return ref, key_signer(keyring, ref)


def signer_paths(keyring: Keyring, uscc: str) -> tuple[Path, Path]:
    d = pki_dir(keyring) / "signers"
    return d / f"{uscc}.json", d / f"{uscc}.pem"


def tsa_paths(keyring: Keyring) -> tuple[Path, Path]:
    d = pki_dir(keyring)
    return d / "tsa.json", d / "tsa.pem"
