"""PAdES B-LTA at the signing layer (issue 15 §3): levels, the document timestamp, its renewal.

The TSA is :class:`signing.pades.KeysTimeStamper` in-process, with a TSA
certificate from a ``keys.pki`` region (no HTTP here; tests/certstore covers
the service).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from reportlab.pdfgen import canvas

from keys import pki
from keys.config import KeySettings
from keys.keyring import open_keyring
from signing.errors import SigningError
from signing.pades import (
    KeysTimeStamper,
    add_archive_timestamp,
    last_timestamp,
    make_validation_context,
    sign_pdf,
    validate_long_term,
    verify_pdf,
)

USCC = "91350100M000100Y43"


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("blta") / "home"
    keyring = open_keyring(KeySettings(home=home, kek_file=home / "kek.bin"), reload_seconds=0)
    ca = pki.init_region(keyring, region="350100", name="福州市")
    agency = pki.issue_signer(keyring, uscc=USCC, name="福州市市场监督管理局")
    tsa = pki.issue_tsa(keyring)
    out = io.BytesIO()
    c = canvas.Canvas(out)
    c.drawString(72, 720, "Yiwang B-LTA test")
    c.showPage()
    c.save()
    return {"keyring": keyring, "ca": ca, "agency": agency, "tsa": tsa, "page": out.getvalue()}


def _vc(r: dict[str, Any], **kw: Any) -> Any:
    crls = [pki.current_crl(r["keyring"]), pki.current_root_crl(r["keyring"])]
    return make_validation_context([r["ca"].root], crls=crls, other_certs=r["agency"].chain,
                                   revocation_mode="require", **kw)


def _stamper(r: dict[str, Any]) -> KeysTimeStamper:
    return KeysTimeStamper(r["tsa"].signer, r["tsa"].certificate, r["tsa"].chain)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"level": "B-LTA"}, "needs a timestamp authority"),
        ({"level": "B-C"}, "unknown PAdES level"),
        ({"level": "B-LT", "timestamper_url": "http://127.0.0.1:9/tsa"}, "needs a validation context"),
    ],
)
def test_a_level_without_what_it_needs_is_refused(region: dict[str, Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SigningError, match=message):
        sign_pdf(region["page"], region["agency"], **kwargs)


def test_b_lta_has_a_dss_and_a_document_timestamp_and_verifies(region: dict[str, Any]) -> None:
    signed = sign_pdf(region["page"], region["agency"], level="B-LTA", timestamper=_stamper(region),
                      validation_context=_vc(region))
    result = verify_pdf(signed, trust_roots=[region["ca"].root])
    assert result.valid and result.has_validation_data and result.timestamp_valid
    reader = PdfFileReader(io.BytesIO(signed))
    assert len(reader.embedded_timestamp_signatures) == 1
    last = last_timestamp(signed)
    assert last is not None and last.kind == "document" and last.tsa_certificate == region["tsa"].certificate
    assert validate_long_term(signed, trust_roots=[region["ca"].root], crls=[pki.current_crl(region["keyring"])]).valid
    # B-T carries only the signature timestamp: last_timestamp names that one.
    bt = sign_pdf(region["page"], region["agency"], level="B-T", timestamper=_stamper(region))
    info = last_timestamp(bt)
    assert info is not None and info.kind == "signature" and info.document_timestamps == 0


def test_an_archive_timestamp_is_an_incremental_update_that_keeps_the_signature(region: dict[str, Any]) -> None:
    signed = sign_pdf(region["page"], region["agency"], level="B-LTA", timestamper=_stamper(region),
                      validation_context=_vc(region))
    renewed = add_archive_timestamp(signed, validation_context=_vc(region), timestamper=_stamper(region))
    assert renewed.startswith(signed)
    assert len(PdfFileReader(io.BytesIO(renewed)).embedded_timestamp_signatures) == 2
    assert verify_pdf(renewed, trust_roots=[region["ca"].root]).valid


def test_an_archive_timestamp_is_refused_once_the_last_tsa_certificate_has_expired(
    region: dict[str, Any], tmp_path: Path
) -> None:
    signed = sign_pdf(region["page"], region["agency"], level="B-LTA", timestamper=_stamper(region),
                      validation_context=_vc(region))
    too_late = region["tsa"].certificate.not_valid_after_utc + dt.timedelta(days=1)
    with pytest.raises(SigningError, match="does not validate"):
        add_archive_timestamp(signed, validation_context=_vc(region, moment=too_late), timestamper=_stamper(region))
