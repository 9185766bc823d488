"""Symmetric MAC key sets: HMAC-SHA256 keys by purpose, with ids and rotation.

The audit chain (issue 11 §6) is keyed so that someone who can write the
database but not the key store cannot recompute it. A record names the key
that keyed it (``kid``), so the keys live in a set that rotates like the
signing key sets, with one difference: a MAC key is never destroyed when it
stops being active. Old records must verify for as long as they are kept,
and nothing was ever published that a retired key could be misused against.

Layout under ``KeySettings.key_dir``::

    macs/<purpose>.json           index: kids, states, dates (no key material)
    macs/<purpose>/<kid>.bin      the key, sealed under the KEK
    macs/<purpose>.lock           flock taken while creating or rotating

The key bytes never leave this module: callers get a :class:`MacKey`, which
computes and checks MACs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import KeyNotFound, KeyStoreCorrupt
from .sealed import atomic_write, file_lock

if TYPE_CHECKING:
    from .keyring import Keyring

__all__ = ["MacKey", "MacKeySet", "MacKeyInfo", "ephemeral_key"]

logger = logging.getLogger(__name__)

_FORMAT = 1
_KEY_BYTES = 32


@dataclass(frozen=True)
class MacKeyInfo:
    kid: str
    state: str
    """``active`` (keys new MACs) or ``retired`` (verifies old ones only)."""
    created_at: dt.datetime
    retired_at: dt.datetime | None


class MacKey:
    """One HMAC-SHA256 key, by id. ``repr`` shows the id only."""

    __slots__ = ("kid", "_key")

    def __init__(self, kid: str, key: bytes) -> None:
        self.kid = kid
        self._key = key

    def __repr__(self) -> str:
        return f"MacKey(kid={self.kid!r})"

    def digest(self, data: bytes) -> str:
        """HMAC-SHA256 of ``data``, hex."""
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def verify(self, data: bytes, mac: str) -> bool:
        """Constant-time check of a hex MAC."""
        return hmac.compare_digest(self.digest(data), mac)


class MacKeySet:
    """The MAC keys of one purpose. Get it from :meth:`keys.keyring.Keyring.mac_keyset`.

    Another process's rotation is noticed within ``reload_seconds``; a
    record keyed meanwhile with the previous key still verifies, since
    retired keys are kept.
    """

    def __init__(self, keyring: Keyring, purpose: str) -> None:
        self.purpose = purpose
        self._keyring = keyring
        base = keyring.directory / "macs"
        self._index = base / f"{purpose}.json"
        self._dir = base / purpose
        self._lock_path = base / f"{purpose}.lock"
        self._mutex = threading.RLock()
        self._records: list[dict[str, Any]] = []
        self._keys: dict[str, MacKey] = {}
        self._active: MacKey | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self._load(create=True)

    def __repr__(self) -> str:
        return f"MacKeySet(purpose={self.purpose!r})"

    # -- index ------------------------------------------------------------

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._index)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> list[dict[str, Any]] | None:
        try:
            raw = self._index.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if data.get("format") != _FORMAT or data.get("purpose") != self.purpose:
                raise ValueError("format or purpose")
            records = [dict(r) for r in data["keys"]]
            for r in records:
                if not isinstance(r["kid"], str) or r["state"] not in ("active", "retired"):
                    raise ValueError("record")
            if sum(r["state"] == "active" for r in records) != 1:
                raise ValueError("one active key")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyStoreCorrupt(f"the index of MAC key set {self.purpose} is corrupt ({self._index})") from None
        return records

    def _write(self, records: list[dict[str, Any]]) -> None:
        data = {"format": _FORMAT, "purpose": self.purpose, "algorithm": "HS256", "keys": records}
        atomic_write(self._index, json.dumps(data, indent=2).encode() + b"\n", mode=0o644)

    def _key_path(self, kid: str) -> Path:
        return self._dir / f"{kid}.bin"

    def _new_key(self, now: dt.datetime) -> dict[str, Any]:
        kid = "mac-" + secrets.token_hex(8)
        self._keyring.sealer.write(self._key_path(kid), os.urandom(_KEY_BYTES), context=self._context(kid))
        return {"kid": kid, "state": "active", "created_at": now.isoformat(), "retired_at": None}

    def _context(self, kid: str) -> str:
        return f"mac key {self.purpose} {kid}"

    def _install(self, records: list[dict[str, Any]], stamp: tuple[int, int, int] | None) -> None:
        keys = dict(self._keys)
        active = None
        for r in records:
            key = keys.get(r["kid"])
            if key is None:
                try:
                    raw = self._keyring.sealer.read(self._key_path(r["kid"]), context=self._context(r["kid"]))
                except FileNotFoundError:
                    raise KeyStoreCorrupt(f"MAC key {r['kid']} of {self.purpose} is missing") from None
                key = keys[r["kid"]] = MacKey(r["kid"], raw)
            if r["state"] == "active":
                active = key
        assert active is not None
        self._records, self._keys, self._active = records, keys, active
        self._stamp = stamp
        self._checked_at = time.monotonic()

    def _load(self, *, create: bool) -> None:
        with self._mutex:
            stamp = self._stat()
            records = self._read()
            if records is None and create:
                with file_lock(self._lock_path):
                    records = self._read()
                    if records is None:
                        records = [self._new_key(dt.datetime.now(dt.UTC))]
                        self._write(records)
                        logger.info("created MAC key set %s with key %s", self.purpose, records[0]["kid"])
                    stamp = self._stat()
            if records is None:
                raise KeyNotFound(f"MAC key set {self.purpose} has no index")
            self._install(records, stamp)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self._keyring.reload_seconds:
            return
        if self._stat() != self._stamp:
            logger.info("MAC key set %s changed on disk; reloading", self.purpose)
            self._load(create=False)
        else:
            self._checked_at = now

    # -- public API ---------------------------------------------------------

    def active(self) -> MacKey:
        """The key that keys new MACs."""
        self._refresh()
        assert self._active is not None
        return self._active

    def get(self, kid: str) -> MacKey:
        """Any key of the set, retired ones included; :class:`KeyNotFound` for an unknown id."""
        self._refresh()
        key = self._keys.get(kid)
        if key is None:
            with self._mutex:  # rotated by another process since the last look
                self._load(create=False)
                key = self._keys.get(kid)
        if key is None:
            raise KeyNotFound(f"no key {kid!r} in MAC key set {self.purpose}")
        return key

    def list(self) -> list[MacKeyInfo]:
        self._refresh()
        return [
            MacKeyInfo(
                r["kid"],
                r["state"],
                dt.datetime.fromisoformat(r["created_at"]),
                dt.datetime.fromisoformat(r["retired_at"]) if r.get("retired_at") else None,
            )
            for r in self._records
        ]

    def rotate(self) -> MacKey:
        """A new active key; the previous one is retired (kept: what it keyed still verifies)."""
        with self._mutex, file_lock(self._lock_path):
            current = self._read()
            if current is None:
                raise KeyNotFound(f"MAC key set {self.purpose} has no index")
            now = dt.datetime.now(dt.UTC)
            new = self._new_key(now)
            for r in current:
                if r["state"] == "active":
                    r["state"], r["retired_at"] = "retired", now.isoformat()
            try:
                self._write([*current, new])
            except BaseException:
                self._key_path(new["kid"]).unlink(missing_ok=True)
                raise
            self._install([*current, new], self._stat())
            logger.info("rotated MAC key set %s: active key is now %s", self.purpose, new["kid"])
            assert self._active is not None
            return self._active


def ephemeral_key() -> MacKey:
    """A throw-away key for a process without a key store (tests): its MACs verify nowhere else."""
    return MacKey("ephemeral-" + secrets.token_hex(4), os.urandom(_KEY_BYTES))

