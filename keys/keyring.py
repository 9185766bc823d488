"""The key ring: key sets by purpose, their rotation and JWKS, and named secrets.

Layout under ``KeySettings.key_dir`` (``YIWANG_HOME/keys``)::

    kek-check                 sealed constant: tells a wrong KEK from a corrupt file
    private/<handle>.key      software private keys, sealed under the KEK
    sets/<purpose>.json       one index per key set (public data: kids, handles, states)
    sets/<purpose>.lock       flock taken while creating or rotating that set
    secrets/<name>.bin        named random secrets, sealed under the KEK
    pki/                      the agency PKI (see keys.pki)

A rotation writes the new private key first and then replaces the index in
one ``os.replace``: a crash at any point leaves either the old or the new key
set, never a mix. Private keys of keys that become ``retired`` are destroyed
only after the new index is in place.

Several processes (web workers, the CLI) share the directory: each
:class:`KeySet` notices a replaced index within ``reload_seconds`` and loads
it; rotations are serialised by a file lock.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .backend import DEFAULT_ALGORITHM, KeyBackend, Signer, check_algorithm, jwk_thumbprint
from .config import KeySettings
from .errors import ConfigurationError, KeyNotFound, KeysError, KeyStoreCorrupt
from .lifecycle import KeyRecord, KeyState, rotate, validate
from .pii import PiiProtector
from .sealed import Sealer, atomic_write, file_lock, load_or_create_kek
from .software import SoftwareBackend

if TYPE_CHECKING:
    from .mac import MacKeySet
    from .pki import AgencySigner

__all__ = ["open_keyring", "Keyring", "KeySet", "KeyInfo"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_INDEX_FORMAT = 1
_PII_SECRET_NAME = "pii-master"  # noqa: S105 (a file name, not a secret)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise KeysError(f"a {kind} name is 1-64 characters of a-z, 0-9 and '-'")
    return name


@dataclass(frozen=True)
class KeyInfo:
    """What ``idp keys list`` shows about one key."""

    kid: str
    algorithm: str
    state: KeyState
    created_at: dt.datetime
    activated_at: dt.datetime | None
    retired_at: dt.datetime | None
    backend: str = "software"


def open_keyring(settings: KeySettings, *, reload_seconds: float = 1.0) -> Keyring:
    """Open (creating on first use) the key store described by ``settings``.

    Creates ``home/keys`` and, if it does not exist yet, the KEK file (32
    random bytes, mode 0600). Raises :class:`~keys.errors.WrongKeyEncryptionKey`
    if the KEK is not the one the store was created with. Open it once per
    process and keep it: it caches decrypted keys.
    """
    key_dir = settings.key_dir
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    kek = load_or_create_kek(settings.kek_file)
    sealer = Sealer(kek, key_dir)
    sealer.check()
    keyring = Keyring(settings, sealer, reload_seconds=reload_seconds)
    if settings.backend != "software":
        keyring.backend()  # a missing token or a wrong PIN shows at start-up, not at first use
    return keyring


class Keyring:
    """Entry point to every key Yiwang holds. Build it with :func:`open_keyring`."""

    def __init__(
        self, settings: KeySettings, sealer: Sealer, *, reload_seconds: float = 1.0
    ) -> None:
        self.settings = settings
        self.sealer = sealer
        self.reload_seconds = reload_seconds
        self._backends: dict[str, KeyBackend] = {"software": SoftwareBackend(sealer)}
        self._keysets: dict[str, KeySet] = {}
        self._mac_keysets: dict[str, MacKeySet] = {}
        self._secrets: dict[str, bytes] = {}
        self._pii: PiiProtector | None = None
        self._agency: dict[str, tuple[object, AgencySigner]] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Keyring(directory={str(self.directory)!r}, backend={self.settings.backend!r})"

    @property
    def directory(self) -> Path:
        return self.settings.key_dir

    # -- backends ----------------------------------------------------------

    def backend(self, name: str | None = None) -> KeyBackend:
        """The backend called ``name`` (default: the configured one for new keys)."""
        name = name or self.settings.backend
        with self._lock:
            found = self._backends.get(name)
            if found is not None:
                return found
            if name != "pkcs11":
                raise ConfigurationError(
                    f"unknown key backend {name!r}", variable="YIWANG_KEY_BACKEND"
                )
            from .pkcs11 import Pkcs11Backend

            backend: KeyBackend = Pkcs11Backend.from_settings(self.settings)
            self._backends[name] = backend
            return backend

    # -- key sets ----------------------------------------------------------

    def keyset(self, purpose: str, *, algorithm: str | None = None) -> KeySet:
        """The key set for ``purpose`` (``idp-token``, ``idp-token-rs256`` …).

        Created with an active and a next key on first use, with ``algorithm``
        (default ES256). Asking for an existing set with another algorithm is
        an error: a purpose has one algorithm, so use a separate purpose per
        algorithm. ``algorithm=None`` takes the existing set as it is.
        """
        _check_name("key set", purpose)
        if algorithm is not None:
            check_algorithm(algorithm)
        with self._lock:
            ks = self._keysets.get(purpose)
            if ks is None:
                ks = KeySet(self, purpose, algorithm or DEFAULT_ALGORITHM)
                self._keysets[purpose] = ks
        if algorithm is not None and ks.algorithm != algorithm:
            raise ConfigurationError(
                f"key set {purpose} holds {ks.algorithm} keys, not {algorithm}"
            )
        return ks

    def mac_keyset(self, purpose: str) -> MacKeySet:
        """The HMAC-SHA256 key set for ``purpose`` (``idp-audit`` …), created on first use (see :mod:`keys.mac`)."""
        _check_name("MAC key set", purpose)
        with self._lock:
            found = self._mac_keysets.get(purpose)
            if found is None:
                from .mac import MacKeySet

                found = self._mac_keysets[purpose] = MacKeySet(self, purpose)
            return found

    def purposes(self) -> list[str]:
        """The purposes that have a key set on disk."""
        sets = self.directory / "sets"
        if not sets.is_dir():
            return []
        return sorted(p.stem for p in sets.glob("*.json") if _NAME.match(p.stem))

    # -- secrets -----------------------------------------------------------

    def secret(self, name: str, length: int = 32) -> bytes:
        """A named random secret kept sealed under the KEK, stable across restarts."""
        _check_name("secret", name)
        if not 16 <= length <= 1024:
            raise KeysError("a secret is 16 to 1024 bytes long")
        cached = self._secrets.get(name)
        if cached is None:
            cached = self._load_or_create_secret(name, length)
            self._secrets[name] = cached
        if len(cached) != length:
            raise KeysError(f"secret {name} exists with another length ({len(cached)} bytes)")
        return cached

    def _load_or_create_secret(self, name: str, length: int) -> bytes:
        path = self.directory / "secrets" / f"{name}.bin"
        context = f"secret {name}"
        try:
            return self.sealer.read(path, context=context)
        except FileNotFoundError:
            pass
        with file_lock(self.directory / "secrets" / ".lock"):
            try:  # someone else may have created it while we waited
                return self.sealer.read(path, context=context)
            except FileNotFoundError:
                value = os.urandom(length)
                self.sealer.write(path, value, context=context)
                logger.info("created secret %s", name)
                return value

    def pii(self) -> PiiProtector:
        """Blind index and AEAD for ID numbers, from a secret sealed under the KEK."""
        if self._pii is None:
            self._pii = PiiProtector.from_secret(self.secret(_PII_SECRET_NAME, 32))
        return self._pii

    # -- agency PKI --------------------------------------------------------

    def agency_signer(self, uscc: str) -> AgencySigner:
        """The agency's signing key and certificate (see :mod:`keys.pki`)."""
        from .pki import agency_signer, signer_stamp

        stamp = signer_stamp(self, uscc)
        cached = self._agency.get(uscc)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        signer = agency_signer(self, uscc)
        self._agency[uscc] = (stamp, signer)
        return signer


class KeySet:
    """The keys of one purpose and their lifecycle. Get it from :meth:`Keyring.keyset`."""

    def __init__(self, keyring: Keyring, purpose: str, algorithm: str) -> None:
        self.purpose = purpose
        self._keyring = keyring
        self._path = keyring.directory / "sets" / f"{purpose}.json"
        self._lock_path = keyring.directory / "sets" / f"{purpose}.lock"
        self._mutex = threading.RLock()
        self._records: tuple[KeyRecord, ...] = ()
        self._signers: dict[str, Signer] = {}
        self._active: Signer | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self.algorithm = algorithm
        self._load(create=True)

    def __repr__(self) -> str:
        return f"KeySet(purpose={self.purpose!r}, algorithm={self.algorithm!r})"

    # -- reading the index -------------------------------------------------

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read_index(self) -> tuple[str, list[KeyRecord]] | None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if data.get("format") != _INDEX_FORMAT or data.get("purpose") != self.purpose:
                raise ValueError("format or purpose")
            records = [KeyRecord.from_json(r) for r in data["keys"]]
            algorithm = str(data["algorithm"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyStoreCorrupt(
                f"the index of key set {self.purpose} is corrupt ({self._path})"
            ) from None
        validate(records)
        return algorithm, records

    def _write_index(self, records: list[KeyRecord]) -> None:
        data: dict[str, Any] = {
            "format": _INDEX_FORMAT,
            "purpose": self.purpose,
            "algorithm": self.algorithm,
            "keys": [r.to_json() for r in records],
        }
        atomic_write(self._path, json.dumps(data, indent=2).encode() + b"\n", mode=0o644)

    def _install(self, records: list[KeyRecord], stamp: tuple[int, int, int] | None) -> None:
        """Make ``records`` current, building signers for the published keys."""
        signers: dict[str, Signer] = {}
        active: Signer | None = None
        for r in records:
            if not r.published:
                continue
            signer = self._signers.get(r.kid)
            if signer is None:
                signer = self._keyring.backend(r.backend).signer(r.handle, r.algorithm, r.kid)
            signers[r.kid] = signer
            if r.state is KeyState.ACTIVE:
                active = signer
        assert active is not None  # validate() guarantees one active key
        self._records = tuple(records)
        self._signers = signers
        self._active = active
        self._stamp = stamp
        self._checked_at = time.monotonic()

    def _new_record(self, state: KeyState, now: dt.datetime) -> KeyRecord:
        backend = self._keyring.backend()
        handle = backend.generate(self.algorithm, self.purpose)
        try:
            kid = jwk_thumbprint(backend.public_key(handle))
        except BaseException:
            backend.delete(handle)
            raise
        return KeyRecord(
            kid=kid,
            algorithm=self.algorithm,
            backend=backend.name,
            handle=handle,
            state=state,
            created_at=now,
            activated_at=now if state is KeyState.ACTIVE else None,
        )

    def _load(self, *, create: bool) -> None:
        with self._mutex:
            stamp = self._stat()
            found = self._read_index()
            if found is None and create:
                with file_lock(self._lock_path):
                    found = self._read_index()
                    if found is None:
                        self._create()
                        return
            if found is None:
                raise KeyNotFound(f"key set {self.purpose} has no index")
            algorithm, records = found
            self.algorithm = algorithm
            self._install(records, stamp)

    def _create(self) -> None:
        now = _utcnow()
        made: list[KeyRecord] = []
        try:
            made.append(self._new_record(KeyState.ACTIVE, now))
            made.append(self._new_record(KeyState.NEXT, now))
            self._write_index(made)
        except BaseException:
            for r in made:
                self._keyring.backend(r.backend).delete(r.handle)
            raise
        logger.info(
            "created key set %s (%s) with keys %s",
            self.purpose,
            self.algorithm,
            ", ".join(r.kid for r in made),
        )
        self._install(made, self._stat())

    def _refresh(self) -> None:
        """Reload if another process replaced the index (checked at most every reload_seconds)."""
        now = time.monotonic()
        if now - self._checked_at < self._keyring.reload_seconds:
            return
        stamp = self._stat()
        if stamp != self._stamp:
            logger.info("key set %s changed on disk; reloading", self.purpose)
            self._load(create=False)
        else:
            self._checked_at = now

    # -- public API --------------------------------------------------------

    def active(self) -> Signer:
        """The key that signs now."""
        self._refresh()
        assert self._active is not None
        return self._active

    def get(self, kid: str) -> Signer:
        """A published key (next, active or retiring) by id."""
        self._refresh()
        signer = self._signers.get(kid)
        if signer is None:
            raise KeyNotFound(f"no published key {kid!r} in key set {self.purpose}")
        return signer

    def public_keys(self) -> dict[str, PublicKeyTypes]:
        """kid → public key of the published keys, for verification."""
        self._refresh()
        return {kid: s.public_key() for kid, s in self._signers.items()}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """RFC 7517 §5 JWK Set of the published keys (active first, then next, retiring)."""
        self._refresh()
        order = {KeyState.ACTIVE: 0, KeyState.NEXT: 1, KeyState.RETIRING: 2}
        published = sorted((r for r in self._records if r.published), key=lambda r: order[r.state])
        return {"keys": [self._signers[r.kid].public_jwk() for r in published]}

    def list(self) -> list[KeyInfo]:
        """Every key of the set, retired ones included, oldest first."""
        self._refresh()
        return [
            KeyInfo(
                r.kid, r.algorithm, r.state, r.created_at, r.activated_at, r.retired_at, r.backend
            )
            for r in self._records
        ]

    def rotate(self) -> None:
        """next → active, active → retiring, retiring → retired, and a new next key.

        Atomic: the new key is written before the index, the index is
        replaced in one step, and retired private keys are destroyed only
        afterwards. If anything fails, the previous key set stays in force.
        """
        with self._mutex, file_lock(self._lock_path):
            found = self._read_index()  # the truth on disk, not our cache
            if found is None:
                raise KeyNotFound(f"key set {self.purpose} has no index")
            _, current = found
            now = _utcnow()
            new_next = self._new_record(KeyState.NEXT, now)
            try:
                updated = rotate(current, new_next, now)
                self._write_index(updated)
            except BaseException:
                self._keyring.backend(new_next.backend).delete(new_next.handle)
                logger.warning(
                    "rotation of key set %s failed; the previous key set stays", self.purpose
                )
                raise
            previously_retired = {r.kid for r in current if r.state is KeyState.RETIRED}
            for r in updated:
                if r.state is KeyState.RETIRED and r.kid not in previously_retired:
                    try:
                        self._keyring.backend(r.backend).delete(r.handle)
                    except KeysError as e:  # the index is already correct; tell the operator
                        logger.warning("could not destroy retired key %s: %s", r.kid, e)
            self._install(updated, self._stat())
            active = next(r.kid for r in updated if r.state is KeyState.ACTIVE)
            logger.info(
                "rotated key set %s: active key is now %s, next key %s",
                self.purpose,
                active,
                new_next.kid,
            )
