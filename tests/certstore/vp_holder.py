"""A holder for the verifier tests: an SD-JWT VC from the issuer side, presented with a KB-JWT.

The credential is built by :func:`signing.sdjwt_issue.issue_sd_jwt_vc` (H4's issuer code, the
``sd-jwt`` reference library); the presentation keeps the chosen disclosures and appends a
key-binding JWT (RFC 9901 §4.3) signed with the holder key — here joserfc, nothing of ours.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from signing.sdjwt_issue import CredentialClaims, issue_sd_jwt_vc

ISS = "https://certs.example.cn"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def disclosure_name(d: str) -> str:
    return json.loads(base64.urlsafe_b64decode(d + "=" * (-len(d) % 4)))[1]


@dataclass
class Holder:
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", private=True))

    @property
    def jwk(self) -> dict[str, Any]:
        return {k: v for k, v in self.key.as_dict(private=False).items() if k in ("kty", "crv", "x", "y")}

    def present(
        self,
        credential: str,
        names: Iterable[str] | None,
        *,
        aud: str,
        nonce: str,
        iat: int | None = None,
        extra: Iterable[str] = (),
        typ: str = "kb+jwt",
        sd_hash: str | None = None,
    ) -> str:
        """Keep the disclosures of ``names`` (all when None), add ``extra`` ones, append a KB-JWT."""
        jwt_part, *disclosures = credential.rstrip("~").split("~")
        keep = [d for d in disclosures if names is None or disclosure_name(d) in set(names)] + list(extra)
        body = jwt_part + "~" + "".join(d + "~" for d in keep)
        claims = {"iat": int(time.time()) if iat is None else iat, "aud": aud, "nonce": nonce,
                  "sd_hash": sd_hash or b64(hashlib.sha256(body.encode()).digest())}
        kb = jwt.encode({"alg": "ES256", "typ": typ}, claims, self.key)
        return body + kb


def issue(
    signer: Any,
    holder: Holder,
    *,
    type_code: str = "JZZM",
    iss: str = ISS,
    claims: Mapping[str, Any] | None = None,
    status_uri: str = ISS + "/status-lists/1",
    status_index: int = 7,
    iat: int | None = None,
    exp: int | None = None,
) -> str:
    now = int(time.time()) if iat is None else iat
    issued = issue_sd_jwt_vc(
        CredentialClaims(
            issuer=iss,
            vct=f"{iss}/vct/{type_code}",
            holder_jwk=holder.jwk,
            status_uri=status_uri,
            status_index=status_index,
            issued_at=now,
            disclosable=dict(claims or {"holder_name": "张三", "address": "北京市东城区", "since": "2020-03-01",
                                        "identifier": "1.2.156.3005.2.JZZM.X.1.1.K"}),
            expires_at=exp,
        ),
        signer,
    )
    return issued.credential
