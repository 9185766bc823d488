# ruff: noqa: S603  (tests run fixed local tools: pdffonts, pdftoppm, zbarimg, certutil, pdfsig)
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from signing.errors import PayloadTooLarge, PdfError
from signing.pdf import FONT_NAME, render_certificate_pdf
from signing.qr import decode_qr_payload, make_qr

from .conftest import Pki
from .demo import KINDS, document


@pytest.mark.parametrize("kind", KINDS)
def test_renders_a_one_page_pdf_with_the_qr_as_vectors(pki: Pki, kind: str) -> None:
    pdf = render_certificate_pdf(document(kind, pki.signer))
    assert pdf.startswith(b"%PDF-")
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    assert len(list(PdfFileReader(io.BytesIO(pdf)).root["/Pages"]["/Kids"])) == 1
    assert b"/Subtype /Image" not in pdf  # no bitmap anywhere: the QR is drawn as rectangles
    assert FONT_NAME.encode() in pdf


def test_rendering_is_reproducible(pki: Pki) -> None:
    doc = document("resident", pki.signer)
    assert render_certificate_pdf(doc) == render_certificate_pdf(doc)


def test_qr_that_does_not_fit_is_refused(pki: Pki) -> None:
    doc = document("resident", pki.signer, qr_text="YW1:" + "A" * 500)
    with pytest.raises(PayloadTooLarge):
        render_certificate_pdf(doc)


def test_missing_font_is_a_clear_error(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(PdfError, match="fonts-wqy-zenhei|cannot read"):
        render_certificate_pdf(document("resident", pki.signer), font_path=tmp_path / "missing.ttc")


def test_content_that_cannot_fit_the_page_is_refused(pki: Pki) -> None:
    rows = tuple((f"字段{i}", f"Field {i}", "很长的内容" * 40) for i in range(12))
    with pytest.raises(PdfError, match="do not fit"):
        render_certificate_pdf(document("resident", pki.signer, fields=rows))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.mark.external
def test_pdffonts_shows_the_cjk_font_embedded_as_a_subset(pki: Pki, tmp_path: Path) -> None:
    out = tmp_path / "c.pdf"
    out.write_bytes(render_certificate_pdf(document("business", pki.signer)))
    listing = subprocess.run(
        [_tool("pdffonts"), str(out)], capture_output=True, text=True, check=True
    ).stdout
    rows = [line for line in listing.splitlines() if FONT_NAME in line]
    assert rows, listing
    for row in rows:
        assert re.match(r"^[A-Z]{6}\+" + FONT_NAME, row), row  # subset tag
        assert re.search(r"\byes\s+yes\s+yes\b", row), row  # emb sub uni
    assert all(FONT_NAME in line for line in listing.splitlines()[2:]), (
        listing
    )  # no unembedded base-14 font


@pytest.mark.external
def test_pdftotext_reads_the_chinese_text(pki: Pki, tmp_path: Path) -> None:
    out = tmp_path / "c.pdf"
    doc = document("business", pki.signer)
    out.write_bytes(render_certificate_pdf(doc))
    text = subprocess.run(
        [_tool("pdftotext"), str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "营业执照" in text and "Business Licence" in text
    assert doc.paper_serial in text
    assert doc.holder_name[:10] in text


@pytest.mark.external
@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_zbarimg_decodes_the_qr_from_a_150_dpi_rendering(
    pki: Pki, tmp_path: Path, kind: str
) -> None:
    doc = document(kind, pki.signer)
    (tmp_path / "c.pdf").write_bytes(render_certificate_pdf(doc))
    subprocess.run(
        [
            _tool("pdftoppm"),
            "-r",
            "150",
            "-png",
            "-singlefile",
            str(tmp_path / "c.pdf"),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    scanned = subprocess.run(
        [_tool("zbarimg"), "--raw", "-q", str(tmp_path / "page.png")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert scanned == doc.qr_text
    assert decode_qr_payload(scanned).claims.holder_name == doc.holder_name
    assert make_qr(scanned).version <= 11


@pytest.mark.external
def test_zbarimg_decodes_the_qr_png(pki: Pki, tmp_path: Path) -> None:
    from signing.qr import qr_png

    text = document("business", pki.signer).qr_text
    (tmp_path / "q.png").write_bytes(qr_png(text, box_size=4))
    scanned = subprocess.run(
        [_tool("zbarimg"), "--raw", "-q", str(tmp_path / "q.png")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert scanned == text


def test_explicit_font_path_is_used(pki: Pki) -> None:
    from signing.pdf import FONT_CANDIDATES

    path = next((p for p in FONT_CANDIDATES if p.is_file()), None)
    if path is None:
        pytest.skip("no CJK font installed")
    doc = document("diploma", pki.signer)
    assert render_certificate_pdf(doc, font_path=path) == render_certificate_pdf(doc)
