"""The certificate PDF: one A4 page drawn with reportlab, ready to be signed.

The same PDF is the electronic certificate and the print copy (issue 5), so
it carries everything the paper does: titles in Chinese and English, holder,
issuer, fields, dates, the certificate identifier, the paper copy's serial
number and the QR code.

* Chinese text is set in WenQuanYi Zen Hei, embedded as a TrueType subset
  (reportlab embeds TrueType only, not the CFF-flavoured Noto CJK OpenType
  fonts); ``pdffonts`` shows it ``emb yes`` and ``sub yes``.
* The QR code is vector rectangles (runs of dark modules merged per row),
  not a bitmap, at level M (docs/design.md "QR codes"); zxing-cpp's encoder
  picks the mask by its penalty in C++, where ``qrcode`` had to fix it.
* The layout has fixed positions (no flowables), so rendering is a few
  milliseconds of drawing plus the font subset; ``invariant=1`` keeps
  reportlab from writing timestamps and random IDs, so the same document
  renders to the same bytes.
"""

from __future__ import annotations

import datetime as _dt
import functools
import io
import logging
import re
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfdoc, pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from .errors import PdfError
from .qr.draw import qr_rows

__all__ = [
    "CertificateDocument",
    "render_certificate_pdf",
    "register_cjk_font",
    "FONT_NAME",
    "FONT_CANDIDATES",
]

logger = logging.getLogger(__name__)

FONT_NAME = "WenQuanYiZenHei"
FONT_CANDIDATES: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path(__file__).with_name("fonts") / "wqy-zenhei.ttc",
)
"""Where the CJK font is looked for (Debian's ``fonts-wqy-zenhei`` first)."""

# Binary (Flate-only) streams: reportlab's default ASCII85 layer makes files
# 25 % larger and costs ~5 ms per page in pure Python. Process-wide setting.
rl_config.useA85 = 0


def _deflate_fast(text: str | bytes) -> bytes:
    return zlib.compress(text.encode("utf8") if isinstance(text, str) else text, 1)


# zlib level 1 instead of reportlab's default 6 for the page and the font subset:
# ~0.45 ms less per certificate (a tenth of the page's rendering, issue 16) for
# ~1.5 KB (~6 %) more per file. Process-wide as the setting above: reportlab's
# one Flate filter object, which only this module uses.
pdfdoc.PDFZCompress.encode = _deflate_fast

_font_lock = threading.Lock()
_font_registered: str | None = None
_font_path: Path | None = None

_PAGE_W, _PAGE_H = A4
_MARGIN = 36.0
_LABEL_X = 72.0
_VALUE_X = 215.0
_VALUE_W = _PAGE_W - _VALUE_X - 72.0
_ROWS_TOP = 690.0
_ROWS_BOTTOM = 270.0
_QR_SIZE = 136.0
_DARK_RUN = re.compile(rb"\x01+")


@dataclass(frozen=True)
class CertificateDocument:
    """Everything printed on a certificate page. Built by certstore from the record."""

    title_zh: str
    """Certificate type name in Chinese, e.g. ``营业执照``."""
    title_en: str
    holder_name: str
    holder_code_masked: str
    """As printed: masked ID number for a person, credit code for a company."""
    issuer_name: str
    identifier: str
    """The certificate identifier (证照标识)."""
    paper_serial: str
    """Serial number printed on the paper copy."""
    qr_text: str
    """The signed ``YW1:`` payload drawn as the QR code."""
    issued_at: _dt.date
    valid_from: _dt.date
    valid_until: _dt.date | None = None
    fields: tuple[tuple[str, str, str], ...] = ()
    """``(label_zh, label_en, value)`` rows, in display order."""
    holder_label_zh: str = "持证人"
    holder_label_en: str = "Holder"
    holder_code_label_zh: str = "证件号码"
    holder_code_label_en: str = "ID number"
    issuer_uscc: str | None = None
    accent: str = "#1F4E79"
    """Frame and rule colour (hex), from the type's layout."""
    extra_note: str | None = None
    """A short line under the title (e.g. "副本 Duplicate")."""

    def rows(self) -> list[tuple[str, str, str]]:
        until = (
            f"{self.valid_from.isoformat()} 至 {self.valid_until.isoformat()}"
            if self.valid_until
            else f"{self.valid_from.isoformat()} 起长期有效 (no end date)"
        )
        return [
            (self.holder_label_zh, self.holder_label_en, self.holder_name),
            (self.holder_code_label_zh, self.holder_code_label_en, self.holder_code_masked),
            *self.fields,
            ("发证日期", "Date of issue", self.issued_at.isoformat()),
            ("有效期限", "Period of validity", until),
        ]


@dataclass
class _Style:
    value_size: float = 12.0
    line_gap: float = 4.0
    extra: dict[str, float] = field(default_factory=dict)


def register_cjk_font(path: str | Path | None = None) -> str:
    """Register the CJK TrueType font once per process; returns its reportlab name.

    Reading the font (a 17 MB collection) takes ~150 ms, so it happens once;
    an explicit ``path`` different from the registered one registers that
    font instead.
    """
    global _font_registered, _font_path
    wanted = Path(path) if path is not None else None
    if _font_registered is not None and (wanted is None or wanted == _font_path):
        return _font_registered
    with _font_lock:
        if _font_registered is not None and (wanted is None or wanted == _font_path):
            return _font_registered
        candidates = (Path(path),) if path is not None else FONT_CANDIDATES
        for candidate in candidates:
            if candidate.is_file():
                try:
                    font = TTFont(FONT_NAME, str(candidate), subfontIndex=0)
                except Exception as exc:
                    raise PdfError(f"cannot read the CJK font {candidate}: {exc}") from exc
                # Every page's subset reads the font's tables (glyf is ~10 MB
                # of this collection); reportlab copies them out of the file
                # image on each read. They never change: copy each once.
                font.face.get_table = functools.lru_cache(maxsize=None)(font.face.get_table)
                pdfmetrics.registerFont(font)
                _font_registered = FONT_NAME
                _font_path = candidate
                logger.info("registered CJK font %s", candidate)
                return FONT_NAME
        raise PdfError(
            "no CJK TrueType font found; install Debian's fonts-wqy-zenhei "
            f"(looked in {', '.join(str(c) for c in candidates)})"
        )


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width``.

    Chinese has no spaces: a line may break after any character; Latin words
    are kept whole when they fit.
    """
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for token in _tokens(paragraph):
            candidate = line + token
            if line and pdfmetrics.stringWidth(candidate, font, size) > width:
                lines.append(line.rstrip())
                line = token.lstrip()
                while pdfmetrics.stringWidth(line, font, size) > width and len(line) > 1:
                    cut = len(line) - 1
                    while cut > 1 and pdfmetrics.stringWidth(line[:cut], font, size) > width:
                        cut -= 1
                    lines.append(line[:cut])
                    line = line[cut:]
            else:
                line = candidate
        lines.append(line)
    return lines


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    word = ""
    for ch in text:
        if ch.isascii() and not ch.isspace():
            word += ch
            continue
        if word:
            tokens.append(word)
            word = ""
        tokens.append(ch)
    if word:
        tokens.append(word)
    return tokens


def _draw_qr(c: canvas.Canvas, text: str, x: float, y: float, size: float) -> None:
    """Draw the QR code as filled rectangles, one per run of dark modules.

    The rectangles are written as raw ``re`` operators in module units under
    one ``cm`` transform: integer coordinates keep the content stream small
    and skip reportlab's slow per-number float formatting (~900 runs, found
    by a regular expression over each row's bytes, as ``qr.draw.dark_runs`` does).
    """
    rows = qr_rows(text)
    n = len(rows)
    module = size / (n + 8)  # 4-module quiet zone on each side
    c.setFillColor(colors.white)
    c.rect(x, y, size, size, stroke=0, fill=1)
    ops = [f"q 0 0 0 rg {module:.5f} 0 0 {module:.5f} {x + 4 * module:.3f} {y + 4 * module:.3f} cm"]
    for row_index, row in enumerate(rows):
        row_y = n - row_index - 1
        ops += [f"{m.start()} {row_y} {m.end() - m.start()} 1 re" for m in _DARK_RUN.finditer(row)]
    ops.append("f Q")
    c.addLiteral("\n".join(ops))


def render_certificate_pdf(
    doc: CertificateDocument, *, font_path: str | Path | None = None
) -> bytes:
    """Render ``doc`` to PDF bytes (one A4 page, unsigned).

    Raises :class:`~signing.errors.PayloadTooLarge` if the QR text does not
    fit version 11, :class:`PdfError` if the font is missing or the content
    does not fit the page.
    """
    font = register_cjk_font(font_path)
    accent = colors.HexColor(doc.accent)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=1, pageCompression=1, initialFontName=font)
    c.setTitle(f"{doc.title_zh} {doc.title_en}")
    c.setAuthor(doc.issuer_name)
    c.setSubject(doc.identifier)
    c.setCreator("Yiwang signing.pdf")
    c.setProducer("Yiwang")

    # Frame.
    c.setStrokeColor(accent)
    c.setLineWidth(3)
    c.rect(_MARGIN, _MARGIN, _PAGE_W - 2 * _MARGIN, _PAGE_H - 2 * _MARGIN, stroke=1, fill=0)
    c.setLineWidth(0.8)
    c.rect(
        _MARGIN + 6,
        _MARGIN + 6,
        _PAGE_W - 2 * _MARGIN - 12,
        _PAGE_H - 2 * _MARGIN - 12,
        stroke=1,
        fill=0,
    )

    # Titles.
    c.setFillColor(accent)
    c.setFont(font, 30)
    c.drawCentredString(_PAGE_W / 2, 752, doc.title_zh)
    c.setFont(font, 14)
    c.drawCentredString(_PAGE_W / 2, 728, doc.title_en)
    if doc.extra_note:
        c.setFont(font, 9)
        c.drawCentredString(_PAGE_W / 2, 712, doc.extra_note)
    c.setLineWidth(1.2)
    c.line(_LABEL_X, 706, _PAGE_W - _LABEL_X, 706)

    # Rows: label (zh over en) and wrapped value.
    rows = doc.rows()
    style = _Style()
    for size in (12.0, 11.0, 10.0, 9.0, 8.0):
        style.value_size = size
        wrapped = [_wrap(value, font, size, _VALUE_W) for _, _, value in rows]
        height = sum(max(len(lines) * (size + style.line_gap), 26.0) + 10.0 for lines in wrapped)
        if _ROWS_TOP - height >= _ROWS_BOTTOM:
            break
    else:
        raise PdfError(
            "the certificate's fields do not fit on one page; shorten the longest values"
        )
    y = _ROWS_TOP
    c.setFillColor(colors.black)
    for (label_zh, label_en, _value), lines in zip(rows, wrapped, strict=True):
        c.setFont(font, 11)
        c.setFillColor(colors.black)
        c.drawString(_LABEL_X, y - 11, label_zh)
        c.setFont(font, 7.5)
        c.setFillColor(colors.HexColor("#555555"))
        c.drawString(_LABEL_X, y - 22, label_en)
        c.setFillColor(colors.black)
        c.setFont(font, style.value_size)
        line_y = y - style.value_size
        for line in lines:
            c.drawString(_VALUE_X, line_y, line)
            line_y -= style.value_size + style.line_gap
        y -= max(len(lines) * (style.value_size + style.line_gap), 26.0) + 10.0

    # Bottom block: issuer, identifier and paper serial at the left, QR at the right.
    qr_x = _PAGE_W - 72 - _QR_SIZE
    qr_y = 92.0
    _draw_qr(c, doc.qr_text, qr_x, qr_y, _QR_SIZE)
    c.setFont(font, 8)
    c.setFillColor(colors.black)
    c.drawCentredString(qr_x + _QR_SIZE / 2, qr_y - 11, "扫码验证 Scan to verify")

    c.setStrokeColor(accent)
    c.setLineWidth(0.6)
    c.line(_LABEL_X, 246, _PAGE_W - _LABEL_X, 246)
    block_w = qr_x - _LABEL_X - 16
    y = 224.0
    issuer = doc.issuer_name + (f"（{doc.issuer_uscc}）" if doc.issuer_uscc else "")
    for label_zh, label_en, value, size in (
        ("发证机关", "Issuing authority", issuer, 10.5),
        ("证照标识", "Certificate identifier", doc.identifier, 8.0),
        ("纸质证书编号", "Paper certificate serial number", doc.paper_serial, 10.5),
    ):
        c.setFont(font, 8)
        c.setFillColor(colors.HexColor("#555555"))
        c.drawString(_LABEL_X, y, f"{label_zh} {label_en}")
        c.setFillColor(colors.black)
        c.setFont(font, size)
        for line in _wrap(value, font, size, block_w)[:2]:
            y -= size + 3
            c.drawString(_LABEL_X, y, line)
        y -= 14
    c.setFont(font, 7)
    c.setFillColor(colors.HexColor("#555555"))
    c.drawString(
        _LABEL_X,
        60,
        "本证照附电子签名，可离线验证二维码与PDF签名。 Electronically signed; the QR code and the PDF signature verify offline.",
    )
    c.showPage()
    c.save()
    return buf.getvalue()
