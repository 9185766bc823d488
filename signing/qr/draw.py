"""Drawing a QR payload: the QR code (``qrcode``) and its SVG, PNG and module matrix.

Level M, a fixed mask, the smallest version, one alphanumeric segment; never
above version 11 (:data:`signing.qr.codec.MAX_QR_VERSION`). The certificate
PDF draws the same matrix as vector paths (:mod:`signing.pdf`).
"""

from __future__ import annotations

import functools
import io
import operator
import re
from collections.abc import Iterator, Sequence

import qrcode
import qrcode.base
import qrcode.constants
import qrcode.exceptions
import qrcode.util

from ..errors import PayloadTooLarge
from .codec import MAX_QR_VERSION, MAX_TEXT_LENGTH

__all__ = ["QR_MASK_PATTERN", "make_qr", "qr_matrix", "qr_rows", "qr_svg", "qr_png", "dark_runs"]

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


class _Layout:
    """What an alphanumeric code of one version shares with every other: the modules of
    the empty code (function patterns, format and version information, the mask over the
    data area) and the order in which data bits fill the data area.

    Taken from ``qrcode`` itself (its ``makeImpl`` with no data, and its ``map_data``
    walk), so :func:`_alnum_rows` produces ``qrcode``'s matrix bit for bit
    (tests/signing/test_qr_fast.py compares them) while the per-code work is a few
    integer and byte operations run in C instead of ~2 ms of pure-Python
    Reed-Solomon arithmetic and module placement.
    """

    def __init__(self, version: int) -> None:
        error = qrcode.constants.ERROR_CORRECT_M
        taken: list[list[bool]] = []

        class _Probe(qrcode.QRCode):  # type: ignore[misc]
            def map_data(self, data: list[int], mask_pattern: int) -> None:
                taken.extend([cell is not None for cell in row] for row in self.modules)
                super().map_data(data, mask_pattern)

        probe = _Probe(version=version, error_correction=error, border=0, mask_pattern=QR_MASK_PATTERN)
        probe.data_cache = []  # no data bits: the data area holds the mask alone
        probe.makeImpl(False, QR_MASK_PATTERN)
        n = probe.modules_count
        self.size = n
        self.empty = int.from_bytes(bytes(cell for row in probe.modules for cell in row), "big")
        self.blocks = [(b.data_count, b.total_count - b.data_count) for b in qrcode.base.rs_blocks(version, error)]
        self.data_bytes = sum(d for d, _ in self.blocks)
        self.count_bits = qrcode.util.length_in_bits(qrcode.util.MODE_ALPHA_NUM, version)
        codeword_bits = 8 * sum(d + e for d, e in self.blocks)
        # map_data's walk: column pairs from the right, up and down in turn, skipping
        # the function patterns and the vertical timing column.
        order: list[int] = []
        row, step = n - 1, -1
        for col in range(n - 1, 0, -2):
            if col <= 6:
                col -= 1
            while True:
                for c in (col, col - 1):
                    if not taken[row][c]:
                        order.append(row * n + c)
                row += step
                if row < 0 or row >= n:
                    row -= step
                    step = -step
                    break
        # Every module takes the data bit at its walk position; function patterns and the
        # remainder bits past the codewords take the constant zero at index codeword_bits.
        gather = [codeword_bits] * (n * n)
        for k, position in enumerate(order[:codeword_bits]):
            gather[position] = k
        self.gather = operator.itemgetter(*gather)
        self.rs = {e: _rs_table(e) for _, e in self.blocks}


def _rs_table(ec: int) -> list[int]:
    """For each leading byte, the generator polynomial times it, as one integer of ``ec``
    bytes: one Reed-Solomon division step is then a shift, an XOR and a table look-up."""
    exp, log = qrcode.base.EXP_TABLE, qrcode.base.LOG_TABLE
    generator = [1]
    for i in range(ec):
        term = [1, exp[i % 255]]
        product = [0] * (len(generator) + 1)
        for a, ga in enumerate(generator):
            for b, tb in enumerate(term):
                if ga and tb:
                    product[a + b] ^= exp[(log[ga] + log[tb]) % 255]
        generator = product
    table = [0]
    for f in range(1, 256):
        table.append(int.from_bytes(bytes(exp[(log[g] + log[f]) % 255] if g else 0 for g in generator[1:]), "big"))
    return table


@functools.lru_cache(maxsize=MAX_QR_VERSION)
def _layout(version: int) -> _Layout:
    return _Layout(version)


_ALNUM_VALUE = {c: i for i, c in enumerate(qrcode.util.ALPHA_NUM.decode("ascii"))}
_BITS = bytes.maketrans(b"01", b"\x00\x01")
_PAD = b"\xec\x11"


def _alnum_rows(text: str, version: int) -> tuple[bytes, ...]:
    """The matrix of :func:`make_qr` for alphanumeric ``text`` at ``version``, one byte per
    module (1 = dark): the same segment, padding, Reed-Solomon blocks, interleaving and
    mask as ``qrcode``."""
    lay = _layout(version)
    value = _ALNUM_VALUE
    acc = (0b0010 << lay.count_bits) | len(text)
    nbits = 4 + lay.count_bits
    pairs = len(text) // 2
    for i in range(0, 2 * pairs, 2):
        acc = (acc << 11) | (value[text[i]] * 45 + value[text[i + 1]])
    nbits += 11 * pairs
    if len(text) % 2:
        acc = (acc << 6) | value[text[-1]]
        nbits += 6
    limit = 8 * lay.data_bytes
    if nbits > limit:
        raise PayloadTooLarge("the text does not fit any QR code", length=len(text), limit=MAX_TEXT_LENGTH)
    terminator = min(limit - nbits, 4)
    acc <<= terminator
    nbits += terminator
    acc <<= -nbits % 8
    nbits += -nbits % 8
    filled = nbits // 8
    data = acc.to_bytes(filled, "big") + (_PAD * lay.data_bytes)[: lay.data_bytes - filled]
    data_blocks: list[bytes] = []
    ec_blocks: list[bytes] = []
    offset = 0
    for count, ec in lay.blocks:
        block = data[offset : offset + count]
        offset += count
        table = lay.rs[ec]
        shift = 8 * (ec - 1)
        mask = (1 << (8 * ec)) - 1
        rem = 0
        for byte in block:
            rem = ((rem << 8) & mask) ^ table[byte ^ (rem >> shift)]
        data_blocks.append(block)
        ec_blocks.append(rem.to_bytes(ec, "big"))
    codewords = bytearray()
    for blocks in (data_blocks, ec_blocks):
        for i in range(max(map(len, blocks))):
            codewords.extend(b[i] for b in blocks if i < len(b))
    bits = format(int.from_bytes(codewords, "big"), f"0{8 * len(codewords)}b").encode().translate(_BITS) + b"\x00"
    n = lay.size
    flat = (int.from_bytes(bytes(lay.gather(bits)), "big") ^ lay.empty).to_bytes(n * n, "big")
    return tuple(flat[i : i + n] for i in range(0, n * n, n))


@functools.lru_cache(maxsize=64)
def qr_rows(text: str) -> tuple[bytes, ...]:
    """The module matrix of :func:`make_qr` without the quiet zone, one ``bytes`` per row
    (1 = dark, 0 = light). Alphanumeric text (every ``YW1:`` payload) is encoded by
    :func:`_alnum_rows`; anything else by ``qrcode``.

    The last few matrices are cached: a certificate's QR is drawn into the
    PDF and often fetched as PNG or SVG right after.
    """
    if len(text) <= MAX_TEXT_LENGTH and _ALNUM_SET.issuperset(text):
        version = _alnum_version(len(text))
        if version <= MAX_QR_VERSION:
            return _alnum_rows(text, version)
    return tuple(bytes(map(bool, row)) for row in make_qr(text).modules)


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
