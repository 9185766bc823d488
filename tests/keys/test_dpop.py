"""keys.dpop: the DPoP proof checker every service shares (RFC 9449 §4.3), attack by attack."""

from __future__ import annotations

import time

import fakeredis
import pytest

from keys.dpop import DPoPError, DPoPVerifier, NonceSource, access_token_hash, normalize_htu
from tests.keys.dpop_client import DPoPKey, raw_jws

URL = "https://idp.example/token"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(clock: Clock) -> DPoPVerifier:
    return DPoPVerifier(fakeredis.FakeRedis(), "t:", nonces=NonceSource(b"k" * 32, window_seconds=300, clock=clock),
                        iat_window=60, leeway=5, clock=clock)


def refused(verifier: DPoPVerifier, proof: str, error: str = "invalid_dpop_proof", **kw: object) -> str:
    with pytest.raises(DPoPError) as e:
        verifier.check(proof, **{"method": "POST", "url": URL, **kw})  # type: ignore[arg-type]
    assert e.value.error == error
    return e.value.description


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "PS256"])
def test_an_honest_proof_gives_the_key_thumbprint(verifier: DPoPVerifier, alg: str) -> None:
    key = DPoPKey(alg)
    proof = verifier.check(key.proof("POST", URL), method="POST", url=URL)
    assert proof.jkt == key.jkt and proof.htm == "POST" and proof.htu == URL


def test_a_replayed_proof_is_refused(verifier: DPoPVerifier) -> None:
    proof = DPoPKey().proof("POST", URL)
    verifier.check(proof, method="POST", url=URL)
    assert "used before" in refused(verifier, proof)


def test_a_proof_for_another_url_or_method_is_refused(verifier: DPoPVerifier) -> None:
    key = DPoPKey()
    assert "htu" in refused(verifier, key.proof("POST", "https://idp.example/userinfo"))
    assert "htu" in refused(verifier, key.proof("POST", "https://evil.example/token"))
    assert "htm" in refused(verifier, key.proof("GET", URL))


def test_htu_ignores_query_fragment_case_and_default_port(verifier: DPoPVerifier) -> None:
    assert normalize_htu("HTTPS://IDP.example:443/token?x=1#f") == URL
    assert normalize_htu("http://h:8080") == "http://h:8080/"
    verifier.check(DPoPKey().proof("POST", "https://IDP.EXAMPLE:443/token?a=b"), method="POST", url=URL)


def test_a_stale_or_future_iat_is_refused(verifier: DPoPVerifier, clock: Clock) -> None:
    key = DPoPKey()
    assert "iat" in refused(verifier, key.proof("POST", URL, iat=clock.now - 120))
    assert "iat" in refused(verifier, key.proof("POST", URL, iat=clock.now + 120))
    verifier.check(key.proof("POST", URL, iat=clock.now - 63), method="POST", url=URL)  # within the leeway


def test_hmac_and_none_are_refused(verifier: DPoPVerifier) -> None:
    key = DPoPKey()
    claims = {"jti": "j1", "htm": "POST", "htu": URL, "iat": int(time.time())}
    assert "alg" in refused(verifier, raw_jws({"typ": "dpop+jwt", "alg": "none", "jwk": key.public}, claims))
    hs = raw_jws({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}, claims, b"x" * 32)
    assert "alg" in refused(verifier, hs)


def test_a_private_key_in_the_jwk_is_refused(verifier: DPoPVerifier) -> None:
    key = DPoPKey()
    private = key.key.as_dict(private=True)
    assert "public" in refused(verifier, key.proof("POST", URL, header={"jwk": private}))


def test_a_wrong_typ_a_forged_signature_and_a_mismatched_key_are_refused(verifier: DPoPVerifier) -> None:
    key, other = DPoPKey(), DPoPKey()
    assert "typ" in refused(verifier, key.proof("POST", URL, header={"typ": "JWT"}))
    forged = key.proof("POST", URL, header={"jwk": other.public})  # signed by key, claims other's jwk
    assert "signature" in refused(verifier, forged)
    claims = {"jti": "j2", "htm": "POST", "htu": URL, "iat": int(time.time())}
    assert "fit" in refused(verifier, raw_jws({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.public}, claims))


def test_ath_must_match_the_access_token(verifier: DPoPVerifier) -> None:
    key, token, other = DPoPKey(), "the-token", "other"
    assert "ath" in refused(verifier, key.proof("GET", URL, access_token=other), method="GET", access_token=token)
    assert "ath" in refused(verifier, key.proof("GET", URL), method="GET", access_token=token)
    verifier.check(key.proof("GET", URL, access_token=token), method="GET", url=URL, access_token=token)
    assert access_token_hash(token) != access_token_hash(other)


def test_nonces_current_and_previous_window_only(verifier: DPoPVerifier, clock: Clock) -> None:
    key = DPoPKey()
    assert refused(verifier, key.proof("POST", URL), "use_dpop_nonce", require_nonce=True)
    old = verifier.nonces.current()
    verifier.check(key.proof("POST", URL, nonce=old), method="POST", url=URL, require_nonce=True)
    clock.now += 300  # next window: the previous one's nonce still works
    verifier.check(key.proof("POST", URL, nonce=old, iat=clock.now), method="POST", url=URL, require_nonce=True)
    assert verifier.nonces.current() != old
    clock.now += 300  # two windows on: too old
    assert refused(verifier, key.proof("POST", URL, nonce=old, iat=clock.now), "use_dpop_nonce",
                   require_nonce=True)
    assert refused(verifier, key.proof("POST", URL, nonce="made-up", iat=clock.now), "use_dpop_nonce",
                   require_nonce=True)


def test_another_worker_accepts_the_same_nonce_and_shares_the_replay_cache(clock: Clock) -> None:
    r = fakeredis.FakeRedis()
    a = DPoPVerifier(r, "t:", nonces=NonceSource(b"k" * 32, clock=clock), clock=clock)
    b = DPoPVerifier(r, "t:", nonces=NonceSource(b"k" * 32, clock=clock), clock=clock)
    proof = DPoPKey().proof("POST", URL, nonce=a.nonces.current())
    b.check(proof, method="POST", url=URL, require_nonce=True)
    with pytest.raises(DPoPError):
        a.check(proof, method="POST", url=URL, require_nonce=True)


def test_garbage_is_refused_not_an_exception(verifier: DPoPVerifier) -> None:
    for junk in ("", "a.b", "a.b.c", "!!!.e30.", "x" * 9000):
        refused(verifier, junk)
