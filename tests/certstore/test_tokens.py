"""Access-token validation against the idp's JWKS (RFC 9068, RFC 8725)."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from certstore.errors import Forbidden, ServiceUnavailable, Unauthorized
from certstore.tokens import HttpJwksSource, StaticJwksSource, TokenValidator
from keys.backend import b64url

from .conftest import ISSUER_URL


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _validator(source: Any, clock: Any = time.time, **kw: Any) -> TokenValidator:
    return TokenValidator(source, issuer=ISSUER_URL, audience="certstore", clock=clock, **kw)


def test_a_good_token_is_accepted(jwks_source: StaticJwksSource, mint: Any) -> None:
    tok = _validator(jwks_source).validate(mint(), scope="certs:issue")
    assert tok.client_id == "demo-psb"
    assert "certs:issue" in tok.scopes


def test_missing_scope_is_forbidden_not_unauthorized(jwks_source: StaticJwksSource, mint: Any) -> None:
    with pytest.raises(Forbidden) as e:
        _validator(jwks_source).validate(mint(scope="openid certs:read"), scope="certs:issue")
    assert e.value.extra["code"] == "insufficient_scope"


@pytest.mark.parametrize(
    "overrides,words",
    [
        ({"iss": "http://evil.test"}, "iss"),
        ({"aud": "someone-else"}, "aud"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "nbf"),
        ({"iat": int(time.time()) + 3600}, "iat"),
        ({"client_id": None}, "client_id"),
        ({"typ": "JWT"}, "typ"),
    ],
)
def test_bad_claims_and_headers_are_refused(jwks_source: StaticJwksSource, mint: Any, overrides: dict, words: str) -> None:
    with pytest.raises(Unauthorized) as e:
        _validator(jwks_source).validate(mint(**overrides), scope="certs:issue")
    assert words in str(e.value)


def test_forged_signature_is_refused(jwks_source: StaticJwksSource, mint: Any) -> None:
    token = mint()
    head, body, sig = token.split(".")
    forged = head + "." + b64url(b'{"iss":"http://idp.test","aud":"certstore","client_id":"x","scope":"certs:issue","exp":9999999999,"iat":1}') + "." + sig
    with pytest.raises(Unauthorized, match="signature"):
        _validator(jwks_source).validate(forged)


def test_alg_none_and_hmac_are_refused(jwks_source: StaticJwksSource, mint: Any) -> None:
    for alg in ("none", "HS256"):
        head = b64url((f'{{"alg":"{alg}","kid":"x","typ":"at+jwt"}}').encode())
        token = head + "." + mint().split(".")[1] + "."
        with pytest.raises(Unauthorized, match="algorithm"):
            _validator(jwks_source).validate(token)


def test_garbage_is_refused() -> None:
    v = _validator(StaticJwksSource({"keys": []}))
    for junk in ("", "abc", "a.b.c", "....", "é.é.é", "x" * 10000):
        with pytest.raises(Unauthorized):
            v.validate(junk)


def test_unknown_kid_refetches_once_then_is_rate_limited(tmp_path: Any, idp_keys: Any, mint: Any) -> None:
    source = StaticJwksSource({"keys": []})
    clock = FakeClock()
    v = _validator(source, clock, min_refetch_interval=30)
    with pytest.raises(Unauthorized, match="does not publish"):
        v.validate(mint())
    assert source.fetches == 1
    # The idp rotates: the key appears, but a refetch waits for the interval.
    source.jwks = idp_keys.jwks()
    with pytest.raises(Unauthorized):
        v.validate(mint())
    assert source.fetches == 1
    clock.now += 31
    assert v.validate(mint()).client_id == "demo-psb"
    assert source.fetches == 2
    # Known kid: no fetch until the TTL runs out.
    for _ in range(3):
        v.validate(mint())
    assert source.fetches == 2


def test_a_token_signed_by_another_key_with_a_known_kid_fails(jwks_source: StaticJwksSource, mint: Any, tmp_path: Any) -> None:
    from keys.config import KeySettings
    from keys.keyring import open_keyring

    other = open_keyring(KeySettings(home=tmp_path / "other", kek_file=tmp_path / "other" / "kek.bin")).keyset("idp-token").active()
    real_kid = jwks_source.jwks["keys"][0]["kid"]

    class Impostor:
        kid = real_kid
        algorithm = "ES256"

        def sign(self, data: bytes, *, der: bool = False) -> bytes:
            return other.sign(data, der=der)

    with pytest.raises(Unauthorized, match="signature"):
        _validator(jwks_source).validate(mint(signer=Impostor()))


def test_unreachable_idp_is_503() -> None:
    class Down:
        def fetch(self) -> Any:
            raise OSError("connection refused")

    with pytest.raises(ServiceUnavailable):
        _validator(Down()).validate("eyJhbGciOiJFUzI1NiIsImtpZCI6IngiLCJ0eXAiOiJhdCtqd3QifQ.e30.AA")


@contextlib.contextmanager
def _idp_double(answers: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback answering ``path -> (status, headers, body)``."""
    calls: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            calls.append(self.path)
            status, headers, body = answers.get(self.path, (404, {}, b"{}"))
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()


def test_http_source_follows_discovery_and_checks_the_issuer() -> None:
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {"/jwks.json": (200, {}, b'{"keys": [{"kty": "EC"}]}')}
    with _idp_double(answers) as (base, calls):
        doc = json.dumps({"issuer": base, "jwks_uri": f"{base}/jwks.json"}).encode()
        answers["/.well-known/openid-configuration"] = (200, {}, doc)
        src = HttpJwksSource(base)
        assert src.fetch() == {"keys": [{"kty": "EC"}]}
        src.fetch()
        assert calls == ["/.well-known/openid-configuration", "/jwks.json", "/jwks.json"]
        answers["/.well-known/openid-configuration"] = (200, {}, json.dumps({"issuer": "http://evil.test"}).encode())
        with pytest.raises(ValueError, match="another issuer"):
            HttpJwksSource(base).fetch()


@pytest.mark.parametrize(
    "answer",
    [
        (200, {}, b'{"keys": [' + b'{"kty": "EC"},' * 40_000 + b'{}]}'),  # ~560 KB: over the cap
        (200, {"Content-Encoding": "gzip"}, gzip.compress(b'{"keys": []}')),  # never decompressed
        (302, {"Location": "http://elsewhere.test/jwks.json"}, b""),  # never followed
    ],
    ids=["oversized", "gzip", "redirect"],
)
def test_an_idp_answer_outside_the_bounds_is_refused_unread(answer: tuple[int, dict[str, str], bytes]) -> None:
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {"/jwks.json": answer}
    with _idp_double(answers) as (base, _):
        answers["/.well-known/openid-configuration"] = (
            200, {}, json.dumps({"issuer": base, "jwks_uri": f"{base}/jwks.json"}).encode()
        )
        with pytest.raises(ValueError):
            HttpJwksSource(base).fetch()
