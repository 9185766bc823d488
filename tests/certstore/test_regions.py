"""Must show (issue 6): two regions, each with its own database and keys.

Region A (110000) and region B (310000) are two certstore instances — separate
YIWANG_HOME, separate database (schema), separate CA. A's app is served over
real HTTP on a local port, and B fetches A's status list with its ordinary
HTTP client, so the recording on A's side sees every request B makes.

B imports A's trust list (checked against A's root, configured out of band),
verifies A's certificate's QR offline, A revokes it, B reports it revoked
after fetching A's status list; a payload signed by a key not in B's list is
refused; no request B makes names the certificate.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from werkzeug.serving import make_server

from certstore.service import IssueRequest
from certstore.statuslists import FetchResponse
from certstore.tokens import StaticJwksSource
from keys import pki
from signing.qr import QrClaims, encode_qr_payload

from ..conftest import private_database
from .conftest import DEMO_REQUESTS, PSB, make_settings, populate

B_ISSUER = "123100004250107027"  # an agency of region B
A_TYPES = ["JZZM", "YYZZ", "BYZS"]  # the types region B agreed with region A


@pytest.fixture
def second_database_url(tmp_path: Path) -> Iterator[str]:
    """Region B's own database (a second schema on PostgreSQL, a second file on SQLite)."""
    with private_database(tmp_path, "region_b") as url:
        yield url


class Recorder:
    """WSGI middleware in front of region A: records every request it receives."""

    def __init__(self) -> None:
        self.app: Any = None
        self.requests: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = " ".join(f"{k}={v}" for k, v in environ.items() if k.startswith("HTTP_"))
        self.requests.append(
            f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')} "
            f"{headers} {body.decode('latin-1')}"
        )
        import io

        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


@pytest.fixture
def region_a(tmp_path: Path, database_url: str, jwks_source: StaticJwksSource) -> Iterator[tuple[Any, Recorder]]:
    from certstore.web import create_app
    from certstore.wiring import build_services

    recorder = Recorder()
    server = make_server("127.0.0.1", 0, recorder, threaded=True)
    settings = make_settings(tmp_path / "a", database_url, public_url=f"http://127.0.0.1:{server.port}", region="110000")
    svc = build_services(settings, jwks_source=jwks_source)
    populate(svc)
    recorder.app = create_app(services=svc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield svc, recorder
    finally:
        server.shutdown()
        svc.close()


class Clock:
    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@pytest.fixture
def region_b(tmp_path: Path, second_database_url: str, jwks_source: StaticJwksSource) -> Iterator[tuple[Any, Clock]]:
    from certstore.db import upgrade
    from certstore.types import demo_type_files, load_type_file
    from certstore.wiring import build_services

    clock = Clock()
    settings = make_settings(
        tmp_path / "b", second_database_url, public_url="http://b.invalid", region="310000",
        extra={"allow_loopback_fetch": True},  # region A is a local server in this test
    )
    svc = build_services(settings, jwks_source=jwks_source, clock=clock)
    upgrade(svc.engine)
    pki.init_region(svc.keyring, region="310000", name="Region B", crl_url="http://b.invalid/pki/crl/issuing.crl")
    for path in demo_type_files():
        svc.registry.add_type(load_type_file(path))
    svc.registry.add_issuer(uscc=B_ISSUER, name_zh="上海某局", region="310000", types=["JZZM"])
    yield svc, clock
    svc.close()


def _check(result: Any, name: str) -> Any:
    return next(c for c in result.checks if c.name == name)


def test_two_regions(region_a: tuple[Any, Recorder], region_b: tuple[Any, Clock], tmp_path: Path) -> None:
    a, recorder = region_a
    b, b_clock = region_b
    req = DEMO_REQUESTS["JZZM"]
    cert = a.certificates.issue(IssueRequest.from_json(req["body"]), agency_uscc=PSB).certificate

    # Before any import, B does not know A's issuers.
    before = b.certificates.verify_qr(cert.qr_text)
    assert not before.valid and not _check(before, "signature").ok
    assert "not in the trust list" in _check(before, "signature").reason

    # A publishes its signed trust list; B fetches it and imports it against A's root,
    # obtained out of band.
    import requests

    exported = requests.get(f"{a.settings.public_url}/trust-list.jwt", timeout=10).text
    recorder.requests.clear()
    a_root_pem = pki.region_root(a.keyring).public_bytes(Encoding.PEM)
    b_root_pem = pki.region_root(b.keyring).public_bytes(Encoding.PEM)
    from certstore.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not a configured trust anchor"):
        b.certificates.trust_store.import_(exported, b_root_pem, types=A_TYPES)
    doc = b.certificates.trust_store.import_(exported, a_root_pem, types=A_TYPES)
    assert doc.region == "110000" and PSB in [i.uscc for i in doc.issuers]

    # B verifies A's certificate: signature, issuer, type offline; status from A's list, fetched whole.
    result = b.certificates.verify_qr(cert.qr_text)
    assert result.valid, [(c.name, c.reason) for c in result.checks if not c.ok]
    assert result.certificate is None  # B has no record of it
    assert re.search(r"status list fetched \d+ seconds ago", _check(result, "status").reason)
    assert len(recorder.requests) == 1

    # Within the list's TTL, B verifies again with no network at all.
    b.certificates.status_cache.fetch = _no_network
    again = b.certificates.verify_qr(cert.qr_text)
    assert again.valid
    assert len(recorder.requests) == 1

    # A revokes; once B's cached copy is past its TTL, B fetches the list again and says revoked.
    a.certificates.lifecycle.change(cert.identifier, "revoke", reason="issued in error", actor="test", agency_uscc=PSB)
    from certstore.statuslists import requests_fetch

    b.certificates.status_cache.fetch = functools.partial(requests_fetch, allow_loopback=True)  # region A is local
    b_clock.offset = dt.timedelta(minutes=6)
    revoked = b.certificates.verify_qr(cert.qr_text)
    assert not revoked.valid
    status = _check(revoked, "status")
    assert not status.ok and "revoked" in status.reason and "fetched" in status.reason
    assert len(recorder.requests) == 2

    # No request B made names the certificate: not its identifier, serial or position.
    from signing.qr import decode_qr_payload

    claims = decode_qr_payload(cert.qr_text).claims
    secrets_ = [cert.identifier, cert.serial, str(claims.status_index), quote(cert.identifier)]
    for line in recorder.requests:
        tokens = set(re.split(r"[^0-9A-Za-z.]+", line))
        for s in secrets_:
            assert s not in line if len(s) > 8 else s not in tokens, (s, line)
        assert line.startswith(f"GET /status-lists/{claims.status_list}?")

    # A payload signed by a key not in B's merged list is refused.
    intruder = pki.issue_signer(a.keyring, uscc="91310000MA1FL0000N", name="not exported")
    forged_claims = QrClaims(
        identifier=cert.identifier,
        type_code="JZZM",
        issuer_uscc=PSB,
        holder_name="张三丰",
        holder_code_masked=claims.holder_code_masked,
        holder_code_type="111",
        valid_from=claims.valid_from,
        valid_until=claims.valid_until,
        issued_at=claims.issued_at,
        status_list=claims.status_list,
        status_index=claims.status_index,
    )
    forged = encode_qr_payload(forged_claims, intruder)
    refused = b.certificates.verify_qr(forged)
    assert not refused.valid and not _check(refused, "signature").ok
    assert "not in the trust list" in _check(refused, "signature").reason


def _no_network(url: str) -> FetchResponse:
    raise AssertionError(f"unexpected network request to {url}")


def test_stale_or_unreachable_status_list_is_never_valid(region_a: tuple[Any, Recorder], region_b: tuple[Any, Clock]) -> None:
    a, _ = region_a
    b, b_clock = region_b
    cert = a.certificates.issue(IssueRequest.from_json(DEMO_REQUESTS["JZZM"]["body"]), agency_uscc=PSB).certificate
    b.certificates.trust_store.import_(a.certificates.trust_store.export(), pki.region_root(a.keyring).public_bytes(Encoding.PEM), types=A_TYPES)

    from signing.statuslist import StatusListError

    def down(url: str) -> FetchResponse:
        raise StatusListError("connection refused", reason="fetch")

    b.certificates.status_cache.fetch = down
    result = b.certificates.verify_qr(cert.qr_text)
    assert not result.valid
    assert "cannot be confirmed" in _check(result, "status").reason

    # A list older than B allows is refused, even when freshly fetched.
    from certstore.statuslists import requests_fetch

    b.certificates.status_cache.fetch = functools.partial(requests_fetch, allow_loopback=True)  # region A is local
    b.certificates.status_cache.max_age = dt.timedelta(minutes=1)
    b_clock.offset = dt.timedelta(minutes=10)
    old = b.certificates.verify_qr(cert.qr_text)
    assert not old.valid
    assert "older than the allowed" in _check(old, "status").reason


def test_trust_cli_export_import_list(
    demo: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, second_database_url: str
) -> None:
    out_file = tmp_path / "region-a.trust.jwt"
    root_file = tmp_path / "region-a-root.pem"
    code, out, err = demo("trust", "export", "--out", str(out_file))
    assert code == 0 and "3 issuers" in out, err
    code, out, err = demo("ca", "root", "--out", str(root_file))
    assert code == 0, err
    # switch to region B: its own home and database
    monkeypatch.setenv("YIWANG_HOME", str(tmp_path / "home-b"))
    monkeypatch.setenv("YIWANG_DATABASE_URL", second_database_url)
    monkeypatch.setenv("YIWANG_CERTSTORE_REGION", "310000")
    code, out, err = demo("init")
    assert code == 0, err
    code, out, err = demo("trust", "import", str(out_file), "--anchor", str(out_file))
    assert code == 2 and "not a PEM certificate" in err
    bad = tmp_path / "bad.jwt"
    text = out_file.read_text().strip()
    bad.write_text(text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB"))
    code, out, err = demo("trust", "import", str(bad), "--anchor", str(root_file), "--types", ",".join(A_TYPES))
    assert code == 2 and "signature does not verify" in err, err
    code, out, err = demo("trust", "import", str(out_file), "--anchor", str(root_file), "--types", ",".join(A_TYPES))
    assert code == 0 and "imported the trust list of region 110000" in out, err
    code, out, err = demo("trust", "list")
    assert code == 0 and f"110000 {PSB}" in out and "imported region 110000" in out
    assert "/status-lists/" in out
    code, out, err = demo("trust", "remove", "110000")
    assert code == 0
    code, out, err = demo("trust", "list")
    assert PSB not in out


def test_trust_import_from_the_other_regions_url(
    region_a: tuple[Any, Recorder], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path, second_database_url: str,
) -> None:
    from .conftest import Cli

    a, _ = region_a
    root = tmp_path / "a-root.pem"
    root.write_bytes(pki.region_root(a.keyring).public_bytes(Encoding.PEM))
    monkeypatch.setenv("YIWANG_HOME", str(tmp_path / "home-b"))
    monkeypatch.setenv("YIWANG_DATABASE_URL", second_database_url)
    monkeypatch.setenv("YIWANG_ISSUER", "http://idp.test")
    monkeypatch.setenv("YIWANG_ALLOW_INSECURE_HTTP", "1")  # a made-up plain-http host (issue 19 §9)
    monkeypatch.setenv("YIWANG_CERTSTORE_REGION", "310000")
    monkeypatch.setenv("YIWANG_CERTSTORE_PADES_LEVEL", "B-B")  # issues nothing: no TSA (issue 15 §3)
    cli = Cli(capsys)
    code, out, err = cli("init")
    assert code == 0, err
    url = f"{a.settings.public_url}/trust-list.jwt"
    code, out, err = cli("trust", "import", url, "--anchor", str(root), "--types", ",".join(A_TYPES))
    assert code == 0 and "imported the trust list of region 110000" in out, err
    code, out, err = cli("trust", "import", f"{a.settings.public_url}/nope.jwt", "--anchor", str(root))
    assert code == 2 and "HTTP 404" in err
