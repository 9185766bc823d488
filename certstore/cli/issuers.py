"""``certstore issuers add|list``: issuing agencies and their signer certificates."""

from __future__ import annotations

import click

from ._common import get_services

__all__ = ["register"]


def register(group: click.Group) -> None:
    @group.group("issuers")
    def issuers() -> None:
        """Issuing agencies."""

    @issuers.command("add")
    @click.option("--uscc", required=True, help="the agency's unified social credit code")
    @click.option("--name", required=True, help="the agency's name in Chinese")
    @click.option("--name-en", default=None, help="the agency's name in English")
    @click.option("--region", required=True, help="region code, e.g. 110000")
    @click.option("--type", "types", multiple=True, help="a certificate type it may issue (repeat)")
    @click.option("--client-id", default=None, help="the idp client that issues for it through the API")
    @click.pass_context
    def issuers_add(
        ctx: click.Context,
        uscc: str,
        name: str,
        name_en: str | None,
        region: str,
        types: tuple[str, ...],
        client_id: str | None,
    ) -> None:
        """Add or update an issuer; issues its signer certificate if it has none."""
        info = get_services(ctx).registry.add_issuer(
            uscc=uscc, name_zh=name, name_en=name_en, region=region, types=types, client_id=client_id
        )
        cert = info.certificate
        click.echo(
            f"issuer {info.uscc} {info.name_zh}: types {', '.join(info.allowed_types) or '(none)'}; "
            f"client {info.client_id or '(none)'}; signer certificate serial "
            f"{cert.serial_number:x} valid until {cert.not_valid_after_utc:%Y-%m-%d}"
            if cert
            else f"issuer {info.uscc} {info.name_zh}"
        )

    @issuers.command("list")
    @click.pass_context
    def issuers_list(ctx: click.Context) -> None:
        """List issuers."""
        for i in get_services(ctx).registry.issuers():
            click.echo(f"{i.uscc}\t{i.region}\t{','.join(i.allowed_types)}\t{i.client_id or '-'}\t{i.name_zh}")
