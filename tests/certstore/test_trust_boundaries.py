"""Trust does not travel sideways (issue 11, finding 3): an imported region never speaks for a local agency.

The victim is this region (110000, the ``services`` fixture, with its demo
agencies); the attacker is region B (310000), whose root the victim has
accepted as a trust anchor. B controls its own PKI completely: it can issue a
signer certificate under any credit code, or under none, and list it for any
type. Each way of using that to impersonate one of the victim's agencies is
refused at import, and what is already imported can never shadow, join or
borrow a local agency's identity or records.
"""

# ruff: noqa: F811 - region_b is a fixture imported from test_regions
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certstore.errors import InvalidInput
from certstore.service import IssueRequest
from keys import pki
from signing.qr import QrClaims, TrustedIssuer, TrustList, encode_qr_payload
from signing.trustlist import ListedIssuer, ListedType, RegionTrustList, export_trust_list

from .conftest import DEMO_REQUESTS, PSB
from .test_regions import B_ISSUER, region_b, second_database_url  # noqa: F401 - fixtures

B_OTHER = "123100004250107035"  # a second agency of region B (valid check character)


def _root_pem(svc: Any) -> bytes:
    return pki.region_root(svc.keyring).public_bytes(Encoding.PEM)


def _import(victim: Any, text: str, anchor: bytes, types: list[str], areas: list[str] | None = None) -> Any:
    return victim.certificates.trust_store.import_(text, anchor, types=types, uscc_areas=areas)


def _b_list(b: Any, issuers: list[ListedIssuer], region: str = "310000") -> str:
    """Region B's signed list with exactly these issuers (B's root signs whatever B wants)."""
    ca = pki.region_ca(b.keyring)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    doc = RegionTrustList(
        region=region,
        region_name="Region B",
        issued_at=now - dt.timedelta(minutes=1),
        next_update=now + dt.timedelta(days=7),
        status_list_base_url="https://b.invalid/status-lists/",
        root=ca.root,
        issuers=tuple(issuers),
        intermediates=(ca.issuing,),
        types=(ListedType("JZZM", "居住证明", "Residence"), ListedType("YYZZ", "营业执照", "Licence")),
    )
    return export_trust_list(doc, pki.root_signer(b.keyring))


def _signer_without_credit_code(b: Any) -> x509.Certificate:
    """A signer certificate B's issuing CA signs, naming no agency at all."""
    ca = pki.region_ca(b.keyring)
    state = pki._region_state(b.keyring)
    issuing = pki._key_signer(b.keyring, state["issuing_key"])
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anyone")]))
        .issuer_name(ca.issuing.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
    )
    return x509.load_der_x509_certificate(pki._sign_tbs("cert", builder, issuing))


def _refused(excinfo: pytest.ExceptionInfo[InvalidInput]) -> str:
    return str(excinfo.value.extra.get("code"))


def test_a_list_naming_a_local_agency_is_refused(services: Any, region_b: Any) -> None:
    b, _ = region_b
    # B lists the victim's PSB under a certificate B issued in PSB's name.
    b.registry.add_issuer(uscc=PSB, name_zh="冒充的公安局", region="310000", types=["JZZM"])
    text = b.certificates.trust_store.export()
    anchor = _root_pem(b)
    # Within the agreed types, and even with an agreed area wide enough to include PSB's:
    with pytest.raises(InvalidInput, match="an agency of this region") as e:
        _import(services, text, anchor, ["JZZM"], ["31", "11"])
    assert _refused(e) == "trust_local_issuer"
    # With the default area (B's own division code) the credit code is refused for its area already.
    with pytest.raises(InvalidInput, match="outside what region 310000 may vouch for") as e:
        _import(services, text, anchor, ["JZZM"])
    assert _refused(e) == "trust_area"
    assert services.certificates.trust_store.import_rows() == []


def test_types_outside_the_agreement_are_refused(services: Any, region_b: Any) -> None:
    b, _ = region_b
    text = b.certificates.trust_store.export()  # B_ISSUER vouched for JZZM
    with pytest.raises(InvalidInput, match="does not accept from 310000") as e:
        _import(services, text, _root_pem(b), ["YYZZ"])
    assert _refused(e) == "trust_type"
    with pytest.raises(InvalidInput, match="types agreed") as e:
        _import(services, text, _root_pem(b), [])
    assert services.certificates.trust_store.import_rows() == []
    assert _import(services, text, _root_pem(b), ["JZZM"]).region == "310000"


def test_a_signer_certificate_must_carry_the_listed_credit_code(services: Any, region_b: Any) -> None:
    b, _ = region_b
    anchor = _root_pem(b)
    nameless = _signer_without_credit_code(b)
    for uscc in (B_OTHER, PSB):  # any credit code, in B's area or the victim's own
        text = _b_list(b, [ListedIssuer(uscc, "无名", nameless, ("JZZM",))])
        with pytest.raises(InvalidInput, match="names no credit code|outside what region") as e:
            _import(services, text, anchor, ["JZZM"], ["31", "11"] if uscc == PSB else None)
        assert _refused(e) in ("trust_uscc", "trust_local_issuer")
    # B's real agency's certificate listed under another of B's credit codes.
    real = pki.agency_signer(b.keyring, B_ISSUER).certificate
    with pytest.raises(InvalidInput, match="belongs to another agency"):
        _import(services, _b_list(b, [ListedIssuer(B_OTHER, "别人", real, ("JZZM",))]), anchor, ["JZZM"])
    assert services.certificates.trust_store.import_rows() == []


def _payload(signer: Any, uscc: str, identifier: str | None = None, **claims: Any) -> str:
    today = dt.datetime.now(dt.UTC).date()
    from certstore.identifier import build_identifier

    return encode_qr_payload(
        QrClaims(
            identifier=identifier or str(build_identifier("JZZM", uscc, 7, 1)),
            type_code="JZZM",
            issuer_uscc=uscc,
            holder_name="张三",
            holder_code_masked="110105********002X",
            holder_code_type="111",
            valid_from=today,
            valid_until=today + dt.timedelta(days=30),
            issued_at=today,
            **claims,
        ),
        signer,
    )


def test_an_imported_key_never_shadows_an_agency_added_locally_later(services: Any, region_b: Any) -> None:
    b, _ = region_b
    _import(services, b.certificates.trust_store.export(), _root_pem(b), ["JZZM"])
    b_signer = pki.agency_signer(b.keyring, B_ISSUER)
    trust = services.certificates.trust_store.merged(services.certificates.trust_list()).trust_list
    assert b_signer.certificate and TrustedIssuer.from_certificate(
        b_signer.certificate, uscc=B_ISSUER, name="", region="", allowed_types=()
    ).kid in trust

    # Later, this region registers an agency under the same credit code: from then
    # on only the local agency's own key speaks for it.
    services.registry.add_issuer(uscc=B_ISSUER, name_zh="本地同码机构", region="110000", types=["JZZM"])
    merged = services.certificates.trust_store.merged(services.certificates.trust_list())
    speakers = [i for i in merged.trust_list if i.uscc == B_ISSUER]
    assert [i.region for i in speakers] == ["110000"]
    result = services.certificates.verify_qr(_payload(b_signer, B_ISSUER))
    signature = next(c for c in result.checks if c.name == "signature")
    assert not result.valid and not signature.ok and "not in the trust list" in signature.reason


def test_the_record_is_bound_to_the_issuer_that_verified(
    services: Any, region_b: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if a foreign key speaking for a local credit code got into the merged list, it
    would never bring up the local agency's record (or its status, or its holder's data)."""
    b, _ = region_b
    cert = services.certificates.issue(
        IssueRequest.from_json(DEMO_REQUESTS["JZZM"]["body"]), agency_uscc=PSB
    ).certificate
    impostor = pki.issue_signer(b.keyring, uscc=PSB, name="冒充")
    forged = _payload(impostor, PSB, identifier=cert.identifier)

    store = services.certificates.trust_store
    honest_merged = store.merged

    def leaky_merged(local: TrustList, **kw: Any) -> Any:
        merged = honest_merged(local, **kw)
        merged.trust_list.add(
            TrustedIssuer.from_certificate(
                impostor.certificate, uscc=PSB, name="冒充", region="310000", allowed_types={"JZZM"}
            )
        )
        return merged

    monkeypatch.setattr(store, "merged", leaky_merged)
    result = services.certificates.verify_qr(forged)
    assert result.certificate is None  # the local record was not attached
    assert not result.valid
    assert next(c for c in result.checks if c.name == "status").ok is False
    # The genuine QR still brings up its record.
    genuine = services.certificates.verify_qr(cert.qr_text)
    assert genuine.valid and genuine.certificate is not None


def test_cli_refuses_an_impersonating_list_in_one_line(demo: Any, region_b: Any, tmp_path: Path) -> None:
    b, _ = region_b
    b.registry.add_issuer(uscc=PSB, name_zh="冒充的公安局", region="310000", types=["JZZM"])
    listing = tmp_path / "b.trust.jwt"
    listing.write_text(b.certificates.trust_store.export())
    root = tmp_path / "b-root.pem"
    root.write_bytes(_root_pem(b))
    args = ["trust", "import", str(listing), "--anchor", str(root), "--types", "JZZM"]
    code, out, err = demo(*args, "--uscc-area", "31", "--uscc-area", "11")
    assert code == 2 and "an agency of this region" in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    code, out, err = demo(*args)
    assert code == 2 and "outside what region 310000 may vouch for" in err and len(err.strip().splitlines()) == 1
    code, out, err = demo("trust", "import", str(listing), "--anchor", str(root))
    assert code == 2 and "types agreed" in err
    code, out, err = demo("trust", "list")
    assert "imported region" not in out


def test_a_root_speaks_only_for_its_own_region(services: Any, region_b: Any) -> None:
    """B's root signing a list that says "region 440000" could otherwise vouch for 44xxxx
    agencies (the default area) or replace region 440000's import."""
    b, _ = region_b
    listed = [ListedIssuer(B_ISSUER, "上海某局", pki.agency_signer(b.keyring, B_ISSUER).certificate, ("JZZM",))]
    with pytest.raises(InvalidInput, match="its root is region 310000's") as e:
        _import(services, _b_list(b, listed, region="440000"), _root_pem(b), ["JZZM"], ["31"])
    assert _refused(e) == "trust_anchor"
    # Nor may another root take over a region already imported.
    _import(services, _b_list(b, listed), _root_pem(b), ["JZZM"])
    _import(services, _b_list(b, listed), _root_pem(b), ["JZZM"])  # the monthly re-import: same root
    other = pki.region_root(services.keyring).public_bytes(Encoding.PEM)  # any other root
    store = services.certificates.trust_store
    from certstore.db import session_scope
    from certstore.models import TrustImport

    with session_scope(store.sessions) as s:  # as if 310000 had been imported under another root
        s.get(TrustImport, "310000").anchor_pem = other.decode()
    with pytest.raises(InvalidInput, match="imported with another root") as e:
        _import(services, _b_list(b, listed), _root_pem(b), ["JZZM"])
    assert _refused(e) == "trust_anchor_changed"
