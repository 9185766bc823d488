"""Bounds a PDF must stay within before pyHanko parses it (issue 19 finding 3).

Counted on the raw bytes, linear in the size: an anonymous upload that is far
larger or more involved than a certificate PDF is refused in milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import PdfError

__all__ = ["PdfLimits", "PdfTooComplex", "check_pdf_bounds"]


class PdfTooComplex(PdfError):
    """A PDF is refused before parsing: larger or more involved than a certificate PDF ever is.

    ``what`` names the bound (``size``, ``revisions``, ``objects``,
    ``object_streams``); ``found`` and ``limit`` are the counts.
    """

    def __init__(self, message: str, *, what: str, found: int, limit: int) -> None:
        super().__init__(message)
        self.what = what
        self.found = found
        self.limit = limit


@dataclass(frozen=True)
class PdfLimits:
    """Bounds checked with byte counts before pyHanko parses anything (issue 19 finding 3).

    A certificate PDF is about 40 KB with 2 revisions (the page, the signature)
    and under 40 objects; validation data and a document timestamp add one or
    two revisions. Parsing cost grows with each bound (a 9.9 MB file of 85,000
    chained cross-reference sections took 14 s of CPU), so they are kept
    small; an anonymous upload should cost milliseconds to refuse.
    """

    max_bytes: int = 2 * 1024 * 1024
    """Whole file."""
    max_revisions: int = 8
    """Incremental updates: ``startxref``, ``%%EOF``, ``/Prev`` and cross-reference sections each count."""
    max_objects: int = 2000
    """Indirect objects (``endobj``), and objects announced in each object stream (``/N``)."""
    max_object_streams: int = 4


_HEX_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_N_VALUE = re.compile(rb"/N\s*(\d{1,12})")


def check_pdf_bounds(pdf: bytes, limits: PdfLimits = PdfLimits()) -> None:
    """Raise :class:`PdfTooComplex` if ``pdf`` exceeds ``limits``; linear in its size, no parsing.

    Counts may overestimate (a keyword inside a compressed stream counts too):
    a false refusal of an odd file is acceptable, missing a chain is not.
    Names written with ``#xx`` escapes (``/P#72ev`` is ``/Prev``, ISO 32000-1
    §7.3.5) are counted after unescaping.
    """

    def refuse(what: str, found: int, limit: int, text: str) -> PdfTooComplex:
        return PdfTooComplex(
            f"the PDF has {text} ({found}; a certificate PDF has at most {limit})",
            what=what,
            found=found,
            limit=limit,
        )

    if len(pdf) > limits.max_bytes:
        raise refuse("size", len(pdf), limits.max_bytes, "too many bytes")
    data = _HEX_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), pdf) if b"#" in pdf else pdf
    revisions = max(
        data.count(b"startxref"),
        data.count(b"%%EOF"),
        data.count(b"/Prev") + 1,
        data.count(b"xref") - data.count(b"startxref"),
        data.count(b"/XRef") - data.count(b"/XRefStm"),
    )
    if revisions > limits.max_revisions:
        raise refuse(
            "revisions", revisions, limits.max_revisions, "too many revisions (incremental updates)"
        )
    objects = data.count(b"endobj")
    if objects > limits.max_objects:
        raise refuse("objects", objects, limits.max_objects, "too many objects")
    streams = data.count(b"/ObjStm")
    if streams > limits.max_object_streams:
        raise refuse(
            "object_streams", streams, limits.max_object_streams, "too many object streams"
        )
    if streams:
        announced = max((int(n) for n in _N_VALUE.findall(data)), default=0)
        if announced > limits.max_objects:
            raise refuse(
                "objects", announced, limits.max_objects, "an object stream with too many objects"
            )
