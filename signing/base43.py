"""Base43: RFC 9285 (Base45) with space and ``%`` removed from the alphabet.

Why not Base45 itself: phone camera apps hand scanned text to browsers and
messengers that turn ``%`` into URL escapes and trim or collapse spaces
(issue 5: "mind % and spaces"). Why not Base32: a QR code in alphanumeric
mode stores 5.5 bits per character, so Base32 spends 8.8 bits per byte while
Base43 spends 8.25 — about 15 more payload bytes fit into a version 11 code.

The algorithm is Base45's (RFC 9285 §4) with base 43: each 2-byte group
``n = a*256 + b`` becomes three characters ``c, d, e`` with
``n = c + d*43 + e*43*43`` (43**3 = 79507 >= 65536); a final odd byte becomes
two characters (43**2 = 1849 >= 256). Decoding is strict: characters outside
the alphabet, a dangling single character and out-of-range groups are
rejected, so every byte string has exactly one encoding.
"""

from __future__ import annotations

import struct

__all__ = ["ALPHABET", "b43encode", "b43decode", "Base43Error"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$*+-./:"
"""The QR alphanumeric set (ISO/IEC 18004 §7.4.4) minus space and ``%``, in Base45 order."""

_B = 43
_INVALID = 0xFF
# bytes.translate table: ASCII code -> digit value, 0xFF for anything else.
_TABLE = bytes(ALPHABET.index(chr(i)) if chr(i) in ALPHABET else _INVALID for i in range(256))


class Base43Error(ValueError):
    """Not a canonical Base43 string."""


def b43encode(data: bytes) -> str:
    alphabet = ALPHABET
    out: list[str] = []
    for n in struct.unpack_from(f">{len(data) // 2}H", data):
        n, c = divmod(n, _B)
        e, d = divmod(n, _B)
        out.append(alphabet[c] + alphabet[d] + alphabet[e])
    if len(data) % 2:
        e_, c_ = divmod(data[-1], _B)
        out.append(ALPHABET[c_] + ALPHABET[e_])
    return "".join(out)


# Each digit of a group gets its own 24-bit slot: a group [c, d, e] is the 72-bit
# number c*2**48 + d*2**24 + e. Multiplying by _WEIGHTS puts c + 43*d + 1849*e
# (at most 79506) into the group's top slot; the other partial products land
# in the two low slots of the same group or of the next more significant one
# and stay below 2**24 there, so nothing carries into a top slot.
_WEIGHTS = 1 + 43 * (1 << 24) + 1849 * (1 << 48)


def _combine_groups(v: bytes, n: int) -> bytes:
    """``c + 43*d + 1849*e`` for each of the first ``n`` 3-digit groups of ``v``, as
    2-byte big-endian values; one big-integer multiplication instead of a Python
    loop (see ``_WEIGHTS``). A group above 0xFFFF is non-canonical and refused.
    """
    slots = bytearray(9 * n)
    slots[2::3] = v[: 3 * n]
    # 7 spare bytes on top: the highest group's spill-over into the next slots.
    packed = (int.from_bytes(slots, "big") * _WEIGHTS).to_bytes(9 * n + 7, "big")
    if packed[7::9].count(0) != n:
        raise Base43Error("a 3-character group out of range")
    out = bytearray(2 * n)
    out[0::2] = packed[8::9]
    out[1::2] = packed[9::9]
    return bytes(out)


def b43decode(text: str) -> bytes:
    """Decode strictly (see the module docstring). Runs at C speed apart from
    a handful of calls: on a busy verifier it runs for every scan."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise Base43Error("a character outside the Base43 alphabet") from None
    v = raw.translate(_TABLE)
    if _INVALID in v:
        raise Base43Error("a character outside the Base43 alphabet")
    full, rest = divmod(len(v), 3)
    if rest == 1:
        raise Base43Error("a dangling single character at the end")
    end = full * 3
    out = _combine_groups(v, full) if full else b""
    if rest == 2:
        n = v[end] + v[end + 1] * _B
        if n > 0xFF:
            raise Base43Error("a 2-character group out of range")
        out += bytes((n,))
    return out
