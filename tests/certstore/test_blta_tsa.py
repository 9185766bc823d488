"""Issue 15 §3: the local RFC 3161 TSA (``certstore tsa serve``) answers like a TSA should."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from asn1crypto import algos, core, tsp
from cryptography import x509
from pyhanko.sign.timestamps import HTTPTimeStamper

from certstore.settings import CertstoreSettings
from keys import pki
from keys.keyring import open_keyring

from .conftest import Cli

pytestmark = pytest.mark.slow


@pytest.fixture
def region(cli: Cli, local_tsa: Any) -> tuple[Any, str]:
    code, _, err = cli("init", "--demo")
    assert code == 0, err
    keyring = open_keyring(CertstoreSettings.from_env(os.environ).common.keys)
    return keyring, local_tsa.url_for(keyring)


def test_a_token_is_rfc3161_signed_by_the_region_tsa_with_a_critical_timestamping_eku(
    region: tuple[Any, str],
) -> None:
    keyring, url = region
    token = asyncio.run(HTTPTimeStamper(url).async_timestamp(b"\x01" * 32, "sha256"))
    tsa_cert = pki.tsa_signer(keyring).certificate
    signer_info = token["content"]["signer_infos"][0]
    sid = signer_info["sid"].chosen
    assert sid["serial_number"].native == tsa_cert.serial_number
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    eku = tsa_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]
    assert tsa_cert.issuer == pki.region_ca(keyring).issuing.subject


@pytest.mark.parametrize(
    ("body", "ctype", "status", "reply"),
    [
        (b"not DER", "application/timestamp-query", 200, "rejection"),
        (None, "application/timestamp-query", 200, "rejection"),  # an MD5 imprint: badAlg
        (b"x", "text/plain", 415, None),
    ],
)
def test_bad_requests_get_a_refusal_not_a_stack_trace(
    region: tuple[Any, str], body: bytes | None, ctype: str, status: int, reply: str | None
) -> None:
    _, url = region
    if body is None:
        body = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": "md5"}),
                    "hashed_message": b"\x00" * 16,
                },
                "cert_req": True,
            }
        ).dump()
    r = requests.post(url, data=body, headers={"Content-Type": ctype}, timeout=10)
    assert r.status_code == status
    if reply is not None:
        assert r.headers["Content-Type"] == "application/timestamp-reply"
        status = tsp.PKIStatusInfo.load(core.Sequence.load(r.content)[0].dump())
        assert status["status"].native == reply and status["fail_info"].native
    assert requests.get(url, timeout=10).status_code == 405


def test_certstore_tsa_serve_runs_and_answers(cli: Cli, yiwang_env: dict[str, str], tmp_path: Path) -> None:
    code, _, err = cli("init")
    assert code == 0, err
    env = {**os.environ, **yiwang_env, "YIWANG_LOG_LEVEL": "info"}
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-c", "from certstore.cli import main; main()", "tsa", "serve", "--port", "0"],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline, url = time.monotonic() + 60, None
        assert proc.stderr is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            found = re.search(r"time-stamping authority on (http://\S+)", line)
            url = found.group(1) if found else None
            assert line or proc.poll() is None, "tsa serve exited"
        assert url is not None
        assert requests.get(url.rsplit("/", 1)[0] + "/healthz", timeout=10).text == "ok\n"
        assert len(asyncio.run(HTTPTimeStamper(url).async_timestamp(b"\x02" * 32, "sha256")).dump()) > 500
    finally:
        proc.terminate()
        proc.wait(10)
