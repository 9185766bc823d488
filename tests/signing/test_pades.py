# ruff: noqa: S603  (tests run fixed local tools: pdffonts, pdftoppm, zbarimg, certutil, pdfsig)
from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.errors import PdfError, SigningError
from signing.pades import PDF_CHECK_NAMES, cms_signer, make_validation_context, sign_pdf, verify_pdf
from signing.pdf import render_certificate_pdf

from .conftest import MemorySigner, Pki
from .demo import document
from .tsa import Tsa, running_tsa


@pytest.fixture(scope="module")
def page(pki: Pki) -> bytes:
    return render_certificate_pdf(document("resident", pki.signer))


@pytest.fixture(scope="module")
def signed(pki: Pki, page: bytes) -> bytes:
    return sign_pdf(page, pki.signer, location="北京")


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Tsa:  # type: ignore[misc]
    with running_tsa(tmp_path_factory.mktemp("tsa")) as server:
        yield server


def failed(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.name for c in result.checks if not c.ok}


def test_b_b_signature_verifies(pki: Pki, signed: bytes) -> None:
    result = verify_pdf(signed, trust_roots=[pki.root], crls=[pki.crl()])
    assert [c.name for c in result.checks] == list(PDF_CHECK_NAMES)
    assert result.valid, result.checks
    assert result.signer_certificate == pki.signer.certificate
    assert result.timestamp is None and result.timestamp_valid is None
    assert result.field_name == "Signature1"
    import hashlib

    assert result.document_sha256 == hashlib.sha256(signed).hexdigest()


def test_signing_goes_through_the_keys_signer_with_der_signatures(pki: Pki, page: bytes) -> None:
    before = pki.signer.sign_calls
    sign_pdf(page, pki.signer)
    assert pki.signer.sign_calls == before + 1  # bytes_reserved: no dry-run signature
    assert cms_signer(pki.signer) is cms_signer(pki.signer)  # adapter cached


def test_repeat_signatures_reuse_the_cms_skeleton_and_verify(
    pki: Pki, page: bytes, signed: bytes
) -> None:
    """After the first B-B signature the CMS is assembled from a cached
    skeleton; it must be the same structure with a new digest and signature."""
    again = sign_pdf(page, pki.signer)
    result = verify_pdf(again, trust_roots=[pki.root], crls=[pki.crl()])
    assert result.valid, result.checks
    first = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0].signed_data
    second = PdfFileReader(io.BytesIO(again)).embedded_signatures[0].signed_data
    assert first["certificates"].dump() == second["certificates"].dump()
    si1, si2 = first["signer_infos"][0], second["signer_infos"][0]
    assert [a["type"].native for a in si1["signed_attrs"]] == [
        a["type"].native for a in si2["signed_attrs"]
    ]
    assert si1["sid"].dump() == si2["sid"].dump()
    assert si1["signature"].native != si2["signature"].native
    # A different page gives a different digest in the same skeleton.
    other = sign_pdf(render_certificate_pdf(document("diploma", pki.signer)), pki.signer)
    assert verify_pdf(other, trust_roots=[pki.root]).valid


def test_a_new_signer_object_for_the_same_certificate_reuses_the_adapter(
    pki: Pki, page: bytes
) -> None:
    from .conftest import MemoryAgencySigner

    same = MemoryAgencySigner(
        pki.signer._key,  # type: ignore[arg-type]
        uscc=pki.signer.uscc,
        certificate=pki.signer.certificate,
        chain=list(pki.signer.chain),
    )
    assert cms_signer(same) is cms_signer(pki.signer)
    signed = sign_pdf(page, same)
    assert same.sign_calls == 1
    assert verify_pdf(signed, trust_roots=[pki.root]).valid


def test_signature_is_pades(signed: bytes) -> None:
    sig = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"


def _content_stream_offset(pdf: bytes) -> int:
    reader = PdfFileReader(io.BytesIO(pdf))
    contents = reader.root["/Pages"]["/Kids"][0].get_object().raw_get("/Contents")
    marker = f"\n{contents.idnum} {contents.generation} obj".encode()
    start = pdf.index(marker)
    return pdf.index(b"stream", start) + 40


def test_flipped_byte_in_page_content_breaks_the_signature(pki: Pki, signed: bytes) -> None:
    data = bytearray(signed)
    offset = _content_stream_offset(signed)
    data[offset] ^= 0x01
    result = verify_pdf(bytes(data), trust_roots=[pki.root])
    assert not result.valid
    assert "signature_intact" in failed(result)
    assert "digest" in result.check("signature_intact").reason  # type: ignore[union-attr]


def _overwrite_holder_name(signed: bytes, new_name: str) -> bytes:
    """An incremental update that paints over the holder name and writes another one."""
    w = IncrementalPdfFileWriter(io.BytesIO(signed))
    font = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Font"),
            generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
            generic.NameObject("/BaseFont"): generic.NameObject("/Helvetica"),
        }
    )
    resources = generic.DictionaryObject(
        {
            generic.NameObject("/Font"): generic.DictionaryObject(
                {generic.NameObject("/FTamper"): w.add_object(font)}
            )
        }
    )
    content = (
        f"q 1 1 1 rg 210 670 300 24 re f Q BT /FTamper 12 Tf 215 678 Td ({new_name}) Tj ET".encode()
    )
    stream = w.add_object(generic.StreamObject(stream_data=content))
    w.add_stream_to_page(0, stream, resources=resources)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def test_incremental_update_changing_the_holder_name_is_caught(pki: Pki, signed: bytes) -> None:
    tampered = _overwrite_holder_name(signed, "Li Si")
    assert tampered.startswith(signed)  # the signed revision itself is untouched
    result = verify_pdf(tampered, trust_roots=[pki.root])
    assert not result.valid
    assert failed(result) == {"no_changes_after_signing"}
    assert result.check("signature_intact").ok  # type: ignore[union-attr]


def test_annotation_added_after_signing_is_caught(pki: Pki, signed: bytes) -> None:
    w = IncrementalPdfFileWriter(io.BytesIO(signed))
    page_ref = w.root["/Pages"]["/Kids"][0]
    annot = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/FreeText"),
            generic.NameObject("/Rect"): generic.ArrayObject(
                [generic.FloatObject(v) for v in (210, 670, 500, 694)]
            ),
            generic.NameObject("/Contents"): generic.TextStringObject("李四"),
            generic.NameObject("/DA"): generic.TextStringObject("/Helv 12 Tf 0 g"),
        }
    )
    page = page_ref.get_object()
    annots = page.get("/Annots", generic.ArrayObject())
    annots.append(w.add_object(annot))
    page[generic.NameObject("/Annots")] = annots
    w.update_container(page)
    out = io.BytesIO()
    w.write(out)
    result = verify_pdf(out.getvalue(), trust_roots=[pki.root])
    assert failed(result) == {"no_changes_after_signing"}


def test_signer_not_under_a_trusted_root_fails_chain(other_pki: Pki, signed: bytes) -> None:
    result = verify_pdf(signed, trust_roots=[other_pki.root])
    assert failed(result) == {"chain_trusted"}


def test_revoked_signer_fails_chain(pki: Pki, signed: bytes) -> None:
    crl = pki.crl([pki.signer.certificate.serial_number])
    result = verify_pdf(signed, trust_roots=[pki.root], crls=[crl])
    assert failed(result) == {"chain_trusted"}
    assert "revoked" in result.check("chain_trusted").reason  # type: ignore[union-attr]


def test_unsigned_pdf_fails_every_check(pki: Pki, page: bytes) -> None:
    result = verify_pdf(page, trust_roots=[pki.root])
    assert not result.valid and failed(result) == set(PDF_CHECK_NAMES)
    assert result.signer_certificate is None


@pytest.mark.parametrize(
    "data", [b"", b"hello", b"\x89PNG\r\n\x1a\n" + bytes(100), b"%PDF-1.7\n garbage"]
)
def test_not_a_pdf_is_a_clear_error(pki: Pki, data: bytes) -> None:
    with pytest.raises(PdfError):
        verify_pdf(data, trust_roots=[pki.root])
    with pytest.raises(PdfError):
        sign_pdf(data, pki.signer)


def test_signer_without_certificate_is_refused(page: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    with pytest.raises(SigningError, match="certificate"):
        sign_pdf(page, MemorySigner(ec.generate_private_key(ec.SECP256R1())))


def test_unreachable_timestamp_authority_is_a_clear_error(pki: Pki, page: bytes) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SigningError, match="timestamp authority"):
        sign_pdf(page, pki.signer, timestamper_url=f"http://127.0.0.1:{port}/tsa")


@pytest.mark.slow
def test_b_t_signature_carries_a_trusted_timestamp(pki: Pki, page: bytes, tsa: Tsa) -> None:
    signed = sign_pdf(page, pki.signer, timestamper_url=tsa.url)
    result = verify_pdf(signed, trust_roots=[pki.root, tsa.root], crls=[pki.crl()])
    assert result.valid, result.checks
    assert result.timestamp is not None and result.timestamp_valid is True
    assert abs(result.timestamp - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    # Without the TSA's root the timestamp is reported untrusted.
    assert verify_pdf(signed, trust_roots=[pki.root]).timestamp_valid is False


@pytest.mark.slow
def test_b_lt_embeds_validation_data_and_verifies_offline_years_later(
    pki: Pki, page: bytes, tsa: Tsa
) -> None:
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    vc = make_validation_context(
        [pki.root, tsa.root], crls=[pki.crl()], other_certs=pki.signer.chain
    )
    signed = sign_pdf(page, pki.signer, timestamper_url=tsa.url, validation_context=vc)
    result = verify_pdf(signed, trust_roots=[pki.root, tsa.root])
    assert result.valid, result.checks
    assert result.has_validation_data and result.timestamp_valid and result.timestamp is not None
    reader = PdfFileReader(io.BytesIO(signed))
    dss = reader.root["/DSS"]
    assert len(dss["/CRLs"]) >= 1 and len(dss["/Certs"]) >= 2
    # Offline validation from the embedded data alone: only the trust anchors
    # come from outside, revocation data is required (hard-fail) and must come
    # from the DSS; the time is the timestamp's, as a verifier years later uses.
    dss_vc = DocumentSecurityStore.read_dss(reader).as_validation_context(
        {
            "trust_roots": [_asn1(pki.root), _asn1(tsa.root)],
            "allow_fetching": False,
            "revocation_mode": "hard-fail",
            "moment": result.timestamp,
        }
    )
    status = validate_pdf_signature(reader.embedded_signatures[0], signer_validation_context=dss_vc)
    assert status.intact and status.valid and status.trusted
    # The same hard-fail validation without the DSS's CRLs cannot establish trust.
    bare_vc = make_validation_context(
        [pki.root, tsa.root], revocation_mode="hard-fail", moment=result.timestamp
    )
    status = validate_pdf_signature(
        reader.embedded_signatures[0], signer_validation_context=bare_vc
    )
    assert not status.trusted


def _asn1(cert):  # type: ignore[no-untyped-def]
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


@pytest.mark.external
def test_pdfsig_reports_valid_and_trusted_with_an_nss_database(
    pki: Pki, signed: bytes, tmp_path: Path
) -> None:
    certutil, pdfsig = shutil.which("certutil"), shutil.which("pdfsig")
    if certutil is None or pdfsig is None:
        pytest.skip("certutil / pdfsig not installed")
    nss = tmp_path / "nss"
    nss.mkdir()
    subprocess.run([certutil, "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    (tmp_path / "root.pem").write_bytes(pki.root.public_bytes(serialization.Encoding.PEM))
    subprocess.run(
        [
            certutil,
            "-A",
            "-d",
            f"sql:{nss}",
            "-n",
            "region-root",
            "-t",
            "CT,C,C",
            "-i",
            str(tmp_path / "root.pem"),
        ],
        check=True,
    )
    (tmp_path / "s.pdf").write_bytes(signed)
    out = subprocess.run(
        [pdfsig, "-nssdir", f"sql:{nss}", str(tmp_path / "s.pdf")], capture_output=True, text=True
    ).stdout
    assert "Signature is Valid." in out, out
    assert "Certificate is Trusted." in out, out
    data = bytearray(signed)
    data[_content_stream_offset(signed)] ^= 0x01
    (tmp_path / "t.pdf").write_bytes(bytes(data))
    out = subprocess.run(
        [pdfsig, "-nssdir", f"sql:{nss}", str(tmp_path / "t.pdf")], capture_output=True, text=True
    ).stdout
    assert "Signature is Valid." not in out, out
