"""``certstore init [--demo]``: everything a fresh deployment needs, idempotently.

Schema upgrade, the region CA (if missing), and with ``--demo`` the demo
certificate types and three demo issuers (``make demo``).
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from keys import pki
from keys.errors import KeyNotFound

from ..db import upgrade
from ..types import demo_type_files, load_type_file
from ._common import get_services, settings_of

__all__ = ["register", "DEMO_ISSUERS", "DemoIssuer"]


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


def register(group: click.Group) -> None:
    @group.command("init")
    @click.option("--demo", is_flag=True, help="also add the demo types and issuers")
    @click.pass_context
    def init(ctx: click.Context, demo: bool) -> None:
        """Upgrade the schema, create the region CA if missing, optionally add demo data."""
        settings = settings_of(ctx)
        svc = get_services(ctx)
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
