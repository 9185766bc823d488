# ruff: noqa: S603  (tests run a fixed local tool: pdfsig)
"""signing.pades.embed: the B-B signature written without pyHanko's document model must be
the signature pyHanko writes (same objects, same CMS), verify the same, fail the same when
tampered with, and step aside for anything it does not handle (issue 16)."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
from pathlib import Path
from unittest import mock

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

import signing.pades.sign as sign_module
from signing.pades import PDF_CHECK_NAMES, cms_signer, embed, sign_pdf, verify_pdf
from signing.pdf import render_certificate_pdf

from .conftest import Pki
from .demo import document

_NOW = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def page(pki: Pki) -> bytes:
    return render_certificate_pdf(document("resident", pki.signer))


def _by_pyhanko(page: bytes, pki: Pki) -> bytes:
    with mock.patch.object(sign_module, "sign_plain_bb", return_value=None):
        return sign_pdf(page, pki.signer)


def _direct(page: bytes, pki: Pki) -> bytes:
    _by_pyhanko(page, pki)  # the adapter's CMS template exists from here on
    out = embed.sign_plain_bb(
        page, cms_signer(pki.signer), field_name="Signature1",
        reason="Issued electronic certificate 签发电子证照", bytes_reserved=8192,
    )
    assert out is not None
    return out


def _resolved(obj: object, skip: frozenset[str] = frozenset()) -> object:
    """A PDF object as plain Python data with references resolved (not the object numbers);
    ``skip`` must name the keys pointing back up the tree (``/Parent``, ``/P``)."""
    obj = obj.get_object() if isinstance(obj, generic.IndirectObject) else obj
    if isinstance(obj, generic.StreamObject):
        return {"stream": obj.data, **{k: _resolved(v) for k, v in obj.items() if k not in skip | {"/Length"}}}
    if isinstance(obj, generic.DictionaryObject):
        return {k: _resolved(obj.raw_get(k), skip) for k in obj if k not in skip}
    if isinstance(obj, generic.ArrayObject):
        return [_resolved(obj.raw_get(i), skip) for i in range(len(obj))]
    return obj


def test_the_direct_signature_has_the_objects_pyhanko_writes(pki: Pki, page: bytes) -> None:
    by_pyhanko = _by_pyhanko(page, pki)
    direct = _direct(page, pki)
    assert direct.startswith(page) and by_pyhanko.startswith(page)
    a, b = PdfFileReader(io.BytesIO(by_pyhanko)), PdfFileReader(io.BytesIO(direct))
    dates = frozenset({"/ModDate", "/M", "/Contents", "/ByteRange", "/Metadata", "/Parent", "/P"})
    assert _resolved(a.root, dates) == _resolved(b.root, dates)
    assert _resolved(a.trailer["/Info"], dates) == _resolved(b.trailer["/Info"], dates)
    assert a.trailer["/ID"][0] == b.trailer["/ID"][0] and b.trailer["/ID"][1] != b.trailer["/ID"][0]
    sig_a, sig_b = a.embedded_signatures[0], b.embedded_signatures[0]
    assert _resolved(sig_a.sig_object, dates) == _resolved(sig_b.sig_object, dates)
    assert sig_a.field_name == sig_b.field_name == "Signature1"
    assert sig_b.sig_object["/ByteRange"][0] == 0
    assert sig_b.sig_object["/ByteRange"][3] + sig_b.sig_object["/ByteRange"][2] == len(direct)
    sd_a, sd_b = sig_a.signed_data, sig_b.signed_data
    assert sd_a["certificates"].dump() == sd_b["certificates"].dump()
    assert sd_a["digest_algorithms"].dump() == sd_b["digest_algorithms"].dump()
    si_a, si_b = sd_a["signer_infos"][0], sd_b["signer_infos"][0]
    assert si_a["sid"].dump() == si_b["sid"].dump()
    assert [x["type"].native for x in si_a["signed_attrs"]] == [x["type"].native for x in si_b["signed_attrs"]]
    xmp_a, xmp_b = a.root["/Metadata"].data, b.root["/Metadata"].data
    assert xmp_a.split(b"xmp:ModifyDate=")[0] == xmp_b.split(b"xmp:ModifyDate=")[0]
    assert a.xrefs.total_revisions == b.xrefs.total_revisions == 2


def test_the_direct_signature_verifies_with_every_check(pki: Pki, page: bytes) -> None:
    direct = _direct(page, pki)
    result = verify_pdf(direct, trust_roots=[pki.root], crls=[pki.crl()])
    assert [c.name for c in result.checks] == list(PDF_CHECK_NAMES)
    assert result.valid, result.checks
    assert result.signer_certificate == pki.signer.certificate
    assert result.field_name == "Signature1"


def test_sign_pdf_takes_the_direct_path_once_the_template_exists(pki: Pki, page: bytes) -> None:
    _by_pyhanko(page, pki)
    with mock.patch.object(sign_module.signers, "PdfSigner", side_effect=AssertionError("pyHanko signed")):
        out = sign_pdf(page, pki.signer)
    assert verify_pdf(out, trust_roots=[pki.root]).valid


def test_a_tampered_direct_signature_fails_as_pyhankos_does(pki: Pki, page: bytes) -> None:
    direct = _direct(page, pki)
    data = bytearray(direct)
    data[len(page) // 2] ^= 0x01
    assert "signature_intact" in {c.name for c in verify_pdf(bytes(data), trust_roots=[pki.root]).checks if not c.ok}
    w = IncrementalPdfFileWriter(io.BytesIO(direct))
    page_obj = w.root["/Pages"]["/Kids"][0].get_object()
    annot = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/FreeText"),
            generic.NameObject("/Rect"): generic.ArrayObject([generic.FloatObject(v) for v in (210, 670, 500, 694)]),
            generic.NameObject("/Contents"): generic.TextStringObject("李四"),
        }
    )
    page_obj["/Annots"].append(w.add_object(annot))
    w.update_container(page_obj)
    out = io.BytesIO()
    w.write(out)
    result = verify_pdf(out.getvalue(), trust_roots=[pki.root])
    assert {c.name for c in result.checks if not c.ok} == {"no_changes_after_signing"}


def test_what_the_direct_writer_does_not_handle_goes_to_pyhanko(pki: Pki, page: bytes) -> None:
    direct = _direct(page, pki)
    adapter = cms_signer(pki.signer)

    def attempt(pdf: bytes) -> bytes | None:
        return embed.sign_plain_bb(pdf, adapter, field_name="Signature2", reason=None, bytes_reserved=8192)

    assert attempt(direct) is None  # a second revision (and a form) already there
    assert attempt(page.replace(b"/Type /Catalog", b"/Type /Catalog /Version /1.7")) is None
    assert attempt(page[:-10]) is None  # no end of file marker
    # sign_pdf then signs with pyHanko: a second, valid signature.
    twice = sign_pdf(direct, pki.signer, field_name="Signature2")
    assert len(PdfFileReader(io.BytesIO(twice)).embedded_signatures) == 2
    # The location is not written by the direct path: pyHanko signs.
    with_location = sign_pdf(page, pki.signer, location="北京")
    assert PdfFileReader(io.BytesIO(with_location)).embedded_signatures[0].sig_object["/Location"] == "北京"


def test_no_template_no_direct_signature(pki: Pki, page: bytes) -> None:
    adapter = cms_signer(pki.signer)
    with mock.patch.object(adapter, "_templates", {}):
        assert embed.sign_plain_bb(page, adapter, field_name="S", reason=None, bytes_reserved=8192) is None


@pytest.mark.parametrize("length", [70, 71, 72])
def test_the_spliced_cms_is_asn1cryptos_encoding(pki: Pki, page: bytes, length: int) -> None:
    _by_pyhanko(page, pki)
    template = cms_signer(pki.signer)._templates["sha256"]
    digest, signature = os.urandom(32), b"\x30" + os.urandom(length - 1)
    assert template.der(digest, signature) == template.content_info(template.signed_attrs(digest), signature).dump()


def test_the_signing_time_is_the_modification_date(pki: Pki, page: bytes) -> None:
    _by_pyhanko(page, pki)
    out = embed.sign_plain_bb(page, cms_signer(pki.signer), field_name="Signature1", reason=None,
                              bytes_reserved=8192, now=_NOW)
    assert out is not None
    reader = PdfFileReader(io.BytesIO(out))
    assert reader.embedded_signatures[0].sig_object["/M"] == "D:20261206120000Z"
    assert reader.trailer["/Info"]["/ModDate"] == "D:20261206120000Z"
    assert b'xmp:ModifyDate="2026-12-06T12:00:00+00:00"' in reader.root["/Metadata"].data


@pytest.mark.external
def test_pdfsig_accepts_the_direct_signature(pki: Pki, page: bytes, tmp_path: Path) -> None:
    pdfsig = shutil.which("pdfsig")
    if pdfsig is None:
        pytest.skip("pdfsig not installed")
    (tmp_path / "s.pdf").write_bytes(_direct(page, pki))
    out = subprocess.run([pdfsig, str(tmp_path / "s.pdf")], capture_output=True, text=True).stdout
    assert "Signature is Valid." in out, out
    assert "Total document signed" in out, out
