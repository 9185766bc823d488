"""``certstore issue``: issue one certificate from the command line (an agency's clerk)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ..errors import InvalidInput
from ._common import get_services

__all__ = ["register"]


def _fields(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--field takes name=value, got {pair[:40]!r}", field="field")
        out[name.strip()] = value
    return out


def register(group: click.Group) -> None:
    @group.command("issue")
    @click.option("--type", "type_code", required=True, help="certificate type code")
    @click.option("--issuer", required=True, help="issuing agency's USCC")
    @click.option("--holder-id", required=True, help="resident ID number or credit code of the holder")
    @click.option("--holder-name", required=True)
    @click.option("--field", "fields", multiple=True, help="name=value (repeat)")
    @click.option("--paper-serial", default=None, help="serial number of the paper copy")
    @click.option("--valid-from", type=click.DateTime(["%Y-%m-%d"]), default=None)
    @click.option("--valid-until", type=click.DateTime(["%Y-%m-%d"]), default=None)
    @click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="write the PDF here")
    @click.pass_context
    def issue(
        ctx: click.Context,
        type_code: str,
        issuer: str,
        holder_id: str,
        holder_name: str,
        fields: tuple[str, ...],
        paper_serial: str | None,
        valid_from: dt.datetime | None,
        valid_until: dt.datetime | None,
        out: Path | None,
    ) -> None:
        """Issue a certificate and write its signed PDF."""
        from ..issue_request import IssueRequest

        svc = get_services(ctx).certificates
        uscc = issuer.strip().upper()
        req = IssueRequest(
            type_code=type_code.strip(),
            holder_code=holder_id,
            holder_name=holder_name,
            fields=_fields(fields),
            paper_serial=paper_serial,
            valid_from=valid_from.date() if valid_from else None,
            valid_until=valid_until.date() if valid_until else None,
            issuer=uscc,
        )
        result = svc.issue(req, agency_uscc=uscc, actor="cli")
        view = result.certificate
        if out is not None:
            tmp = out.with_name(out.name + ".part")
            tmp.write_bytes(svc.pdf(view.identifier))
            tmp.replace(out)
        click.echo(view.identifier)
        click.echo(f"  {view.type_name_zh} for {view.holder_name} ({view.holder_code_masked})", err=True)
        if out is not None:
            click.echo(f"  PDF written to {out}", err=True)
