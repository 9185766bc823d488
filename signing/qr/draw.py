"""Drawing a QR payload: the QR code (``qrcode``) and its SVG, PNG and module matrix.

Level M, a fixed mask, the smallest version, one alphanumeric segment; never
above version 11 (:data:`signing.qr.codec.MAX_QR_VERSION`). The certificate
PDF draws the same matrix as vector paths (:mod:`signing.pdf`).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterator, Sequence

import qrcode
import qrcode.constants
import qrcode.exceptions
import qrcode.util

from ..errors import PayloadTooLarge
from .codec import MAX_QR_VERSION, MAX_TEXT_LENGTH

__all__ = ["QR_MASK_PATTERN", "make_qr", "qr_matrix", "qr_svg", "qr_png", "dark_runs"]

QR_MASK_PATTERN = 2
"""Fixed mask: choosing the best of 8 costs about 15 ms per code (docs/design.md)."""


def _alnum_version(length: int) -> int:
    """Smallest QR version holding ``length`` alphanumeric characters in one
    segment at level M (ISO/IEC 18004 §7.4.4; the count field is 9 bits up to
    version 9, 11 bits from version 10). Saves qrcode's sizing pass."""
    limits = qrcode.util.BIT_LIMIT_TABLE[qrcode.constants.ERROR_CORRECT_M]
    data_bits = 11 * (length // 2) + 6 * (length % 2)
    for version in range(1, 41):
        count_bits = 9 if version <= 9 else 11 if version <= 26 else 13
        if 4 + count_bits + data_bits <= limits[version]:
            return version
    return 41


def make_qr(text: str) -> qrcode.QRCode:
    """The QR code for ``text``: level M, fixed mask, smallest version, one
    alphanumeric segment (byte mode for other text). Raises
    :class:`PayloadTooLarge` above version 11."""
    if len(text) > MAX_TEXT_LENGTH:
        raise PayloadTooLarge(
            f"{len(text)} characters do not fit QR version {MAX_QR_VERSION} at level M "
            f"(at most {MAX_TEXT_LENGTH})",
            length=len(text),
            limit=MAX_TEXT_LENGTH,
        )
    alnum = _ALNUM_SET.issuperset(text)
    version = _alnum_version(len(text)) if alnum else None
    code = qrcode.QRCode(
        version=version,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=4,
        mask_pattern=QR_MASK_PATTERN,
    )
    mode = qrcode.util.MODE_ALPHA_NUM if alnum else qrcode.util.MODE_8BIT_BYTE
    code.add_data(qrcode.util.QRData(text.encode("utf-8"), mode=mode, check_data=False))
    try:
        code.make(fit=version is None)
    except qrcode.exceptions.DataOverflowError:
        raise PayloadTooLarge(
            "the text does not fit any QR code", length=len(text), limit=MAX_TEXT_LENGTH
        ) from None
    if code.version > MAX_QR_VERSION:
        raise PayloadTooLarge(
            f"the text needs QR version {code.version}; at most {MAX_QR_VERSION} is allowed",
            length=len(text),
            limit=MAX_TEXT_LENGTH,
        )
    return code


_ALNUM_SET = frozenset(qrcode.util.ALPHA_NUM.decode("ascii"))


@functools.lru_cache(maxsize=64)
def _matrix(text: str) -> tuple[tuple[bool, ...], ...]:
    return tuple(tuple(map(bool, row)) for row in make_qr(text).modules)


def qr_matrix(text: str) -> list[list[bool]]:
    """The module matrix of :func:`make_qr` without the quiet zone (``True`` = dark).

    The last few matrices are cached: a certificate's QR is drawn into the
    PDF and often fetched as PNG or SVG right after.
    """
    return [list(row) for row in _matrix(text)]


_DARK_RUN = re.compile(rb"\x01+")


def dark_runs(row: Sequence[bool]) -> Iterator[tuple[int, int]]:
    """``(start, length)`` of each run of dark modules in a row.

    The row as bytes (0/1) searched by a regular expression: the scan runs in
    C, about ten times faster than a Python loop over ~900 runs per code.
    """
    for m in _DARK_RUN.finditer(bytes(row)):
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
