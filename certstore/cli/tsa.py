"""``certstore tsa serve|issue|show``: the local RFC 3161 time-stamping authority (issue 15 §3)."""

from __future__ import annotations

import datetime as dt

import click

from keys import pki
from keys.keyring import open_keyring

from ._common import settings_of

__all__ = ["register"]


def register(group: click.Group) -> None:
    @group.group("tsa")
    def tsa_group() -> None:
        """The local time-stamping authority (the embedded default's YIWANG_CERTSTORE_TSA_URL)."""

    @tsa_group.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=5180, show_default=True, type=click.IntRange(0, 65535))
    @click.pass_context
    def serve(ctx: click.Context, host: str, port: int) -> None:
        """Answer RFC 3161 requests at http://HOST:PORT/tsa with the region's TSA key."""
        from ..tsa import serve_tsa

        serve_tsa(open_keyring(settings_of(ctx).common.keys), host=host, port=port)

    @tsa_group.command("issue")
    @click.option("--days", type=click.IntRange(1, 3650), default=None,
                  help="validity (default: until the issuing CA expires)")
    @click.pass_context
    def issue(ctx: click.Context, days: int | None) -> None:
        """Issue (or replace) the TSA certificate; a running `tsa serve` picks it up."""
        keyring = open_keyring(settings_of(ctx).common.keys)
        tsa = pki.issue_tsa(keyring, validity=dt.timedelta(days=days) if days else None)
        click.echo(f"TSA certificate {tsa.certificate.serial_number:x} valid until "
                   f"{tsa.certificate.not_valid_after_utc.isoformat(timespec='seconds')}")

    @tsa_group.command("show")
    @click.pass_context
    def show(ctx: click.Context) -> None:
        """The TSA certificate and the URL certstore timestamps with."""
        settings = settings_of(ctx)
        tsa = pki.tsa_signer(open_keyring(settings.common.keys))
        cert = tsa.certificate
        click.echo(f"subject:   {cert.subject.rfc4514_string()}")
        click.echo(f"serial:    {cert.serial_number:x}")
        click.echo(f"valid:     {cert.not_valid_before_utc.isoformat(timespec='seconds')} to "
                   f"{cert.not_valid_after_utc.isoformat(timespec='seconds')}")
        click.echo(f"level:     PAdES {settings.signing_level}; TSA URL {settings.tsa_url or '-'}")
