from __future__ import annotations

import datetime as dt
import hashlib
import io

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signing.base43 import ALPHABET, b43decode, b43encode
from signing.errors import PayloadTooLarge, SigningError
from signing.qr import (
    CHECK_NAMES,
    MAX_QR_VERSION,
    PREFIX,
    Check,
    TrustedIssuer,
    TrustList,
    decode_qr_payload,
    encode_qr_payload,
    make_qr,
    qr_kid,
    qr_png,
    qr_svg,
    verify_qr_payload,
)

from .conftest import NOW, MemorySigner, Pki
from .demo import KINDS, LONG_COMPANY, claims


def trust_for(pki: Pki, types: tuple[str, ...] = ("JMHZ", "YYZZ", "XLZS")) -> TrustList:
    return TrustList(
        [
            TrustedIssuer.from_certificate(
                pki.signer.certificate,
                uscc=pki.signer.uscc,
                name="测试市市场监督管理局",
                region="110000",
                allowed_types=types,
            )
        ]
    )


def failed(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.name for c in result.checks if not c.ok}


@pytest.mark.parametrize("kind", KINDS)
def test_every_demo_type_round_trips_and_fits_version_11(pki: Pki, kind: str) -> None:
    c = claims(kind)
    text = encode_qr_payload(c, pki.signer)
    assert text.startswith(PREFIX)
    assert set(text[len(PREFIX) :]) <= set(ALPHABET)
    assert " " not in text and "%" not in text
    assert make_qr(text).version <= MAX_QR_VERSION
    decoded = decode_qr_payload(text)
    assert decoded.claims == c
    assert decoded.kid == qr_kid(pki.signer.certificate)
    assert decoded.algorithm == "ES256"


def test_personal_certificate_payload_is_about_200_bytes(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)
    cose_bytes = b43decode(text[len(PREFIX) :])
    assert len(cose_bytes) <= 210
    assert make_qr(text).version <= 10


def test_payload_is_a_standard_cose_sign1(pki: Pki) -> None:
    """Any COSE library reads it: tag 18, alg -7 protected, kid unprotected, RFC 9052 Sig_structure."""
    text = encode_qr_payload(claims("resident"), pki.signer)
    msg = cbor2.loads(b43decode(text[len(PREFIX) :]))
    assert msg.tag == 18
    protected, unprotected, payload, signature = msg.value
    assert cbor2.loads(protected) == {1: -7}
    assert unprotected == {4: qr_kid(pki.signer.certificate)}
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    pki.signer.certificate.public_key().verify(der, to_be_signed, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
    claim_map = cbor2.loads(payload)
    assert claim_map[1] == "JMHZ"
    assert claim_map[6] == "张三丰".encode("gb18030")


def test_kid_is_first_8_bytes_of_certificate_sha256(pki: Pki) -> None:
    der = pki.signer.certificate.public_bytes(serialization.Encoding.DER)
    assert qr_kid(pki.signer.certificate) == hashlib.sha256(der).digest()[:8]


@pytest.mark.parametrize("kind", KINDS)
def test_valid_payload_passes_every_check(pki: Pki, kind: str) -> None:
    text = encode_qr_payload(claims(kind), pki.signer)
    result = verify_qr_payload(text, trust_for(pki), now=NOW)
    assert [c.name for c in result.checks] == list(CHECK_NAMES)
    assert result.valid, result.checks
    assert result.issuer is not None and result.issuer.uscc == pki.signer.uscc
    assert result.claims == claims(kind)


def test_one_character_changed_is_caught(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)
    trust = trust_for(pki)
    positions = range(len(PREFIX), len(text), 7)
    for i in positions:
        replacement = "0" if text[i] != "0" else "1"
        tampered = text[:i] + replacement + text[i + 1 :]
        result = verify_qr_payload(tampered, trust, now=NOW)
        assert not result.valid, i
        assert failed(result) & {"format", "signature"}, (i, result.checks)


def test_holder_name_changed_in_claims_fails_signature(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)
    msg = cbor2.loads(b43decode(text[len(PREFIX) :]))
    protected, unprotected, payload, signature = msg.value
    claim_map = cbor2.loads(payload)
    claim_map[6] = "李四"
    forged = cbor2.dumps(
        cbor2.CBORTag(18, [protected, unprotected, cbor2.dumps(claim_map), signature])
    )
    result = verify_qr_payload(PREFIX + b43encode(forged), trust_for(pki), now=NOW)
    assert failed(result) == {"signature"}
    assert "does not match" in result.check("signature").reason  # type: ignore[union-attr]


def test_payload_signed_by_key_not_in_trust_list_is_refused(pki: Pki, other_pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), other_pki.signer)
    result = verify_qr_payload(text, trust_for(pki), now=NOW)
    assert not result.valid
    sig = result.check("signature")
    assert sig is not None and not sig.ok and "not in the trust list" in sig.reason
    assert result.issuer is None


def test_payload_claiming_a_trusted_kid_but_signed_by_another_key_is_refused(
    pki: Pki, other_pki: Pki
) -> None:
    text = encode_qr_payload(
        claims("resident"), other_pki.signer, kid=qr_kid(pki.signer.certificate)
    )
    result = verify_qr_payload(text, trust_for(pki), now=NOW)
    assert failed(result) == {"signature"}


def test_payload_naming_another_issuer_fails_issuer_check(pki: Pki) -> None:
    other = "91310000MA1FL4NB0P"
    c = claims("resident", uscc=other)
    text = encode_qr_payload(c, pki.signer)
    result = verify_qr_payload(text, trust_for(pki), now=NOW)
    assert failed(result) == {"issuer_trusted"}


def test_type_the_issuer_may_not_issue_is_refused(pki: Pki) -> None:
    text = encode_qr_payload(claims("diploma"), pki.signer)
    result = verify_qr_payload(text, trust_for(pki, types=("JMHZ",)), now=NOW)
    assert failed(result) == {"type_allowed"}


def test_signer_certificate_not_valid_on_issue_date(pki: Pki) -> None:
    c = claims("resident", issued_at=dt.date(2019, 1, 1), valid_from=dt.date(2019, 1, 1))
    result = verify_qr_payload(encode_qr_payload(c, pki.signer), trust_for(pki), now=NOW)
    assert failed(result) == {"issuer_trusted"}


def test_validity_window_in_china_time_with_skew(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)  # 2026-05-01 .. 2031-04-30 CST
    trust = trust_for(pki)
    start_utc = dt.datetime(2026, 4, 30, 16, 0, tzinfo=dt.UTC)  # 2026-05-01 00:00 CST
    assert verify_qr_payload(text, trust, now=start_utc).valid
    assert verify_qr_payload(text, trust, now=start_utc - dt.timedelta(minutes=4)).valid
    early = verify_qr_payload(text, trust, now=start_utc - dt.timedelta(minutes=6))
    assert failed(early) == {"validity"}
    end_utc = dt.datetime(2031, 4, 30, 16, 0, tzinfo=dt.UTC)  # 2031-05-01 00:00 CST
    assert verify_qr_payload(text, trust, now=end_utc + dt.timedelta(minutes=4)).valid
    late = verify_qr_payload(text, trust, now=end_utc + dt.timedelta(minutes=6))
    assert failed(late) == {"validity"}
    assert "expired" in late.check("validity").reason  # type: ignore[union-attr]
    strict = verify_qr_payload(
        text, trust, now=start_utc - dt.timedelta(minutes=4), skew=dt.timedelta(0)
    )
    assert failed(strict) == {"validity"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("HC1:NCFOXN%TS3DH3ZSUZK+.V0ETD%65NL-AH-R6IOO6+IUKRG*I.I6", "EU Digital COVID"),
        ("https://example.gov.cn/verify?id=1", "web address"),
        ("shc:/56762909524320603460292437404460", "starts with YW1:"),
        ("", "starts with YW1:"),
        ("YW1:", "COSE"),
        ("YW1:%%%", "Base43"),
        ("YW1:A", "Base43"),
    ],
)
def test_other_formats_fail_the_format_check(pki: Pki, text: str, words: str) -> None:
    result = verify_qr_payload(text, trust_for(pki), now=NOW)
    assert not result.valid
    fmt = result.checks[0]
    assert fmt.name == "format" and not fmt.ok
    assert words.lower() in fmt.reason.lower() or words == "COSE" and "cbor" in fmt.reason.lower()
    assert all(not c.ok and c.reason.startswith("not checked") for c in result.checks[1:])


def test_trailing_newline_from_a_scanner_is_accepted(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)
    assert verify_qr_payload(text + "\n", trust_for(pki), now=NOW).valid


def _ed25519_certificate(key: ed25519.Ed25519PrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "ed25519 signer")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        .sign(key, None)
    )


def test_eddsa_payloads_are_accepted(pki: Pki) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert = _ed25519_certificate(key)
    signer = MemorySigner(key)
    text = encode_qr_payload(claims("resident"), signer, kid=qr_kid(cert))
    assert decode_qr_payload(text).algorithm == "EdDSA"
    trust = TrustList(
        [
            TrustedIssuer.from_certificate(
                cert, uscc=pki.signer.uscc, name="x", region="1", allowed_types={"JMHZ"}
            )
        ]
    )
    assert verify_qr_payload(text, trust, now=NOW).valid
    # An EdDSA payload presented under a P-256 issuer's kid fails the signature check.
    text2 = encode_qr_payload(claims("resident"), signer, kid=qr_kid(pki.signer.certificate))
    assert failed(verify_qr_payload(text2, trust_for(pki), now=NOW)) == {"signature"}


def test_rs256_signer_is_refused(pki: Pki) -> None:
    class Rsa(MemorySigner):
        algorithm = "RS256"

    signer = Rsa(ec.generate_private_key(ec.SECP256R1()))
    signer.algorithm = "RS256"
    with pytest.raises(SigningError, match="ES256 or EdDSA"):
        encode_qr_payload(claims("resident"), signer, kid=b"12345678")


def test_signer_without_certificate_needs_explicit_kid() -> None:
    with pytest.raises(SigningError, match="kid"):
        encode_qr_payload(claims("resident"), MemorySigner(ec.generate_private_key(ec.SECP256R1())))


def test_identifier_must_agree_with_type_and_issuer(pki: Pki) -> None:
    with pytest.raises(SigningError, match="type"):
        encode_qr_payload(claims("resident", type_code="YYZZ"), pki.signer)
    with pytest.raises(SigningError, match="identifier"):
        encode_qr_payload(claims("resident", identifier="1.2.3"), pki.signer)


def test_too_long_holder_name_is_refused_with_a_clear_error(pki: Pki) -> None:
    c = claims("business", holder_name=LONG_COMPANY * 2)
    with pytest.raises(PayloadTooLarge, match="version 11") as info:
        encode_qr_payload(c, pki.signer)
    assert info.value.length > info.value.limit
    assert LONG_COMPANY not in str(info.value)


def test_make_qr_refuses_above_version_11() -> None:
    with pytest.raises(PayloadTooLarge):
        make_qr("YW1:" + "A" * 400)
    with pytest.raises(PayloadTooLarge):
        make_qr("x" * 300)  # byte mode: 300 bytes need version 13


def test_make_qr_is_level_m_at_the_smallest_version_and_reads_back(pki: Pki) -> None:
    import zxingcpp

    text = encode_qr_payload(claims("resident"), pki.signer)
    code = make_qr(text)
    assert code.modules_count == 17 + 4 * code.version
    # A reader we did not write gets the text and level M back from the drawn modules.
    from PIL import Image

    read = zxingcpp.read_barcode(Image.open(io.BytesIO(qr_png(text, box_size=3))))
    assert read is not None and read.text == text and read.ec_level == "M"
    # One alphanumeric segment: the smallest version that holds the text in that mode.
    data_bits = 4 + (9 if code.version <= 9 else 11) + 11 * (len(text) // 2) + 6 * (len(text) % 2)
    assert data_bits <= _LEVEL_M_DATA_BITS[code.version]
    assert code.version == 1 or data_bits > _LEVEL_M_DATA_BITS[code.version - 1]


# ISO/IEC 18004 table 7: data bits of versions 1-11 at level M.
_LEVEL_M_DATA_BITS = {1: 128, 2: 224, 3: 352, 4: 512, 5: 688, 6: 864, 7: 992, 8: 1232, 9: 1456, 10: 1728, 11: 2032}


def test_svg_is_one_path_of_merged_runs(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)
    svg = qr_svg(text)
    assert svg.startswith("<svg") and svg.count("<path") == 1
    modules = make_qr(text).rows
    dark = sum(bool(m) for row in modules for m in row)
    assert 0 < svg.count("z") < dark  # runs were merged


def test_png_is_a_png_of_the_right_size(pki: Pki) -> None:
    import io

    from PIL import Image

    text = encode_qr_payload(claims("resident"), pki.signer)
    png = qr_png(text, box_size=3)
    img = Image.open(io.BytesIO(png))
    n = make_qr(text).modules_count
    assert img.size == ((n + 8) * 3, (n + 8) * 3)


def test_with_check_recomputes_validity(pki: Pki) -> None:
    result = verify_qr_payload(
        encode_qr_payload(claims("resident"), pki.signer), trust_for(pki), now=NOW
    )
    revoked = result.with_check(Check("status", False, "revoked (03)"))
    assert result.valid and not revoked.valid
    assert revoked.check("status") is not None


def test_claims_are_hashable_and_comparable() -> None:
    a, b = claims("resident"), claims("resident")
    assert a == b and hash(a) == hash(b)
    assert a != claims("resident", fields={"ad": "别处"})
    with pytest.raises(TypeError):
        a.fields["ad"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "packed"),
    [
        ("张三丰", True),  # common characters: two-byte GB 18030
        ("Zhang San", False),  # ASCII stays text
        ("王𠮷", False),  # a supplementary-plane character has a four-byte code: UTF-8
        ("李\ue816", False),  # private use: mappings differ between GB 18030 editions
    ],
)
def test_holder_name_encoding_choice_round_trips(pki: Pki, name: str, packed: bool) -> None:
    text = encode_qr_payload(claims("resident", holder_name=name), pki.signer)
    claim_map = cbor2.loads(cbor2.loads(b43decode(text[len(PREFIX) :])).value[2])
    assert isinstance(claim_map[6], bytes) == packed
    assert decode_qr_payload(text).claims.holder_name == name
