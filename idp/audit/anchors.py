"""Signed checkpoints of the audit chain's head, kept outside the database.

Owns the anchor file: one JSON line per checkpoint (``seq`` and MAC of the
head at a moment), signed with the ``idp-audit-anchor`` ES256 key set, so
that someone who can write the database but not the key store cannot cut
off or rewrite the chain's tail unseen. :class:`~idp.audit.AuditLog` decides
when to write one (:data:`ANCHOR_EVERY_RECORDS`, :data:`ANCHOR_EVERY_SECONDS`,
``idp audit checkpoint``); its verification reads them back.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..models import utcnow

if TYPE_CHECKING:
    from keys.keyring import KeySet

__all__ = [
    "ANCHOR_EVERY_RECORDS",
    "ANCHOR_EVERY_SECONDS",
    "ANCHOR_PURPOSE",
    "AnchorError",
    "AnchorFile",
    "Checkpoint",
]

ANCHOR_PURPOSE = "idp-audit-anchor"
"""The ES256 key set that signs checkpoints of the head."""
ANCHOR_EVERY_RECORDS = 1000
ANCHOR_EVERY_SECONDS = 60.0
_CHECKPOINT_TYP = "yiwang-audit-checkpoint+jwt"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: at ``at``, record ``seq`` of the chain had MAC ``hash``."""

    seq: int
    hash: str
    at: str
    line: int
    signed: bool
    """The signature verified with a published ``idp-audit-anchor`` key."""


class AnchorError(Exception):
    """A line of the anchor file is not a checkpoint we signed."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(f"anchor file line {line}: {why}")
        self.line = line


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class AnchorFile:
    """Signed checkpoints of the chain head, appended as JSON lines to a file outside the database.

    Each line is ``{"seq", "hash", "at", "jws"}``; the compact JWS (ES256,
    ``idp-audit-anchor`` key set) over the same three values is what counts.
    The file is opened for appending only and each line is written under an
    exclusive ``flock`` and synced, so several idp processes can share it.
    """

    def __init__(self, path: Path, keyset: KeySet) -> None:
        self.path = path
        self.keyset = keyset

    def write(self, seq: int, mac: str) -> Checkpoint:
        from keys.jws import encode_jws

        at = utcnow().isoformat(timespec="seconds")
        claims = {"seq": seq, "hash": mac, "at": at}
        token = encode_jws(self.keyset.active(), claims, typ=_CHECKPOINT_TYP)
        line = json.dumps({**claims, "jws": token}, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return Checkpoint(seq, mac, at, 0, True)

    def read(self) -> list[Checkpoint]:
        """Every checkpoint in the file; :class:`AnchorError` for a line that is not one of ours."""
        from joserfc import jws
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet as JoseKeySet

        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        published = JoseKeySet.import_key_set(self.keyset.jwks())  # type: ignore[arg-type]
        kids = {k["kid"] for k in self.keyset.jwks()["keys"]}
        out = []
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                token = json.loads(raw)["jws"]
                header = json.loads(_b64decode(token.split(".")[0]))
                claims = json.loads(_b64decode(token.split(".")[1]))
                seq, mac, at = int(claims["seq"]), str(claims["hash"]), str(claims["at"])
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                raise AnchorError(number, "not a checkpoint") from None
            if header.get("typ") != _CHECKPOINT_TYP or header.get("alg") != "ES256":
                raise AnchorError(number, "not a checkpoint")
            signed = header.get("kid") in kids
            if signed:
                try:
                    jws.deserialize_compact(token, published, algorithms=["ES256"])
                except (JoseError, ValueError):
                    raise AnchorError(number, "its signature does not verify (forged or altered)") from None
            out.append(Checkpoint(seq, mac, at, number, signed))
        return out
