"""Issue 15's figure for ``make bench``: credentials issued per second through OpenID4VCI against
certificates issued per second through the API.

``python -m benchmarks.vci [--seconds S] [--database-url URL]`` prints, from one run on this machine,
one worker (the WSGI app called in-process, no HTTP server in between), the two sides timed in
alternating slices of the same run (``benchmarks.signing.alternate``):

* certificates issued through the API (token check, schema, database, QR payload, PDF, PAdES B-B);
* SD-JWT VCs through the credential endpoint, one per request: the wallet asks the nonce endpoint,
  signs a key proof (ES256, in this process: a wallet's share of the work), and the issuer checks
  the pre-authorized flow's access token, the proof, consumes the nonce, reads the certificate,
  decrypts the holder code, builds the disclosures, signs (ES256 through keys/) and writes the
  issuer's log;
* the same with a batch of 10 proofs per request (credentials per second);
* the whole pre-authorized code flow per credential: the agency's offer (API), the wallet's offer
  fetch, the token request with the tx_code, the nonce and the credential request.

Everything runs in a temporary directory with a throwaway region CA; Redis is the in-process
stand-in unless ``YIWANG_REDIS_URL`` is set.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

__all__ = ["run", "main"]

PRE = "urn:ietf:params:oauth:grant-type:pre-authorized_code"


def run(*, seconds: float = 3.0, database_url: str | None = None) -> dict[str, float]:
    from joserfc import jwt
    from joserfc.jwk import ECKey

    from benchmarks.signing import alternate
    from certstore.db import upgrade
    from certstore.settings import CertstoreSettings
    from certstore.tokens import StaticJwksSource
    from certstore.types import demo_type_files, load_type_file
    from certstore.web import create_app
    from certstore.wiring import build_services
    from keys import pki
    from keys.config import CommonSettings
    from keys.jws import encode_jws
    from keys.keyring import open_keyring

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vci-bench-") as tmpdir:
        tmp = Path(tmpdir)
        issuer_url = "http://idp.bench"
        common = CommonSettings.from_values(
            {"HOME": tmp / "home", "DATABASE_URL": database_url or f"sqlite:///{tmp / 'bench.db'}", "ISSUER": issuer_url},
            default_issuer=issuer_url,
        )
        settings = CertstoreSettings(common=common, pades_level="B-B")
        idp_keys = open_keyring(CommonSettings.from_values({"HOME": tmp / "idp"}, default_issuer=issuer_url).keys).keyset(
            "idp-token"
        )
        svc = build_services(settings, jwks_source=StaticJwksSource(idp_keys.jwks()))
        upgrade(svc.engine)
        pki.init_region(svc.keyring, region="110000", name="Bench region")
        for path in demo_type_files():
            svc.registry.add_type(load_type_file(path))
        uscc = "111101050000000017"
        svc.registry.add_issuer(uscc=uscc, name_zh="北京市公安局朝阳分局", region="110000", types=["JZZM"], client_id="bench")
        body = {
            "type": "JZZM", "holder_code": "11010519491231002X", "holder_name": "张三丰",
            "paper_serial": "京朝居 2026 000123",
            "fields": {"address": "北京市朝阳区建国门外大街1号院3号楼1502室", "residence_since": "2019-03-01"},
        }
        now = int(time.time())
        token = encode_jws(
            idp_keys.active(),
            {"iss": issuer_url, "sub": "bench", "aud": "certstore", "client_id": "bench", "scope": "certs:issue",
             "iat": now, "exp": now + 3600, "jti": "bench"},
            typ="at+jwt",
        )
        client = create_app(services=svc).test_client()
        agency = {"Authorization": f"Bearer {token}"}
        public = settings.public_url

        def issue_via_api() -> str:
            resp = client.post("/api/v1/certificates", json=copy.deepcopy(body), headers=agency)
            if resp.status_code != 201:
                raise RuntimeError(f"issue failed: {resp.status_code} {resp.get_data(as_text=True)[:200]}")
            return str(resp.get_json()["identifier"])

        def pre_authorized_token(identifier: str) -> str:
            created = client.post(f"/api/v1/certificates/{identifier}/credential-offer", headers=agency).get_json()
            offer = client.get("/vci/offers/" + created["credential_offer_uri"].rsplit("/", 1)[1]).get_json()
            resp = client.post("/vci/token", data={"grant_type": PRE, "tx_code": created["tx_code"],
                                                    "pre-authorized_code": offer["grants"][PRE]["pre-authorized_code"]})
            return str(resp.get_json()["access_token"])

        keys = [ECKey.generate_key("P-256") for _ in range(10)]

        def credentials(access: str, count: int) -> int:
            nonce = client.post("/vci/nonce").get_json()["c_nonce"]
            proofs = [jwt.encode({"alg": "ES256", "typ": "openid4vci-proof+jwt", "jwk": k.as_dict(private=False)},
                                 {"aud": public, "iat": int(time.time()), "nonce": nonce}, k, algorithms=["ES256"])
                      for k in keys[:count]]
            resp = client.post("/vci/credential", headers={"Authorization": f"Bearer {access}"},
                               json={"credential_configuration_id": "JZZM_sd_jwt", "proofs": {"jwt": proofs}})
            if resp.status_code != 200:
                raise RuntimeError(f"credential failed: {resp.status_code} {resp.get_data(as_text=True)[:200]}")
            return len(resp.get_json()["credentials"])

        identifier = issue_via_api()
        state = {"access": pre_authorized_token(identifier), "at": time.monotonic()}

        def access() -> str:
            if time.monotonic() - state["at"] > 240:  # the pre-authorized flow's token lives 300 s
                state.update(access=pre_authorized_token(identifier), at=time.monotonic())
            return str(state["access"])

        credentials(access(), 1)  # warm up
        out["api_issue_per_s"], out["vci_credential_per_s"] = alternate(
            issue_via_api, lambda: credentials(access(), 1), seconds=2 * seconds, slices=10
        )
        out["vci_ratio"] = out["vci_credential_per_s"] / out["api_issue_per_s"]
        batches_per_s = alternate(lambda: credentials(access(), 10), lambda: None, seconds=seconds, slices=5)[0]
        out["vci_batch10_credentials_per_s"] = 10 * batches_per_s

        def whole_flow() -> None:
            credentials(pre_authorized_token(identifier), 1)

        out["vci_whole_flow_per_s"] = alternate(whole_flow, lambda: None, seconds=seconds, slices=5)[0]
        svc.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vci", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    args = parser.parse_args(argv)
    r = run(seconds=args.seconds, database_url=args.database_url)
    print("OpenID4VCI (issue 15 §1), one worker, one run:")
    print(f"  certificates issued through the API          {r['api_issue_per_s']:8.1f} /s (PAdES B-B)")
    print(f"  SD-JWT VCs, one per credential request       {r['vci_credential_per_s']:8.1f} /s"
          f"  ({r['vci_ratio']:.1f}x the API's issuance rate)")
    print(f"  SD-JWT VCs, batches of 10 proofs             {r['vci_batch10_credentials_per_s']:8.1f} credentials/s")
    print(f"  whole pre-authorized flow per credential     {r['vci_whole_flow_per_s']:8.1f} /s"
          " (offer, offer fetch, token, nonce, credential)")
    return r


if __name__ == "__main__":
    main()
