"""The DCQL query a verifier request carries, and the "only what was asked" check (OpenID4VP 1.0 §6).

A request names one credential type (its ``vct`` values: this region's and
those of the regions whose issuers may issue the type) and only the claims it
needs, each a one-element claims path (the credentials certstore issues make
every personal claim a top-level disclosure, :mod:`signing.sdjwt_issue`)::

    {"credentials": [{"id": "certificate", "format": "dc+sd-jwt",
                      "meta": {"vct_values": ["https://certs.example/vct/JZZM"]},
                      "claims": [{"path": ["address"]}, {"path": ["since"]}]}]}

:func:`beyond_request` lists disclosures the wallet made although nobody asked
for them: a verifier that takes more than it asked for is refused the whole
presentation (data minimisation, issue 15: the landlord sees "resides in
Beijing since 2020", not the ID number).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["CREDENTIAL_ID", "FORMAT", "build_query", "requested_paths", "beyond_request", "check_claim_name"]

CREDENTIAL_ID = "certificate"
FORMAT = "dc+sd-jwt"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_claim_name(name: str) -> str:
    """A claim name a request may ask for: letters, digits, ``_`` (at most 64)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{str(name)[:40]!r} is not a claim name")
    return name


def build_query(vct_values: Sequence[str], claims: Iterable[str]) -> dict[str, Any]:
    names = sorted({check_claim_name(c) for c in claims})
    if not names:
        raise ValueError("ask for at least one claim")
    if not vct_values:
        raise ValueError("no vct for this type")
    return {
        "credentials": [
            {
                "id": CREDENTIAL_ID,
                "format": FORMAT,
                "meta": {"vct_values": list(vct_values)},
                "claims": [{"path": [n]} for n in names],
            }
        ]
    }


def requested_paths(query: dict[str, Any]) -> set[tuple[Any, ...]]:
    out: set[tuple[Any, ...]] = set()
    for cred in query.get("credentials", []):
        for claim in cred.get("claims", []):
            out.add(tuple(claim["path"]))
    return out


def _covers(asked: tuple[Any, ...], given: tuple[Any, ...]) -> bool:
    """``given`` is inside ``asked`` (``None`` in a DCQL path matches any array element)."""
    if len(given) < len(asked):
        # a container disclosed on the way to a nested claim that was asked for
        return all(a is None or a == g for a, g in zip(asked, given, strict=False))
    return all(a is None or a == g for a, g in zip(asked, given[: len(asked)], strict=True))


def beyond_request(disclosed: Iterable[tuple[Any, ...]], asked: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Disclosed claim paths no requested path covers (empty: the wallet gave only what was asked)."""
    asked = list(asked)
    return sorted((p for p in disclosed if not any(_covers(a, p) for a in asked)), key=repr)
