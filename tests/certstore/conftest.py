"""Fixtures for certstore: settings on the per-test database, a region CA, demo data, tokens."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from certstore.cli import main
from certstore.settings import CertstoreSettings
from certstore.tokens import StaticJwksSource
from keys.config import CommonSettings
from keys.jws import encode_jws
from keys.keyring import open_keyring

if TYPE_CHECKING:
    from certstore.wiring import Services

ISSUER_URL = "http://idp.test"
PSB = "111101050000000017"  # demo issuer of JZZM
AMR = "11110105000000002A"  # demo issuer of YYZZ
UNI = "121100004000000014"  # demo issuer of BYZS
PERSON_ID = "11010519491231002X"
COMPANY = "91110105MA00000012"

DEMO_REQUESTS: dict[str, dict[str, Any]] = {
    "JZZM": {
        "issuer": PSB,
        "body": {
            "type": "JZZM",
            "holder_code": PERSON_ID,
            "holder_name": "张三丰",
            "paper_serial": "京朝居 2026 000123",
            "fields": {"address": "北京市朝阳区建国门外大街1号院3号楼1502室", "residence_since": "2019-03-01", "purpose": "入学"},
        },
    },
    "YYZZ": {
        "issuer": AMR,
        "body": {
            "type": "YYZZ",
            "holder_code": COMPANY,
            "holder_name": "北京一网通达数字政务科技服务有限责任公司朝阳第一分公司",
            "paper_serial": "N 110105 2026 004567",
            "fields": {
                "company_type": "有限责任公司",
                "legal_representative": "欧阳建国",
                "registered_capital": "人民币伍仟万元整",
                "established_on": "2015-06-18",
                "address": "北京市朝阳区东三环中路5号财富金融中心写字楼45层4501-4510单元",
                "business_scope": "技术开发、技术咨询、技术服务；软件开发；数据处理；信息系统集成服务；"
                "计算机系统服务（依法须经批准的项目，经相关部门批准后依批准的内容开展经营活动）",
            },
        },
    },
    "BYZS": {
        "issuer": UNI,
        "body": {
            "type": "BYZS",
            "holder_code": PERSON_ID,
            "holder_name": "李四",
            "paper_serial": "1000120260500123",
            "fields": {
                "school": "北京示范大学",
                "major": "计算机科学与技术",
                "education_level": "本科",
                "admission_date": "2022-09-01",
                "graduation_date": "2026-06-30",
                "diploma_number": "100011202605001234",
            },
        },
    },
}


def make_settings(tmp_path: Path, database_url: str, **changes: Any) -> CertstoreSettings:
    common = CommonSettings.from_values(
        {"HOME": tmp_path / "home", "DATABASE_URL": database_url, "ISSUER": ISSUER_URL},
        default_issuer=ISSUER_URL,
    )
    return CertstoreSettings(common=common, **changes)


@pytest.fixture
def cs_settings(tmp_path: Path, database_url: str) -> CertstoreSettings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def idp_keys(tmp_path: Path) -> Any:
    """A stand-in for the idp's token key set (its own key ring)."""
    ring = open_keyring(make_settings(tmp_path / "idp", "sqlite://").common.keys)
    return ring.keyset("idp-token")


@pytest.fixture
def jwks_source(idp_keys: Any) -> StaticJwksSource:
    return StaticJwksSource(idp_keys.jwks())


@pytest.fixture
def mint(idp_keys: Any) -> Callable[..., str]:
    """Mint an RFC 9068 access token as the idp would."""

    def _mint(client_id: str = "demo-psb", scope: str = "certs:issue", **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER_URL,
            "sub": client_id,
            "aud": "certstore",
            "client_id": client_id,
            "scope": scope,
            "jti": f"j{now}",
            "iat": now,
            "exp": now + 300,
        }
        typ = overrides.pop("typ", "at+jwt")
        signer = overrides.pop("signer", None) or idp_keys.active()
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return encode_jws(signer, claims, typ=typ)

    return _mint


def populate(svc: Services) -> None:
    """What ``certstore init --demo`` does, without the CLI."""
    from certstore.cli.init import DEMO_ISSUERS
    from certstore.db import upgrade
    from certstore.types import demo_type_files, load_type_file
    from keys import pki

    upgrade(svc.engine)
    pki.init_region(svc.keyring, region="110000", name="Test region", crl_url="http://127.0.0.1:5100/pki/crl/issuing.crl")
    for path in demo_type_files():
        svc.registry.add_type(load_type_file(path))
    for d in DEMO_ISSUERS:
        svc.registry.add_issuer(
            uscc=d.uscc, name_zh=d.name_zh, name_en=d.name_en,
            region="110000", types=d.types, client_id=d.client_id,
        )


@pytest.fixture
def services(cs_settings: CertstoreSettings, jwks_source: StaticJwksSource) -> Iterator[Services]:
    from certstore.wiring import build_services

    svc = build_services(cs_settings, jwks_source=jwks_source)
    populate(svc)
    yield svc
    svc.close()


@pytest.fixture
def app(services: Services) -> Any:
    from certstore.web import create_app

    app = create_app(services=services)
    app.testing = True
    return app


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# -- the command line, in-process ---------------------------------------------------


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            rc = main(list(args))  # click returns the exit status outside standalone mode
            code = rc if isinstance(rc, int) else 0
        except SystemExit as e:
            code = int(e.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(yiwang_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    for k, v in yiwang_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("YIWANG_ISSUER", "http://idp.test")
    return Cli(capsys)


@pytest.fixture
def demo(cli: Cli) -> Cli:
    code, out, err = cli("init", "--demo")
    assert code == 0, err
    return cli


def issue_args(code: str, out: Path) -> list[str]:
    body = DEMO_REQUESTS[code]["body"]
    args = [
        "issue", "--type", code, "--issuer", DEMO_REQUESTS[code]["issuer"],
        "--holder-id", body["holder_code"], "--holder-name", body["holder_name"],
        "--paper-serial", body["paper_serial"], "--out", str(out),
    ]
    for k, v in body["fields"].items():
        args += ["--field", f"{k}={v}"]
    return args


