"""``certstore verify FILE.pdf|IMAGE.png|--text PAYLOAD``: exit status 0 only when valid."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInput
from ._common import get_services

__all__ = ["register"]


def register(group: click.Group) -> None:
    @group.command("verify")
    @click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
    @click.option("--text", default=None, help="the QR payload text (YW1:…)")
    @click.pass_context
    def verify(ctx: click.Context, file: Path | None, text: str | None) -> None:
        """Verify a certificate PDF, a QR image or a QR text; prints each check."""
        if (file is None) == (text is None):
            raise click.UsageError("give a FILE or --text, not both")
        svc = get_services(ctx).certificates
        if text is not None:
            result = svc.verify_qr(text.strip())
        else:
            assert file is not None
            try:
                data = file.read_bytes()
            except OSError as e:
                raise InvalidInput(f"cannot read {file}: {e.strerror}", field="file") from None
            result = svc.verify_file(data)
        for c in result.checks:
            mark = "ok  " if c.ok else "FAIL"
            click.echo(f"{mark} {c.name}" + (f": {c.reason}" if c.reason else ""))
        cert = result.certificate
        if cert is not None:
            click.echo(
                f"certificate {cert.identifier}: {cert.type_name_zh} / {cert.type_name_en}, "
                f"holder {cert.holder_name_public}, issuer {cert.issuer_name_zh}, "
                f"status {cert.status} {cert.status_zh} / {cert.status_en}"
            )
        click.echo("VALID" if result.valid else "NOT VALID")
        if not result.valid:
            raise click.exceptions.Exit(1)
