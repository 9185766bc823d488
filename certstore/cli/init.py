"""``certstore init [--demo]``: everything a fresh deployment needs, idempotently.

Schema upgrade, the region CA (if missing), and with ``--demo`` the demo
certificate types and three demo issuers (``make demo``). With
``--demo --with-certificates`` (``python -m demo.serve`` runs that) also one
certificate of each demo type, so the demo citizen's wallet is not empty: a certificate of
residence and a diploma for the citizen, and a business licence for a demo
company whose legal representative the citizen is (a licence's holder is a
company, identified by its credit code, so it is not in the citizen's wallet).
They are issued through the certificate service with fixed idempotency keys,
so running this again issues nothing new.

certstore never imports idp: the citizen below is the one ``idp init --demo``
creates (a test in ``tests/demo`` checks that the two agree).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from keys import pki
from keys.errors import KeyNotFound

from ..db import upgrade
from ..types import demo_type_files, load_type_file
from ._common import get_services, settings_of

if TYPE_CHECKING:
    from ..wiring import Services

__all__ = ["register", "DEMO_ISSUERS", "DemoIssuer", "DEMO_HOLDER_ID", "DEMO_HOLDER_NAME", "DEMO_CERTIFICATES"]


@dataclass(frozen=True)
class DemoIssuer:
    uscc: str
    name_zh: str
    name_en: str
    types: tuple[str, ...]
    client_id: str


# Demo agencies (credit codes with valid check characters; not real agencies).
DEMO_ISSUERS = (
    DemoIssuer(
        "111101050000000017",
        "北京市公安局朝阳分局",
        "Beijing Public Security Bureau, Chaoyang Branch",
        ("JZZM",),
        "demo-psb",
    ),
    DemoIssuer(
        "11110105000000002A",
        "北京市朝阳区市场监督管理局",
        "Chaoyang District Administration for Market Regulation",
        ("YYZZ",),
        "demo-amr",
    ),
    DemoIssuer(
        "121100004000000014",
        "北京示范大学",
        "Beijing Demonstration University",
        ("BYZS",),
        "demo-university",
    ),
)


DEMO_HOLDER_ID = "11010519491231002X"
DEMO_HOLDER_NAME = "张三"
DEMO_COMPANY_USCC = "91110105MA0000000Y"

# (issuer USCC, type, holder code, holder name, fields, paper serial)
DEMO_CERTIFICATES: tuple[tuple[str, str, str, str, dict[str, str], str], ...] = (
    (
        "111101050000000017", "JZZM", DEMO_HOLDER_ID, DEMO_HOLDER_NAME,
        {"address": "北京市朝阳区建国门外大街1号院3号楼1502室", "residence_since": "2019-03-01", "purpose": "入学"},
        "京朝居 2026 000001",
    ),
    (
        "121100004000000014", "BYZS", DEMO_HOLDER_ID, DEMO_HOLDER_NAME,
        {
            "school": "北京示范大学", "major": "计算机科学与技术", "education_level": "本科",
            "admission_date": "1967-09-01", "graduation_date": "1971-07-01",
            "diploma_number": "100011197105000001",
        },
        "示大 1971 000001",
    ),
    (
        "11110105000000002A", "YYZZ", DEMO_COMPANY_USCC, "北京示范科技有限公司",
        {
            "company_type": "有限责任公司", "legal_representative": DEMO_HOLDER_NAME,
            "registered_capital": "100万元人民币", "established_on": "2020-05-20",
            "address": "北京市朝阳区建国路88号", "business_scope": "软件开发；技术服务。",
        },
        "朝市监 2020 000001",
    ),
)


def _seed_certificates(svc: Services) -> None:
    from ..issue_request import IssueRequest

    for uscc, type_code, holder, name, fields, paper in DEMO_CERTIFICATES:
        req = IssueRequest(
            type_code=type_code,
            holder_code=holder,
            holder_name=name,
            fields=fields,
            paper_serial=paper,
            issuer=uscc,
            idempotency_key=f"demo-seed-{type_code}",
        )
        view = svc.certificates.issue(req, agency_uscc=uscc, actor="certstore init --demo").certificate
        click.echo(f"certificate {view.identifier} {view.type_name_zh} for {view.holder_name} ({view.holder_code_masked})")


@contextlib.contextmanager
def owner_only_sqlite(url: str) -> Iterator[None]:
    """A SQLite database file is created 0600 (owner only), and tightened if it exists."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    path = Path(u.database) if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:") else None
    old = os.umask(0o077) if path is not None else None
    try:
        yield
    finally:
        if old is not None:
            os.umask(old)
        if path is not None and path.exists():
            os.chmod(path, 0o600)


def register(group: click.Group) -> None:
    @group.command("init")
    @click.option("--demo", is_flag=True, help="also add the demo types and issuers")
    @click.option(
        "--with-certificates", is_flag=True, help="with --demo: also issue one certificate of each demo type"
    )
    @click.pass_context
    def init(ctx: click.Context, demo: bool, with_certificates: bool) -> None:
        """Upgrade the schema, create the region CA if missing, optionally add demo data."""
        if with_certificates and not demo:
            raise click.UsageError("--with-certificates needs --demo")
        settings = settings_of(ctx)
        svc = get_services(ctx)
        with owner_only_sqlite(settings.database_url):
            upgrade(svc.engine)
        click.echo("database schema up to date")
        try:
            ca = pki.region_ca(svc.keyring)
            click.echo(f"region CA {ca.region} present")
        except KeyNotFound:
            ca = pki.init_region(
                svc.keyring,
                region=settings.region,
                name=f"Yiwang region {settings.region}",
                crl_url=f"{settings.public_url}/pki/crl/issuing.crl",
            )
            click.echo(f"created region CA {ca.region}")
        if not demo:
            return
        for path in demo_type_files():
            spec = load_type_file(path)
            svc.registry.add_type(spec)
            click.echo(f"type {spec.code} {spec.name_zh}")
        for d in DEMO_ISSUERS:
            info = svc.registry.add_issuer(
                uscc=d.uscc,
                name_zh=d.name_zh,
                name_en=d.name_en,
                region=settings.region,
                types=d.types,
                client_id=d.client_id,
            )
            click.echo(f"issuer {info.uscc} {info.name_zh} ({', '.join(info.allowed_types)})")
        if with_certificates:
            _seed_certificates(svc)
