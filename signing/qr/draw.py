"""Drawing a QR payload: the QR code (zxing-cpp's encoder) and its SVG, PNG and module matrix.

Level M, the smallest version, never above version 11
(:data:`signing.qr.codec.MAX_QR_VERSION`); the encoder picks the segment
modes (one alphanumeric segment for a ``YW1:`` payload) and the mask with
the lowest ISO/IEC 18004 penalty. The certificate PDF draws the same
matrix as vector paths (:mod:`signing.pdf`).

Why zxing-cpp and not ``qrcode`` (which the TOTP enrolment page still
uses): every certificate issued draws one code, and ``qrcode``'s
pure-Python Reed-Solomon and module placement cost ~2 ms of the ~15 ms an
issuance takes, against ~0.7 ms in zxing-cpp's compiled encoder, with the
mask chosen by its penalty rather than fixed (issue 16, docs/performance.md).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import zxingcpp

from ..errors import PayloadTooLarge
from .codec import MAX_QR_VERSION, MAX_TEXT_LENGTH

__all__ = ["QrCode", "make_qr", "qr_matrix", "qr_rows", "qr_svg", "qr_png", "dark_runs"]

ERROR_CORRECTION = "M"
"""ISO/IEC 18004 level M: ~15 % of the codewords may be lost (a creased or stained paper copy)."""


@dataclass(frozen=True)
class QrCode:
    """One encoded QR code: its version and its modules without the quiet zone,
    one ``bytes`` per row (1 = dark, 0 = light)."""

    version: int
    rows: tuple[bytes, ...]

    @property
    def modules_count(self) -> int:
        return len(self.rows)


_DARK_PIXELS = bytes.maketrans(bytes(range(256)), b"\x01" * 128 + b"\x00" * 128)
"""zxing-cpp's image: 0 is black (a dark module), 255 white."""


def _too_long(text: str, detail: str) -> PayloadTooLarge:
    return PayloadTooLarge(detail, length=len(text), limit=MAX_TEXT_LENGTH)


@functools.lru_cache(maxsize=64)
def make_qr(text: str) -> QrCode:
    """The QR code for ``text`` at level M, smallest version. Raises
    :class:`PayloadTooLarge` above version 11.

    The last few codes are cached: a certificate's QR is drawn into the PDF
    and often fetched as PNG or SVG right after.
    """
    if len(text) > MAX_TEXT_LENGTH:
        raise _too_long(text, f"{len(text)} characters do not fit QR version {MAX_QR_VERSION} at level M "
                              f"(at most {MAX_TEXT_LENGTH})")
    try:
        code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=ERROR_CORRECTION)
    except (ValueError, RuntimeError):
        raise _too_long(text, "the text does not fit any QR code") from None
    image = code.to_image(scale=1, add_quiet_zones=False)
    n = image.shape[0]
    version = (n - 17) // 4
    if version > MAX_QR_VERSION:
        raise _too_long(text, f"the text needs QR version {version}; at most {MAX_QR_VERSION} is allowed")
    flat = memoryview(image).tobytes().translate(_DARK_PIXELS)  # type: ignore[arg-type]  # a buffer without stubs
    return QrCode(version, tuple(flat[i : i + n] for i in range(0, n * n, n)))


def qr_rows(text: str) -> tuple[bytes, ...]:
    """The module matrix of :func:`make_qr` without the quiet zone, one ``bytes`` per row (1 = dark)."""
    return make_qr(text).rows


def qr_matrix(text: str) -> list[list[bool]]:
    """The module matrix of :func:`make_qr` without the quiet zone (``True`` = dark)."""
    return [list(map(bool, row)) for row in qr_rows(text)]


_DARK_RUN = re.compile(rb"\x01+")


def dark_runs(row: Sequence[bool]) -> Iterator[tuple[int, int]]:
    """``(start, length)`` of each run of dark modules in a row.

    The row as bytes (0/1) searched by a regular expression: the scan runs in
    C, about ten times faster than a Python loop over ~900 runs per code.
    """
    for m in _DARK_RUN.finditer(row if isinstance(row, bytes) else bytes(row)):
        start, end = m.span()
        yield start, end - start


def qr_svg(text: str, *, module_size: int = 4, border: int = 4) -> str:
    """An SVG document of the QR code: one path, dark runs merged per row."""
    matrix = qr_matrix(text)
    size = (len(matrix) + 2 * border) * module_size
    parts: list[str] = []
    for y, row in enumerate(matrix):
        for x, length in dark_runs(row):
            parts.append(
                f"M{(x + border) * module_size} {(y + border) * module_size}h{length * module_size}v{module_size}h-{length * module_size}z"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/></svg>'
    )


def qr_png(text: str, *, box_size: int = 8, border: int = 4) -> bytes:
    """A black-and-white PNG of the QR code, ``box_size`` pixels per module."""
    from PIL import Image

    matrix = qr_matrix(text)
    n = len(matrix)
    img = Image.new("1", (n + 2 * border, n + 2 * border), 1)
    pixels = img.load()
    assert pixels is not None
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                pixels[x + border, y + border] = 0
    img = img.resize(((n + 2 * border) * box_size,) * 2, Image.Resampling.NEAREST)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False)
    return out.getvalue()
