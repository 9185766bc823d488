"""The whole recipe on the real key store: keys.pki agency signer -> QR + PDF -> verify."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from keys import pki
from keys.config import KeySettings
from keys.keyring import Keyring, open_keyring
from signing.pades import sign_pdf, verify_pdf
from signing.pdf import render_certificate_pdf
from signing.qr import (
    TrustedIssuer,
    TrustList,
    decode_qr_payload,
    encode_qr_payload,
    qr_kid,
    verify_qr_payload,
)

from .demo import claims, document

USCC = "91350100M000100Y43"


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    home = tmp_path / "home"
    ring = open_keyring(KeySettings(home=home, kek_file=home / "kek.bin"), reload_seconds=0)
    pki.init_region(
        ring, region="350100", name="福州市", crl_url="http://127.0.0.1:9/crl/issuing.crl"
    )
    return ring


def test_agency_signer_signs_a_qr_payload_and_a_pdf(keyring: Keyring) -> None:
    signer = pki.issue_signer(keyring, uscc=USCC, name="福州市市场监督管理局")
    today = dt.datetime.now(dt.UTC).date()
    doc = document("business", signer)
    decoded = decode_qr_payload(doc.qr_text)
    assert decoded.kid == qr_kid(signer.certificate)
    trust = TrustList(
        [
            TrustedIssuer.from_certificate(
                signer.certificate,
                uscc=USCC,
                name="福州市市场监督管理局",
                region="350100",
                allowed_types={"YYZZ"},
            )
        ]
    )
    text = encode_qr_payload(
        dataclasses.replace(claims("business", uscc=USCC), issued_at=today), signer
    )
    result = verify_qr_payload(text, trust, now=dt.datetime.now(dt.UTC))
    assert result.valid, result.checks

    signed = sign_pdf(render_certificate_pdf(doc), signer)
    root, crl = pki.region_root(keyring), pki.current_crl(keyring)
    assert verify_pdf(signed, trust_roots=[root], crls=[crl]).valid

    pki.revoke_signer(keyring, uscc=USCC, reason="key_compromise")
    revoked = verify_pdf(signed, trust_roots=[root], crls=[pki.current_crl(keyring)])
    assert not revoked.valid
    assert {c.name for c in revoked.checks if not c.ok} == {"chain_trusted"}
