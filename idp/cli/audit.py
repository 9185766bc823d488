"""``idp audit verify | checkpoint | rotate-key | tail`` (issue 3 §8, issue 11 §6)."""

from __future__ import annotations

import json
import sys

import click

from ..audit import MAC_PURPOSE, AuditLog
from ..db import Database
from ..settings import IdpSettings
from .db import open_database

__all__ = ["register"]


def _audit_log(settings: IdpSettings, db: Database) -> AuditLog:
    """The audit log with its MAC keys and anchor file, as the running idp has it."""
    from keys.keyring import open_keyring

    return AuditLog(db, keyring=open_keyring(settings.common.keys), anchor_path=settings.audit_anchor_path)


def register(group: click.Group) -> None:
    @group.group("audit")
    def audit() -> None:
        """The hash-chained audit log."""

    @audit.command("verify")
    @click.pass_obj
    def verify(settings: IdpSettings) -> None:
        """Check every record's MAC and link, and that every anchored head is still there; exit 2 naming the first break."""
        db = open_database(settings)
        try:
            report = _audit_log(settings, db).verify()
        finally:
            db.dispose()
        if report.intact:
            extra = f", {report.legacy} from before the chain was keyed" if report.legacy else ""
            skipped = (
                f" ({report.unverifiable_anchors} signed with retired anchor keys not counted)"
                if report.unverifiable_anchors
                else ""
            )
            click.echo(
                f"{report.records} records{extra}, chain intact; "
                f"{report.anchors} checkpoints outside the database agree{skipped}"
            )
            return
        click.echo(f"idp: audit chain broken at seq {report.broken_seq}: {report.problem}", err=True)
        sys.exit(2)

    @audit.command("checkpoint")
    @click.pass_obj
    def checkpoint(settings: IdpSettings) -> None:
        """Verify the chain and append a signed checkpoint of its head to the anchor file."""
        db = open_database(settings)
        try:
            log = _audit_log(settings, db)
            try:
                written = log.checkpoint()
            except ValueError as e:
                click.echo(f"idp: no checkpoint written: {e}", err=True)
                sys.exit(2)
        finally:
            db.dispose()
        assert log.anchor is not None
        click.echo(f"anchored record {written.seq} in {log.anchor.path}")

    @audit.command("rotate-key")
    @click.pass_obj
    def rotate_key(settings: IdpSettings) -> None:
        """Key new records with a new audit MAC key; the old key is kept so old records still verify."""
        from keys.keyring import open_keyring

        kid = open_keyring(settings.common.keys).mac_keyset(MAC_PURPOSE).rotate().kid
        click.echo(f"audit records are now keyed with {kid}; running idp processes switch within a second")

    @audit.command("tail")
    @click.option("-n", "count", type=click.IntRange(1, 10_000), default=20, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
    @click.pass_obj
    def tail(settings: IdpSettings, count: int, as_json: bool) -> None:
        """Show the newest records, oldest first."""
        db = open_database(settings)
        try:
            events = _audit_log(settings, db).tail(count)
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
                            "key_id": e.key_id,
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
