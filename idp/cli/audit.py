"""``idp audit verify`` and ``idp audit tail`` (issue 3 §8)."""

from __future__ import annotations

import json
import sys

import click

from ..audit import AuditLog
from ..settings import IdpSettings
from .db import open_database

__all__ = ["register"]


def register(group: click.Group) -> None:
    @group.group("audit")
    def audit() -> None:
        """The hash-chained audit log."""

    @audit.command("verify")
    @click.pass_obj
    def verify(settings: IdpSettings) -> None:
        """Walk the chain; exit 2 naming the first record that was altered or removed."""
        db = open_database(settings)
        try:
            report = AuditLog(db).verify()
        finally:
            db.dispose()
        if report.intact:
            click.echo(f"{report.records} records, chain intact")
            return
        click.echo(f"idp: audit chain broken at seq {report.broken_seq}: {report.problem}", err=True)
        sys.exit(2)

    @audit.command("tail")
    @click.option("-n", "count", type=click.IntRange(1, 10_000), default=20, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
    @click.pass_obj
    def tail(settings: IdpSettings, count: int, as_json: bool) -> None:
        """Show the newest records, oldest first."""
        db = open_database(settings)
        try:
            events = AuditLog(db).tail(count)
        finally:
            db.dispose()
        for e in events:
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "seq": e.seq,
                            "at": e.at.isoformat(),
                            "kind": e.kind,
                            "actor": e.actor,
                            "subject": e.subject,
                            "client_id": e.client_id,
                            "ip": e.ip,
                            "detail": e.detail,
                            "hash": e.hash,
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                detail = json.dumps(e.detail, ensure_ascii=False) if e.detail else ""
                click.echo(
                    f"{e.seq}\t{e.at.isoformat(timespec='seconds')}\t{e.kind}\t"
                    f"{e.actor or '-'}\t{e.subject or '-'}\t{e.client_id or '-'}\t{e.ip or '-'}\t{detail}"
                )
