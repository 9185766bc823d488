"""The append-only, keyed and anchored audit chain (issue 3 §8, issue 11 §6).

Each record carries ``prev_hash``, the MAC of the record before it, ``key_id``
and its own ``hash`` = HMAC-SHA256 under the key ``key_id`` names (an
``idp-audit`` MAC key set in :mod:`keys.mac`, rotated like the other keys
and never destroyed) over a canonical JSON of its fields, ``key_id`` and
``prev_hash``. Someone who can write the database but not the key store can
therefore not recompute the chain after editing a record: a plain hash
would let them rewrite any record and every hash after it.

Editing a record breaks its own MAC; deleting one leaves a gap in ``seq``
(and a ``prev_hash`` that no longer matches); cutting off the tail disagrees
with the ``audit_head`` row, and since the head lives in the same database,
also with the **anchors**: signed checkpoints of the head, appended to a file
outside the database. :meth:`AuditLog.verify` walks the chain, names the
first broken record, and checks that the database still holds every anchored
head. Records written before the chain was keyed (``key_id`` NULL, plain
SHA-256) still verify, but only as the chain's beginning.

Nothing secret goes in: the caller passes masked ID numbers and client ids,
and :meth:`AuditLog.record` refuses detail keys that name secrets, and any
value that looks like a full resident ID number.

The package's modules, each owning one part:

- :mod:`.records`: a record's rules, canonical form and MAC;
- :mod:`.log`: :class:`AuditLog`, appending, keys and when to anchor;
- :mod:`.writer`: the background batch writer of the web process;
- :mod:`.anchors`: the signed checkpoint file;
- :mod:`.verify`: reading and verifying the chain (``idp audit`` CLI).
"""

from __future__ import annotations

from .anchors import (
    ANCHOR_EVERY_RECORDS,
    ANCHOR_EVERY_SECONDS,
    ANCHOR_PURPOSE,
    AnchorError,
    AnchorFile,
    Checkpoint,
)
from .log import AuditLog
from .records import GENESIS_HASH, KINDS, MAC_PURPOSE, record_hash, record_mac
from .verify import ChainReport

__all__ = [
    "AuditLog",
    "AnchorFile",
    "AnchorError",
    "Checkpoint",
    "ChainReport",
    "GENESIS_HASH",
    "MAC_PURPOSE",
    "ANCHOR_PURPOSE",
    "ANCHOR_EVERY_RECORDS",
    "ANCHOR_EVERY_SECONDS",
    "record_hash",
    "record_mac",
    "KINDS",
]
