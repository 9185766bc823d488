"""The measured sizes behind docs/capacity.md: Redis bytes per SSO object, PostgreSQL bytes per certificate.

``python -m benchmarks.capacity [--sessions N] [--certificates N] [--no-lta]`` prints:

* Redis (``YIWANG_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``), under a key
  prefix of its own: ``MEMORY USAGE`` of one SSO session as ``idp.sessions.SessionStore``
  writes it (the session hash, its entry in the expiry index, the citizen's session set),
  the session's client set with 1, 5, 20 and 50 portals, an authorization code
  (``idp.oauth.codes.CodeStore``) and what its redemption leaves for the replay window, a DPoP ``jti`` replay entry (the key shape of
  ``keys.dpop.DPoPVerifier``) and a CAS service ticket (``idp.cas.tickets.TicketStore``);
  then ``INFO memory`` before and after N sessions with 2 portals each (default 10,000),
  which includes Redis's own per-key overhead;
* PostgreSQL (``YIWANG_TEST_DATABASE_URL``, default the local ``test`` database), in a
  schema of its own: a certstore with a throwaway region CA issues N certificates at PAdES
  B-B and N at B-LTA (the local TSA in a thread, ``certstore.tsa``), and per level the
  average ``pg_column_size`` of a row, of its PDF, and ``pg_total_relation_size`` of the
  certificate table (heap + TOAST + indexes) divided by the rows.

Everything it creates (the Redis prefix, the schema, the temporary directory) is removed
at the end, also when it fails.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._proc import pg_schema

__all__ = ["measure_redis", "measure_certificates", "main"]

REDIS_URL = os.environ.get("YIWANG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def _redis_prefix(client: Any) -> Iterator[str]:
    prefix = f"ywcap{uuid.uuid4().hex[:10]}:idp:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=5000))
        for i in range(0, len(keys), 5000):
            client.delete(*keys[i:i + 5000])


def _used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def _new_session(store: Any, citizen: int) -> Any:
    session, _cookie = store.create(
        str(citizen), int(time.time()), "urn:yiwang:acr:password", ["pwd"], "web",
        "203.0.113.7", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    )
    return session


def measure_redis(*, sessions: int = 10_000) -> dict[str, float]:
    """Bytes per SSO object in Redis (see the module docstring)."""
    import hashlib

    import redis

    from idp.cas.tickets import Ticket, TicketStore
    from idp.oauth.codes import AuthorizationCode, CodeStore
    from idp.sessions import SessionStore

    client = redis.Redis.from_url(REDIS_URL)
    out: dict[str, float] = {}
    with _redis_prefix(client) as prefix:
        store = SessionStore(client, prefix, idle_seconds=1800, max_seconds=8 * 3600)
        mem = lambda key: int(client.memory_usage(key, samples=0) or 0)  # noqa: E731

        one = _new_session(store, 1_000_001)
        out["session_hash"] = mem(store._k(one.sid))
        out["citizen_set_one_session"] = mem(store._kcit + one.citizen_id)
        for n in (1, 5, 20, 50):
            s = _new_session(store, 1_000_100 + n)
            for i in range(n):
                store.add_client(s.sid, f"portal-{i:03d}.gov.example")
            out[f"client_set_{n}"] = mem(store._kc(s.sid))

        codes = CodeStore(client, prefix)
        code = codes.issue(AuthorizationCode(
            client_id="portal-001.gov.example", redirect_uri="https://portal-001.gov.example/callback",
            scope="openid profile phone", sid=one.sid, auth_time=int(time.time()), nonce=secrets.token_urlsafe(16),
            code_challenge=secrets.token_urlsafe(32), code_challenge_method="S256", acr="urn:yiwang:acr:password",
            amr=["pwd"], citizen_id="1000001", citizen={"id": 1_000_001, "public_id": uuid.uuid4().hex, "name": "张三丰",
                                  "phone": "13800138000", "email": None},
        ))
        out["authorization_code"] = mem(prefix + "code:c:" + CodeStore.hash_of(code))
        # What a redeemed code leaves for the replay window (a day by default): the used marker.
        codes.consume(code)
        out["code_used_marker"] = mem(prefix + "code:u:" + CodeStore.hash_of(code))
        # keys.dpop.DPoPVerifier: SET NX of sha256(jti \0 htu) -> b"1" with an expiry.
        jti_key = prefix + "dpop:jti:" + hashlib.sha256(f"{secrets.token_urlsafe(16)}\x00https://idp/token".encode()).hexdigest()
        client.set(jti_key, b"1", nx=True, ex=300)
        out["dpop_jti"] = mem(jti_key)
        tickets = TicketStore(client, prefix, lifetime_seconds=10)
        st = tickets.issue(Ticket(client_id="cas-portal", service="https://cas-portal.gov.example/cas/login",
                                  sid=one.sid, citizen_id=1_000_001, auth_time=int(time.time()),
                                  issued_at=int(time.time()), scopes=["openid", "profile"]))
        out["cas_ticket"] = mem(tickets._key(st))

        # N sessions with 2 portals each, INFO memory before and after (fragmentation aside).
        before = _used_memory(client)
        start = time.perf_counter()
        for c in range(sessions):
            s = _new_session(store, 2_000_000 + c)
            pipe = client.pipeline(transaction=False)
            store.add_client(s.sid, "portal-001.gov.example", pipe=pipe)
            store.add_client(s.sid, "portal-002.gov.example", pipe=pipe)
            pipe.execute()
        elapsed = time.perf_counter() - start
        after = _used_memory(client)
        out["sessions"] = sessions
        out["info_bytes_per_session_2_portals"] = (after - before) / sessions
        out["expiry_zset_bytes_per_session"] = mem(store._kexp(one.sid)) / (sessions + 5)
        out["create_plus_2_portals_per_s_one_client"] = sessions / elapsed
    client.close()
    return out


def _issue_and_size(level: str, count: int, tmp: Path) -> dict[str, float]:
    import sqlalchemy as sa

    from certstore.db import upgrade
    from certstore.issue_request import IssueRequest
    from certstore.settings import CertstoreSettings
    from certstore.types import demo_type_files, load_type_file
    from certstore.wiring import build_services
    from keys import pki
    from keys.config import CommonSettings
    from keys.keyring import open_keyring

    with pg_schema("cap") as url:
        issuer_url = "http://idp.capacity"
        common = CommonSettings.from_values({"HOME": tmp / level / "home", "DATABASE_URL": url, "ISSUER": issuer_url},
                                            default_issuer=issuer_url)
        settings = CertstoreSettings(common=common, pades_level=level)
        with contextlib.ExitStack() as stack:
            if level != "B-B":
                from certstore.tsa import TSA_PATH, TsaApp, running_tsa_server

                base = stack.enter_context(running_tsa_server(TsaApp(open_keyring(common.keys))))
                settings = settings.with_(tsa_url=base + TSA_PATH)
            from certstore.tokens import StaticJwksSource

            svc = build_services(settings, jwks_source=StaticJwksSource({"keys": []}))
            stack.callback(svc.close)
            upgrade(svc.engine)
            pki.init_region(svc.keyring, region="110000", name="Capacity region")
            for path in demo_type_files():
                svc.registry.add_type(load_type_file(path))
            uscc = "111101050000000017"
            svc.registry.add_issuer(uscc=uscc, name_zh="北京市公安局朝阳分局", region="110000", types=["JZZM"],
                                    client_id="capacity")
            body = {
                "type": "JZZM", "holder_code": "11010519491231002X", "holder_name": "张三丰",
                "paper_serial": "京朝居 2026 000123",
                "fields": {"address": "北京市朝阳区建国门外大街1号院3号楼1502室", "residence_since": "2019-03-01"},
            }
            start = time.perf_counter()
            # The local TSA's request log would bury the figures.
            with contextlib.redirect_stderr(io.StringIO()):
                for _ in range(count):
                    svc.certificates.issue(IssueRequest.from_json(copy.deepcopy(body)), agency_uscc=uscc)
            elapsed = time.perf_counter() - start
            with svc.engine.connect() as conn:
                row = conn.execute(sa.text(
                    "SELECT count(*), avg(pg_column_size(c.*)), avg(pg_column_size(pdf)), avg(octet_length(pdf)),"
                    " avg(pg_column_size(c.*) - pg_column_size(pdf)),"
                    " pg_total_relation_size('certificates'), pg_relation_size('certificates'),"
                    " pg_indexes_size('certificates') FROM certificates c"
                )).one()
                others = conn.execute(sa.text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                    " AND c.relname IN ('cert_audit', 'cert_status_slots', 'cert_idempotency')"
                )).scalar_one()
    n = int(row[0])
    return {
        "rows": n,
        "issue_per_s_in_process": count / elapsed,
        "row_bytes": float(row[1]),
        "pdf_stored_bytes": float(row[2]),
        "pdf_raw_bytes": float(row[3]),
        "row_without_pdf_bytes": float(row[4]),
        "table_total_bytes_per_row": int(row[5]) / n,
        "table_heap_bytes_per_row": int(row[6]) / n,
        "table_index_bytes_per_row": int(row[7]) / n,
        "audit_status_idempotency_bytes_per_row": int(others) / n,
    }


def measure_certificates(*, count: int = 200, levels: tuple[str, ...] = ("B-B", "B-LTA")) -> dict[str, dict[str, float]]:
    """Per-certificate storage in PostgreSQL at each PAdES level (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="yiwang-capacity-") as tmpdir:
        return {level: _issue_and_size(level, count, Path(tmpdir)) for level in levels}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--certificates", type=int, default=200, help="per PAdES level")
    parser.add_argument("--no-lta", action="store_true", help="B-B only (no local TSA)")
    args = parser.parse_args(argv)

    r = measure_redis(sessions=args.sessions)
    print("Redis, MEMORY USAGE (bytes)")
    for key in ("session_hash", "citizen_set_one_session", "client_set_1", "client_set_5", "client_set_20",
                "client_set_50", "authorization_code", "code_used_marker", "dpop_jti", "cas_ticket"):
        print(f"  {key:40s} {r[key]:8.0f}")
    print(f"  {'expiry index, per session':40s} {r['expiry_zset_bytes_per_session']:8.0f}")
    print(f"INFO used_memory over {r['sessions']:,.0f} sessions with 2 portals each: "
          f"{r['info_bytes_per_session_2_portals']:.0f} bytes/session "
          f"({r['create_plus_2_portals_per_s_one_client']:.0f} sessions/s from one client)")

    levels = ("B-B",) if args.no_lta else ("B-B", "B-LTA")
    for level, c in measure_certificates(count=args.certificates, levels=levels).items():
        print(f"PostgreSQL, certificates at PAdES {level} ({c['rows']:.0f} rows, "
              f"{c['issue_per_s_in_process']:.1f}/s issued in-process)")
        for key in ("row_bytes", "pdf_raw_bytes", "pdf_stored_bytes", "row_without_pdf_bytes",
                    "table_total_bytes_per_row", "table_heap_bytes_per_row", "table_index_bytes_per_row",
                    "audit_status_idempotency_bytes_per_row"):
            print(f"  {key:40s} {c[key]:10.0f}")


if __name__ == "__main__":
    main()
