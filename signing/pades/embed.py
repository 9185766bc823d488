"""A plain PAdES B-B signature appended to a one-page PDF without pyHanko's document model.

pyHanko's ``PdfSigner`` reads the whole file into its object model, walks the
page tree, rebuilds the metadata and writes the update through generic
serialisers: about 2 ms of a certificate's ~10 ms, for an incremental update
that, on the PDFs :mod:`signing.pdf` renders, is always the same seven
objects. :func:`sign_plain_bb` writes those seven objects itself: the page
with its ``/Annots``, the catalog with ``/AcroForm``, the ESIC and ISO 32002
extensions, ``/Version /2.0`` and ``/Metadata``, the info dictionary updated
by pyHanko's own ``update_info_dict``, the ``/AcroForm``, the invisible
signature field, the signature dictionary and pyHanko's XMP stream.

The small objects are parsed and written with pyHanko's ``generic``
classes, so they are serialised as pyHanko serialises them, and the CMS is
:class:`~signing.pades.cms.KeysCmsSigner`'s template (the one pyHanko's
first signature made); tests/signing/test_pades_embed.py checks that both
paths give the same objects and that pyHanko's validator and ``pdfsig``
accept the result. Anything unexpected — more than one revision, a
cross-reference stream, encryption, an existing form, annotations, a
catalog with a version, extensions or metadata, several pages, no CMS
template yet — returns ``None`` and :func:`signing.pades.sign.sign_pdf`
lets pyHanko sign, as before.
"""

# pyHanko's generic object constructors are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import io
import os
import re
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.metadata import model as meta_model
from pyhanko.pdf_utils.metadata import xmp_xml
from pyhanko.pdf_utils.metadata.info import update_info_dict
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.signers import constants

from .cms import KeysCmsSigner

__all__ = ["sign_plain_bb"]

_TAIL = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*\Z")
_XREF_HEAD = re.compile(rb"xref\s+0\s+(\d+)\s+")
_OBJ_HEAD = re.compile(rb"(\d+)\s+0\s+obj\s*")
_REFUSED = (b"/Encrypt", b"/Prev", b"/XRefStm", b"/ObjStm", b"/Type /XRef", b"/AcroForm", b"/Annots", b"/Perms")
_CATALOG_REFUSED = ("/Version", "/Extensions", "/Metadata", "/AcroForm", "/Perms", "/Collection")
_BYTE_RANGE_WIDTH = 60  # "[0 a b c]" padded with spaces, as pyHanko's placeholder is


def _extensions() -> generic.DictionaryObject:
    """The catalog's ``/Extensions`` as pyHanko registers them for an ECDSA PAdES signature."""
    ext = generic.DictionaryObject()
    ext[pdf_name("/ESIC")] = constants.ESIC_EXTENSION_1.as_pdf_object()
    ext[pdf_name("/ISO_")] = generic.ArrayObject([constants.ISO32002.as_pdf_object()])
    return ext


def _parse(raw: bytes, number: int) -> Any:
    head = _OBJ_HEAD.match(raw)
    if head is None or int(head[1]) != number:
        return None
    stream = io.BytesIO(raw)
    stream.seek(head.end())
    return generic.read_object(stream, generic.Reference(number, 0, None))


def _raw_object(pdf: bytes, offset: int) -> bytes:
    return pdf[offset : pdf.index(b"endobj", offset)]


def _ref(obj: Any, key: str) -> int | None:
    value = obj.raw_get(key) if isinstance(obj, generic.DictionaryObject) and key in obj else None
    if isinstance(value, generic.IndirectObject) and value.reference.generation == 0:
        return int(value.reference.idnum)
    return None


def _write(obj: Any) -> bytes:
    out = io.BytesIO()
    obj.write_to_stream(out, None, None)
    return out.getvalue()


def _iref(number: int) -> generic.IndirectObject:
    return generic.IndirectObject(number, 0, None)


# The catalog, page tree and page of every certificate PDF are the same bytes (the
# renderer's layout never changes), so each is parsed and rewritten once per process.
@functools.lru_cache(maxsize=32)
def _new_catalog(raw: bytes, number: int, form_no: int, xmp_no: int) -> tuple[bytes, int] | None:
    """The catalog with the signature's additions, and its ``/Pages`` object number."""
    catalog = _parse(raw, number)
    if (
        not isinstance(catalog, generic.DictionaryObject)
        or catalog.get("/Type") != "/Catalog"
        or any(key in catalog for key in _CATALOG_REFUSED)
    ):
        return None
    pages_no = _ref(catalog, "/Pages")
    if pages_no is None:
        return None
    catalog[pdf_name("/Version")] = pdf_name("/2.0")
    catalog[pdf_name("/AcroForm")] = _iref(form_no)
    catalog[pdf_name("/Extensions")] = _extensions()
    catalog[pdf_name("/Metadata")] = _iref(xmp_no)
    return _write(catalog), pages_no


@functools.lru_cache(maxsize=32)
def _only_page(raw: bytes, number: int) -> int | None:
    """The object number of the single page of a one-page tree."""
    pages = _parse(raw, number)
    kids = pages.get("/Kids") if isinstance(pages, generic.DictionaryObject) else None
    if not isinstance(kids, generic.ArrayObject) or pages.get("/Count") != 1 or len(kids) != 1:
        return None
    kid = kids.raw_get(0)
    return int(kid.reference.idnum) if isinstance(kid, generic.IndirectObject) else None


@functools.lru_cache(maxsize=32)
def _new_page(raw: bytes, number: int, field_no: int) -> bytes | None:
    page = _parse(raw, number)
    if not isinstance(page, generic.DictionaryObject) or page.get("/Type") != "/Page" or "/Annots" in page:
        return None
    page[pdf_name("/Annots")] = generic.ArrayObject([_iref(field_no)])
    return _write(page)


@functools.lru_cache(maxsize=8)
def _sig_entries() -> bytes:
    """The signature dictionary's constant entries after ``/ByteRange``, up to ``/M``."""
    entries = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Sig"),
            pdf_name("/Filter"): pdf_name("/Adobe.PPKLite"),
            pdf_name("/SubFilter"): SigSeedSubFilter.PADES.value,
        }
    )
    return _write(entries)[len(b"<<\n") : -len(b">>")]


@functools.lru_cache(maxsize=8)
def _reason(reason: str) -> bytes:
    return b"/Reason " + _write(pdf_string(reason)) + b"\n"


@functools.lru_cache(maxsize=4)
def _xmp(when: _dt.datetime) -> bytes:
    """pyHanko's XMP stream for a document modified at ``when`` (one per second at most)."""
    meta = meta_model.DocumentMetadata(last_modified=when)
    return _write(xmp_xml.MetadataStream.from_xmp(xmp_xml.update_xmp_with_meta(meta)))


def sign_plain_bb(
    pdf: bytes,
    adapter: KeysCmsSigner,
    *,
    field_name: str,
    reason: str | None,
    bytes_reserved: int,
    now: _dt.datetime | None = None,
) -> bytes | None:
    """``pdf`` with a B-B signature in a new field ``field_name``, or ``None`` when the PDF
    is not the simple one-revision, one-page document this writer handles (or the
    adapter has no CMS template yet): then pyHanko signs.

    Only reading the PDF may decline; the signature itself (the ``keys`` signer) raises
    as it would under pyHanko."""
    if not adapter.has_plain_template() or any(marker in pdf for marker in _REFUSED):
        return None
    try:
        prepared = _prepare(pdf, field_name=field_name, reason=reason, bytes_reserved=bytes_reserved, now=now)
    except (PdfError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None  # a PDF this reader does not follow: pyHanko reads it (or reports it)
    if prepared is None:
        return None
    out, contents_start, contents_end = prepared
    view = memoryview(out)
    digest = hashlib.sha256(view[:contents_start])
    digest.update(view[contents_end:])
    view.release()
    der = adapter.plain_signature(digest.digest())
    if der is None:
        return None
    hex_der = der.hex().encode()
    if len(hex_der) > bytes_reserved:
        return None  # pyHanko signs again and reports the shortage as usual
    out[contents_start + 1 : contents_start + 1 + len(hex_der)] = hex_der
    return bytes(out)


def _prepare(
    pdf: bytes, *, field_name: str, reason: str | None, bytes_reserved: int, now: _dt.datetime | None
) -> tuple[bytearray, int, int] | None:
    """The signed file but for the CMS: ``(bytes, start of /Contents' "<", end after its ">")``."""
    tail = _TAIL.search(pdf, max(0, len(pdf) - 64))
    if tail is None or pdf.count(b"startxref") != 1:
        return None
    xref_at = int(tail[1])
    head = _XREF_HEAD.match(pdf, xref_at)
    if head is None:
        return None
    size = int(head[1])
    entries = pdf[head.end() : head.end() + 20 * size]
    trailer_at = head.end() + 20 * size
    if not pdf.startswith(b"trailer", trailer_at) or len(entries) != 20 * size:
        return None
    dict_at = trailer_at + len(b"trailer")
    while pdf[dict_at : dict_at + 1] in (b" ", b"\r", b"\n", b"\t"):
        dict_at += 1
    if not pdf.startswith(b"<<", dict_at):
        return None
    stream = io.BytesIO(pdf)
    stream.seek(dict_at)
    trailer = generic.read_object(stream, generic.Reference(0, 0, None))
    if not isinstance(trailer, generic.DictionaryObject) or trailer.get("/Size") != size:
        return None
    offsets: dict[int, int] = {}
    for number in range(1, size):
        entry = entries[20 * number : 20 * number + 20]
        if entry[11:17] == b"00000 " and entry[17:18] == b"n":
            offsets[number] = int(entry[:10])
    root_no, info_no = _ref(trailer, "/Root"), _ref(trailer, "/Info")
    ids = trailer.get("/ID")
    if (
        root_no is None
        or info_no is None
        or root_no not in offsets
        or info_no not in offsets
        or not isinstance(ids, generic.ArrayObject)
        or len(ids) != 2
    ):
        return None
    form_no, field_no, sig_no, xmp_no = size, size + 1, size + 2, size + 3
    catalog = _new_catalog(_raw_object(pdf, offsets[root_no]), root_no, form_no, xmp_no)
    if catalog is None or catalog[1] not in offsets:
        return None
    page_no = _only_page(_raw_object(pdf, offsets[catalog[1]]), catalog[1])
    if page_no is None or page_no not in offsets:
        return None
    page = _new_page(_raw_object(pdf, offsets[page_no]), page_no, field_no)
    info = _parse(_raw_object(pdf, offsets[info_no]), info_no)
    if page is None or not isinstance(info, generic.DictionaryObject):
        return None

    when = (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0)
    # As pyHanko's writer does for a PDF 2.0 output: existing entries only, XMP beside.
    update_info_dict(meta_model.DocumentMetadata(last_modified=when), info, only_update_existing=True)
    form = generic.DictionaryObject(
        {pdf_name("/Fields"): generic.ArrayObject([_iref(field_no)]), pdf_name("/SigFlags"): generic.NumberObject(3)}
    )
    field = generic.DictionaryObject(
        {
            pdf_name("/FT"): pdf_name("/Sig"),
            pdf_name("/T"): pdf_string(field_name),
            pdf_name("/Type"): pdf_name("/Annot"),
            pdf_name("/Subtype"): pdf_name("/Widget"),
            pdf_name("/F"): generic.NumberObject(132),
            pdf_name("/Rect"): generic.ArrayObject([generic.NumberObject(0)] * 4),
            pdf_name("/P"): _iref(page_no),
            pdf_name("/V"): _iref(sig_no),
        }
    )
    sig_tail = (
        _sig_entries() + b"/M " + _write(generic.pdf_date(when)) + b"\n" + (_reason(reason) if reason else b"") + b">>"
    )

    out = bytearray(pdf)
    written: dict[int, int] = {}

    def put(number: int, body: bytes) -> None:
        written[number] = len(out)
        out.extend(b"%d 0 obj\n" % number + body + b"\nendobj\n")

    for number, body in sorted(
        ((page_no, page), (root_no, catalog[0]), (info_no, _write(info)), (form_no, _write(form)), (field_no, _write(field)))
    ):
        put(number, body)
    written[sig_no] = len(out)
    out.extend(b"%d 0 obj\n<<\n/Contents <" % sig_no)
    contents_start = len(out) - 1
    out.extend(b"0" * bytes_reserved)
    out.extend(b">\n/ByteRange ")
    contents_end = contents_start + bytes_reserved + 2
    byte_range_at = len(out)
    out.extend(b" " * _BYTE_RANGE_WIDTH)
    out.extend(b"\n" + sig_tail + b"\nendobj\n")
    put(xmp_no, _xmp(when))

    xref_offset = len(out)
    sections = [b"xref\n0 1\n0000000000 65535 f \n"]
    numbers = sorted(written)
    run: list[int] = []
    for number in numbers + [-1]:
        if run and number != run[-1] + 1:
            sections.append(b"%d %d\n" % (run[0], len(run)))
            sections.extend(b"%010d 00000 n \n" % written[n] for n in run)
            run = []
        run.append(number)
    new_trailer = generic.DictionaryObject(
        {
            pdf_name("/ID"): generic.ArrayObject(
                [generic.ByteStringObject(ids[0].original_bytes if isinstance(ids[0], generic.TextStringObject) else ids[0]),
                 generic.ByteStringObject(os.urandom(16))]
            ),
            pdf_name("/Info"): _iref(info_no),
            pdf_name("/Root"): _iref(root_no),
            pdf_name("/Size"): generic.NumberObject(xmp_no + 1),
            pdf_name("/Prev"): generic.NumberObject(xref_at),
        }
    )
    out.extend(b"".join(sections) + b"trailer\n" + _write(new_trailer) + b"\nstartxref\n%d\n%%%%EOF\n" % xref_offset)

    byte_range = b"[0 %d %d %d]" % (contents_start, contents_end, len(out) - contents_end)
    if len(byte_range) > _BYTE_RANGE_WIDTH:
        return None
    out[byte_range_at : byte_range_at + len(byte_range)] = byte_range
    return out, contents_start, contents_end
