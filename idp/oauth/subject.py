"""Subject identifiers: pairwise per sector by default, public on request.

OIDC Core §8.1: a pairwise ``sub`` is derived so that relying parties of
different sectors cannot correlate a citizen. Yiwang's recipe is
``base64url(SHA-256(sector || 0x00 || citizen public id || 0x00 || salt))``;
the salt is a keyring secret (``pairwise-salt``), stable across restarts and
instances. The separators keep ``("ab", "c")`` and ``("a", "bc")`` apart.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["pairwise_sub", "sector_of", "subject_for"]


def pairwise_sub(sector: str, public_id: str, salt: bytes) -> str:
    digest = hashlib.sha256(
        sector.encode() + b"\x00" + public_id.encode() + b"\x00" + salt
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sector_of(sector_identifier: str | None, redirect_uris: Iterable[str], client_id: str) -> str:
    """The sector a client belongs to (OIDC Core §8.1).

    Remembered per registration (its three inputs): every token and ID token a
    grant issues asks for it, and parsing the redirect URIs was most of a ``sub``'s cost.

    The registered sector identifier host when there is one; otherwise the
    host of the redirect URIs when they share one; otherwise the client id
    (a client with redirect URIs on several hosts and no sector is its own
    sector, which is the safe choice).
    """
    return _sector(sector_identifier, tuple(redirect_uris), client_id)


@functools.lru_cache(maxsize=4096)
def _sector(sector_identifier: str | None, redirect_uris: tuple[str, ...], client_id: str) -> str:
    if sector_identifier:
        host = urlsplit(sector_identifier).hostname if "://" in sector_identifier else sector_identifier
        return (host or sector_identifier).lower()
    hosts = {(urlsplit(u).hostname or "").lower() for u in redirect_uris}
    hosts.discard("")
    if len(hosts) == 1:
        return hosts.pop()
    return "client:" + client_id


def subject_for(
    *, subject_type: str, sector: str, public_id: str, salt: bytes
) -> str:
    if subject_type == "public":
        return public_id
    return pairwise_sub(sector, public_id, salt)
