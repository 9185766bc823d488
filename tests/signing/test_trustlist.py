"""Regional trust lists: export signed by the region root, import against configured anchors."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from keys import pki
from keys.config import CommonSettings
from keys.jws import encode_jws
from keys.keyring import Keyring, open_keyring
from signing.trustlist import (
    ListedIssuer,
    ListedType,
    RegionTrustList,
    TrustListError,
    export_trust_list,
    import_trust_list,
    peek_trust_list,
)

PSB = "111101050000000017"
AMR = "11110105000000002A"
def _now() -> dt.datetime:
    """The time now: each test's keys are made when it starts, so a time taken at import
    (collection) can fall before them in a long run."""
    return dt.datetime.now(dt.UTC)


def _region(home: Path, code: str) -> Keyring:
    ring = open_keyring(CommonSettings.from_values({"HOME": home}, default_issuer="http://x").keys)
    pki.init_region(ring, region=code, name=f"Region {code}")
    return ring


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Keyring, Keyring]:
    a = _region(tmp_path_factory.mktemp("a"), "110000")
    b = _region(tmp_path_factory.mktemp("b"), "310000")
    pki.issue_signer(a, uscc=PSB, name="PSB")
    pki.issue_signer(a, uscc=AMR, name="AMR")
    pki.issue_signer(b, uscc=PSB, name="impostor in B")
    return a, b


def _doc(
    ring: Keyring, *, issuers: list[ListedIssuer] | None = None, **changes: Any
) -> RegionTrustList:
    ca = pki.region_ca(ring)
    if issuers is None:
        issuers = [
            ListedIssuer(PSB, "公安", pki.agency_signer(ring, PSB).certificate, ("JZZM",)),
            ListedIssuer(AMR, "市场监管", pki.agency_signer(ring, AMR).certificate, ("YYZZ",)),
        ]
    base = dict(
        region=ca.region,
        region_name=ca.name,
        issued_at=_now() - dt.timedelta(minutes=1),
        next_update=_now() + dt.timedelta(days=7),
        status_list_base_url="http://a.test/status-lists/",
        root=ca.root,
        issuers=tuple(issuers),
        intermediates=(ca.issuing,),
        types=(
            ListedType("JZZM", "居住证明", "Residence"),
            ListedType("YYZZ", "营业执照", "Licence"),
        ),
    )
    base.update(changes)
    return RegionTrustList(**base)  # type: ignore[arg-type]


def test_round_trip(regions: tuple[Keyring, Keyring]) -> None:
    a, _ = regions
    text = export_trust_list(_doc(a), pki.root_signer(a))
    got = import_trust_list(text, [pki.region_root(a)], now=_now())
    assert got.region == "110000" and [i.uscc for i in got.issuers] == [PSB, AMR]
    assert got.status_list_base_url == "http://a.test/status-lists/"
    trust = got.trust_list()
    assert len(trust) == 2
    cert = pki.agency_signer(a, PSB).certificate
    from signing.qr import qr_kid

    assert trust.get(qr_kid(cert)).allowed_types == frozenset({"JZZM"})  # type: ignore[union-attr]
    header = json.loads(base64.urlsafe_b64decode(text.split(".")[0] + "=="))
    assert header["typ"] == "trustlist+jwt" and len(header["x5c"]) == 1


def test_unknown_anchor_refused(regions: tuple[Keyring, Keyring]) -> None:
    a, b = regions
    text = export_trust_list(_doc(a), pki.root_signer(a))
    with pytest.raises(TrustListError) as e:
        import_trust_list(text, [pki.region_root(b)], now=_now())
    assert e.value.reason == "anchor"


def test_bad_signature_refused(regions: tuple[Keyring, Keyring]) -> None:
    a, b = regions
    # signed by B's root but claiming A's root in x5c
    forged = export_trust_list(_doc(a), pki.root_signer(b))
    with pytest.raises(TrustListError) as e:
        import_trust_list(forged, [pki.region_root(a)], now=_now())
    assert e.value.reason == "signature"
    # a payload altered after signing
    h, p, s = export_trust_list(_doc(a), pki.root_signer(a)).split(".")
    payload = peek_trust_list(f"{h}.{p}.{s}")
    payload["issuers"][0]["allowed_types"] = ["YYZZ"]
    p2 = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(TrustListError, match="signature"):
        import_trust_list(f"{h}.{p2}.{s}", [pki.region_root(a)], now=_now())


def test_issuer_claiming_undeclared_type(regions: tuple[Keyring, Keyring]) -> None:
    a, _ = regions
    bad = [ListedIssuer(PSB, "公安", pki.agency_signer(a, PSB).certificate, ("JZZM", "BYZS"))]
    text = export_trust_list(_doc(a, issuers=bad), pki.root_signer(a))
    with pytest.raises(TrustListError, match="claims type BYZS") as e:
        import_trust_list(text, [pki.region_root(a)], now=_now())
    assert e.value.reason == "type"
    good = export_trust_list(_doc(a), pki.root_signer(a))
    with pytest.raises(TrustListError, match="does not accept"):
        import_trust_list(good, [pki.region_root(a)], now=_now(), allowed_types={"110000": ["JZZM"]})


def test_signer_not_chaining_to_root(regions: tuple[Keyring, Keyring]) -> None:
    a, b = regions
    foreign = [ListedIssuer(PSB, "冒充", pki.agency_signer(b, PSB).certificate, ("JZZM",))]
    text = export_trust_list(_doc(a, issuers=foreign), pki.root_signer(a))
    with pytest.raises(TrustListError, match="does not chain") as e:
        import_trust_list(text, [pki.region_root(a)], now=_now())
    assert e.value.reason == "chain"


def test_expired_signer_and_expired_list(regions: tuple[Keyring, Keyring]) -> None:
    a, _ = regions
    cert = pki.agency_signer(a, PSB).certificate
    text = export_trust_list(
        _doc(a, next_update=cert.not_valid_after_utc + dt.timedelta(days=30)), pki.root_signer(a)
    )
    later = cert.not_valid_after_utc + dt.timedelta(days=1)
    with pytest.raises(TrustListError, match="expired on") as e:
        import_trust_list(text, [pki.region_root(a)], now=later)
    assert e.value.reason == "signer_expired"
    stale = export_trust_list(_doc(a, next_update=_now() - dt.timedelta(days=1)), pki.root_signer(a))
    with pytest.raises(TrustListError) as e:
        import_trust_list(stale, [pki.region_root(a)], now=_now())
    assert e.value.reason == "expired"


@pytest.mark.parametrize("text", ["", "abc", "a.b.c", "x" * 10, "e30.e30.e30"])
def test_garbage_refused(regions: tuple[Keyring, Keyring], text: str) -> None:
    with pytest.raises(TrustListError):
        import_trust_list(text, [pki.region_root(regions[0])], now=_now())


def test_wrong_typ_refused(regions: tuple[Keyring, Keyring]) -> None:
    a, _ = regions
    root = pki.region_root(a)
    from cryptography.hazmat.primitives.serialization import Encoding

    x5c = [base64.b64encode(root.public_bytes(Encoding.DER)).decode()]
    text = encode_jws(pki.root_signer(a), {"format": 1}, typ="JWT", extra_headers={"x5c": x5c})
    with pytest.raises(TrustListError, match="typ"):
        import_trust_list(text, [root], now=_now())
    assert isinstance(root, x509.Certificate)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ANCHOR: list[x509.Certificate] = []


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=400), st.builds(lambda a, b, c: f"{a}.{b}.{c}", st.text(max_size=100), st.text(max_size=100), st.text(max_size=60))))
def test_importing_garbage_only_ever_raises_trust_list_error(text: str) -> None:
    if not _ANCHOR:
        import tempfile

        _ANCHOR.append(pki.region_root(_region(Path(tempfile.mkdtemp()), "440000")))
    with pytest.raises(TrustListError):
        import_trust_list(text, _ANCHOR, now=_now())
