"""Issue 15's verifier figure for ``make bench``: presentations verified per second.

``python -m benchmarks.vp [--seconds S] [--database-url URL]``

Two figures, one process, one core:

* **the check alone** — :func:`signing.sdjwt_verify.verify_presentation` of an
  SD-JWT VC presentation (issuer ES256 signature through the trust list, two
  disclosures of six, key-binding JWT with ``aud``/``nonce``/``sd_hash``)
  against a raw ``cryptography`` P-256 verify, the floor of two signatures;
* **the verifier end to end** — through certstore's web app (Flask test
  client, no network): a request created by an agency (signed request
  object fetched by the wallet), the answer posted to the ``response_uri``
  (``direct_post``), checked, the status read from the record, the read log
  written, the result read by the counter.

The presentations are built beforehand (the holder's work is not measured).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main", "run"]

USCC = "111101050000000017"


def _rate(fn: Callable[[], Any], seconds: float, *, min_runs: int = 20) -> float:
    fn()
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < seconds:
        fn()
        runs += 1
    return runs / (time.perf_counter() - start)


def _present(credential: str, key: Any, names: set[str], *, aud: str, nonce: str) -> str:
    from joserfc import jwt

    jwt_part, *disclosures = credential.rstrip("~").split("~")
    keep = [d for d in disclosures
            if json.loads(base64.urlsafe_b64decode(d + "=" * (-len(d) % 4)))[1] in names]
    body = jwt_part + "~" + "".join(d + "~" for d in keep)
    sd_hash = base64.urlsafe_b64encode(hashlib.sha256(body.encode()).digest()).rstrip(b"=").decode()
    return body + jwt.encode({"alg": "ES256", "typ": "kb+jwt"}, {"iat": int(time.time()), "aud": aud, "nonce": nonce,
                                                                  "sd_hash": sd_hash}, key)


def run(*, seconds: float = 3.0, database_url: str | None = None) -> dict[str, float]:
    import datetime as dt

    import sqlalchemy as sa
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from joserfc.jwk import ECKey

    from certstore.db import upgrade
    from certstore.issue_request import IssueRequest
    from certstore.models import Certificate
    from certstore.settings import CertstoreSettings
    from certstore.tokens import StaticJwksSource
    from certstore.types import demo_type_files, load_type_file
    from certstore.web import create_app
    from certstore.wiring import build_services
    from keys import pki
    from keys.config import CommonSettings
    from keys.jws import encode_jws
    from keys.keyring import open_keyring
    from signing.sdjwt_issue import CredentialClaims, issue_sd_jwt_vc
    from signing.sdjwt_verify import verify_presentation

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vp-bench-") as tmpdir:
        tmp = Path(tmpdir)
        issuer_url = "http://idp.bench"
        common = CommonSettings.from_values(
            {"HOME": tmp / "home", "DATABASE_URL": database_url or f"sqlite:///{tmp / 'bench.db'}", "ISSUER": issuer_url},
            default_issuer=issuer_url,
        )
        idp_keys = open_keyring(CommonSettings.from_values({"HOME": tmp / "idp"}, default_issuer=issuer_url).keys).keyset(
            "idp-token")
        svc = build_services(CertstoreSettings(common=common), jwks_source=StaticJwksSource(idp_keys.jwks()))
        upgrade(svc.engine)
        pki.init_region(svc.keyring, region="110000", name="Bench region")
        for path in demo_type_files():
            svc.registry.add_type(load_type_file(path))
        svc.registry.add_issuer(uscc=USCC, name_zh="北京市公安局朝阳分局", region="110000", types=["JZZM"], client_id="bench")
        body = {"type": "JZZM", "holder_code": "11010519491231002X", "holder_name": "张三丰",
                "paper_serial": "京朝居 2026 000123",
                "fields": {"address": "北京市朝阳区建国门外大街1号院3号楼1502室", "residence_since": "2019-03-01"}}
        certs = svc.certificates
        view = certs.issue(IssueRequest.from_json(body), agency_uscc=USCC).certificate
        with certs.sessions() as s:
            row = s.scalar(sa.select(Certificate).where(Certificate.identifier == view.identifier))
            list_id, idx = row.status_list, row.status_index
        holder = ECKey.generate_key("P-256", private=True)
        holder_jwk = {k: v for k, v in holder.as_dict(private=False).items() if k in ("kty", "crv", "x", "y")}
        public = svc.settings.public_url
        credential = issue_sd_jwt_vc(
            CredentialClaims(issuer=public, vct=f"{public}/vct/JZZM", holder_jwk=holder_jwk,
                             status_uri=certs.status_lists.uri(list_id), status_index=idx, issued_at=int(time.time()),
                             disclosable={"identifier": view.identifier, "holder_name": body["holder_name"],
                                          "holder_code": "110105********002X", "paper_serial": body["paper_serial"],
                                          **body["fields"]}),
            pki.agency_signer(svc.keyring, USCC),
        ).credential
        asked = {"address", "residence_since"}

        # 1. the check alone
        trust = certs.verifier.trust_list()
        text = _present(credential, holder, asked, aud="x509_hash:bench", nonce="bench-nonce")
        now = dt.datetime.now(dt.UTC)
        out["check_per_s"] = _rate(lambda: verify_presentation(text, trust, audience="x509_hash:bench",
                                                               nonce="bench-nonce", now=now), seconds)
        key = ec.generate_private_key(ec.SECP256R1())
        sig = key.sign(b"x" * 200, ec.ECDSA(hashes.SHA256()))
        pub = key.public_key()

        def two_verifies() -> None:
            pub.verify(sig, b"x" * 200, ec.ECDSA(hashes.SHA256()))
            pub.verify(sig, b"x" * 200, ec.ECDSA(hashes.SHA256()))

        out["raw_two_p256_per_s"] = _rate(two_verifies, seconds)
        out["check_ratio"] = out["check_per_s"] / out["raw_two_p256_per_s"]

        # 2. end to end through the web app
        now_s = int(time.time())
        token = encode_jws(idp_keys.active(), {"iss": issuer_url, "sub": "bench", "aud": "certstore", "client_id": "bench",
                                               "scope": "certs:issue", "iat": now_s, "exp": now_s + 3600, "jti": "b"},
                           typ="at+jwt")
        client = create_app(services=svc).test_client()
        auth = {"Authorization": f"Bearer {token}"}
        prefix = len(public)
        pending: list[tuple[dict[str, Any], str]] = []

        def prepare(n: int) -> None:
            for _ in range(n):
                created = client.post("/api/v1/vp/requests", json={"type": "JZZM", "claims": sorted(asked),
                                                                   "response_mode": "direct_post"}, headers=auth).get_json()
                jar = client.get(created["request_uri"][prefix:]).get_data(as_text=True)
                part = jar.split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
                pending.append((created | {"jar": claims},
                                _present(credential, holder, asked, aud=claims["client_id"], nonce=claims["nonce"])))

        def answer() -> None:
            created, presentation = pending.pop()
            jar = created["jar"]
            resp = client.post(jar["response_uri"][prefix:], data={
                "vp_token": json.dumps({"certificate": [presentation]}), "state": jar["state"]})
            if resp.status_code != 200:
                raise RuntimeError(f"refused: {resp.get_data(as_text=True)[:200]}")
            got = client.get(f"/vp/results/{created['request_id']}", headers={"X-VP-View": created["view_key"]})
            if got.get_json()["status"] != "valid":
                raise RuntimeError("not valid")

        count = max(40, int(seconds * 60))
        prepare(count)
        start = time.perf_counter()
        done = 0
        while pending:
            answer()
            done += 1
        out["end_to_end_per_s"] = done / (time.perf_counter() - start)
        start = time.perf_counter()
        prepare(20)
        out["request_per_s"] = 20 / (time.perf_counter() - start)
        pending.clear()
        with contextlib.suppress(Exception):
            svc.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file even when PostgreSQL is reachable")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.database_url
        if url is None and not args.sqlite:
            # Production's database (make bench's PostgreSQL), a throwaway schema; SQLite if there is none.
            try:
                from ._proc import pg_schema

                url = stack.enter_context(pg_schema("benchvp"))
            except Exception as e:  # noqa: BLE001 — no PostgreSQL here: say so and measure on SQLite
                print(f"(no PostgreSQL: {type(e).__name__}; SQLite instead)")
        r = run(seconds=args.seconds, database_url=url)
        where = "PostgreSQL" if url and url.startswith("postgresql") else "SQLite"
    print(f"OpenID4VP verifier (issue 15 §2), one process, {where}:")
    print(f"  presentation check alone (signing.sdjwt_verify)  {r['check_per_s']:8.0f} /s")
    print(f"  raw cryptography: two P-256 verifies             {r['raw_two_p256_per_s']:8.0f} /s")
    print(f"    ratio {r['check_ratio']:.2f}")
    print(f"  answer at the response_uri end to end (check, status from the record, read log, result read)"
          f"  {r['end_to_end_per_s']:6.0f} /s")
    print(f"  requests created and fetched (signed JAR)        {r['request_per_s']:8.0f} /s")
    return r


if __name__ == "__main__":
    main()
