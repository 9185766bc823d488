"""The QR matrix of the certificate PDF, SVG and PNG: signing.qr.draw's own alphanumeric
encoder must give qrcode's matrix bit for bit (issue 16: ~2 ms of pure-Python
Reed-Solomon per certificate replaced, the code scanned the same)."""

from __future__ import annotations

import random

import pytest

from signing.errors import PayloadTooLarge
from signing.qr import draw
from signing.qr.codec import MAX_TEXT_LENGTH

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def _qrcode_rows(text: str) -> tuple[bytes, ...]:
    return tuple(bytes(map(bool, row)) for row in draw.make_qr(text).modules)


@pytest.mark.parametrize("length", range(0, MAX_TEXT_LENGTH + 1))
def test_every_length_gives_qrcodes_matrix(length: int) -> None:
    rng = random.Random(length)
    for _ in range(2):
        text = "".join(rng.choice(_ALNUM) for _ in range(length))
        assert draw.qr_rows.__wrapped__(text) == _qrcode_rows(text)


def test_every_version_up_to_11_is_used_and_matches() -> None:
    versions = set()
    for length in range(1, MAX_TEXT_LENGTH + 1, 7):
        text = "YW1:" + "9" * max(0, length - 4)
        versions.add(draw.make_qr(text).version)
        assert draw.qr_rows(text) == _qrcode_rows(text)
    assert versions == set(range(1, 12))


def test_qr_matrix_is_qr_rows_as_booleans() -> None:
    text = "YW1:ABC123 $%*+-./:"
    assert draw.qr_matrix(text) == [[bool(m) for m in row] for row in _qrcode_rows(text)]


def test_text_outside_the_alphanumeric_set_still_goes_through_qrcode() -> None:
    text = "yw1:lower case and 中文"
    assert draw.qr_rows(text) == _qrcode_rows(text)


def test_too_long_text_is_refused_as_before() -> None:
    with pytest.raises(PayloadTooLarge):
        draw.qr_rows("YW1:" + "A" * 400)
    with pytest.raises(PayloadTooLarge):
        draw.qr_rows("x" * 300)  # byte mode: version 13
