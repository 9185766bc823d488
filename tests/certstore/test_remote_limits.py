"""Issue 19 §2 and issue 11 §11: what certstore fetches is bounded, and only from where it was told.

Status lists (10 s in all, 32 MiB) and trust lists fetched by URL (15 s in
all, 4 MiB) from a hostile server: 1 GiB claimed and streamed, a gzip bomb,
one byte a second. Each is refused within its deadline plus a second, the
test process grows by less than 50 MiB, and a normal fetch made meanwhile
answers at once. The remote status-list URL is built from a validated
``list_id`` and stays on the host the region registered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from certstore.cli.trust import _fetch as fetch_trust_list
from certstore.errors import InvalidInput
from certstore.statuslists import requests_fetch
from certstore.trust import MergedTrust
from signing.statuslist import StatusListError
from tests.certstore.conftest import DEMO_REQUESTS, PSB
from tests.certstore.test_regions import A_TYPES, Recorder, region_a, region_b, second_database_url  # noqa: F401
from tests.support.hostile_http import HostileServer, RssMeter

MEMORY_BOUND_MIB = 50
STATUS_LIST_DEADLINE = 10.0
TRUST_LIST_DEADLINE = 15.0


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    # The trickle outlasts both deadlines, so an unbounded client is caught.
    server = HostileServer(trickle_seconds=TRUST_LIST_DEADLINE + 5).start()
    yield server
    server.stop()


def _status_list(url: str) -> bytes:
    return requests_fetch(url, allow_loopback=True).body


def _trust_list(url: str) -> bytes:
    return fetch_trust_list(url, allow_loopback=True)


PATHS: dict[str, tuple[Callable[[str], bytes], float, type[Exception]]] = {
    "status list": (_status_list, STATUS_LIST_DEADLINE, StatusListError),
    "trust list": (_trust_list, TRUST_LIST_DEADLINE, InvalidInput),
}


def _hostile_params() -> list[Any]:
    out = []
    for what in PATHS:
        for path in ("/plain", "/gzip", "/trickle"):
            marks = [pytest.mark.slow] if path == "/trickle" else []
            out.append(pytest.param(what, path, id=f"{what}{path}", marks=marks))
    return out


@pytest.mark.parametrize(("what", "path"), _hostile_params())
def test_a_hostile_answer_is_cut_within_time_and_memory(hostile: HostileServer, what: str, path: str) -> None:
    fetch, deadline, error = PATHS[what]
    assert fetch(hostile.url("/small")) == b"hello"  # warm up
    outcome: dict[str, Any] = {}

    def hostile_fetch() -> None:
        t = time.monotonic()
        try:
            outcome["body"] = fetch(hostile.url(path))
        except error as e:
            outcome["error"] = str(e)
        outcome["took"] = time.monotonic() - t

    with RssMeter() as meter:
        worker = threading.Thread(target=hostile_fetch, daemon=True)
        worker.start()
        time.sleep(0.3)
        t = time.monotonic()
        assert fetch(hostile.url("/small")) == b"hello"  # a normal fetch, meanwhile
        normal = time.monotonic() - t
        worker.join(timeout=deadline + 15)
    assert "took" in outcome, "the hostile fetch never returned"
    assert "error" in outcome, "a hostile answer was accepted"
    assert outcome["took"] < deadline + 1.0, f"held {outcome['took']:.1f} s"
    assert meter.growth_mib < MEMORY_BOUND_MIB, f"grew {meter.growth_mib:.0f} MiB"
    assert normal < 2.0


def test_outside_the_demo_only_https_to_public_addresses_is_fetched(hostile: HostileServer) -> None:
    with pytest.raises(StatusListError, match="only https"):
        requests_fetch(hostile.url("/small"))
    with pytest.raises(StatusListError, match="not a public address"):
        requests_fetch("https://10.20.30.40/status-lists/1")


class _Issuer:
    kid = b"k" * 8


@pytest.mark.parametrize("base", ["https://region-a.example", "https://region-a.example/status-lists/"])
@pytest.mark.parametrize(
    "list_id",
    [
        "@evil.example/1",
        ".evil.example/1",
        ":8443/1",
        "../../admin",
        "1/../../x",
        "1?x=1",
        "1#x",
        "1%2F..",
        "１",  # a full-width digit
        "a" * 65,
        "",
    ],
)
def test_a_crafted_list_id_never_leaves_the_registered_host(base: str, list_id: str) -> None:
    merged = MergedTrust(trust_list=None, status_base={_Issuer.kid: base}, regions=())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status list"):
        merged.status_uri(_Issuer(), list_id)  # type: ignore[arg-type]


def test_a_well_formed_list_id_is_a_path_segment_on_the_registered_host() -> None:
    merged = MergedTrust(
        trust_list=None,  # type: ignore[arg-type]
        status_base={_Issuer.kid: "https://region-a.example/status-lists/"},
        regions=(),
    )
    assert merged.status_uri(_Issuer(), "17") == "https://region-a.example/status-lists/17"  # type: ignore[arg-type]
    assert merged.status_uri(_Issuer(), "A_b-9") == "https://region-a.example/status-lists/A_b-9"  # type: ignore[arg-type]


def test_a_signed_qr_with_a_crafted_list_id_fetches_nothing(
    region_a: tuple[Any, Recorder], region_b: tuple[Any, Any]  # noqa: F811 - the fixtures imported above
) -> None:
    # An agency of a trusted region signs a payload whose list_id points elsewhere:
    # the verifier refuses the status check and sends no request at all.
    from cryptography.hazmat.primitives.serialization import Encoding

    from certstore.service import IssueRequest
    from keys import pki
    from signing.qr import decode_qr_payload, encode_qr_payload

    a, recorder = region_a
    b, _clock = region_b
    cert = a.certificates.issue(IssueRequest.from_json(DEMO_REQUESTS["JZZM"]["body"]), agency_uscc=PSB).certificate
    b.certificates.trust_store.import_(
        a.certificates.trust_store.export(), pki.region_root(a.keyring).public_bytes(Encoding.PEM), types=A_TYPES
    )
    claims = decode_qr_payload(cert.qr_text).claims
    before = len(recorder.requests)
    for list_id in ("../../trust-list.jwt?", "1/../../pki/crl/issuing.crl#", "@169.254.169.254/latest"):
        crafted = encode_qr_payload(replace(claims, status_list=list_id), a.keyring.agency_signer(PSB))
        result = b.certificates.verify_qr(crafted)
        status = next(c for c in result.checks if c.name == "status")
        assert not result.valid and not status.ok and "not valid" in status.reason, status
    assert len(recorder.requests) == before
