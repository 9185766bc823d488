"""``certstore revoke|suspend|reinstate|cancel|withdraw|transfer-out ID --reason …``,
``certstore expire-due`` and ``certstore status show|history ID`` (issue 6).

The operator's commands: any issuer's certificate, the actor recorded as
``cli:<user>``. Agencies change their own certificates through the API.
"""

from __future__ import annotations

import getpass

import click

from ..lifecycle import Action
from ._common import get_services

__all__ = ["register"]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry in a container
        return "cli"


def _change_command(group: click.Group, name: str, action: Action, help_text: str) -> None:
    @group.command(name, help=help_text)
    @click.argument("identifier")
    @click.option("--reason", required=True, help="why (recorded in the audit log, shown to the holder)")
    @click.pass_context
    def _cmd(ctx: click.Context, identifier: str, reason: str) -> None:
        svc = get_services(ctx).certificates
        event = svc.lifecycle.change(identifier, action, reason=reason, actor=_actor(), agency_uscc=None)
        click.echo(
            f"{event.identifier}: {event.from_status.value} {event.from_status.label_en} -> "
            f"{event.to_status.value} {event.to_status.label_en} ({event.to_status.label_zh})"
        )


def register(group: click.Group) -> None:
    _change_command(group, "revoke", Action.REVOKE, "Revoke (03 撤销) a certificate issued in error.")
    _change_command(group, "suspend", Action.SUSPEND, "Suspend (02 暂扣) a valid certificate.")
    _change_command(group, "reinstate", Action.REINSTATE, "Reinstate a suspended certificate (back to 01).")
    _change_command(group, "cancel", Action.CANCEL, "Cancel (04 注销) a certificate.")
    _change_command(group, "withdraw", Action.WITHDRAW, "Withdraw (07 吊销) a certificate as a sanction.")
    _change_command(group, "transfer-out", Action.TRANSFER_OUT, "Mark a certificate transferred out (06 转出).")

    @group.command("expire-due")
    @click.pass_context
    def expire_due(ctx: click.Context) -> None:
        """Set every certificate past the end of its validity to 05 expired (run daily)."""
        events = get_services(ctx).certificates.lifecycle.expire_due()
        for e in events:
            click.echo(f"{e.identifier}: expired")
        click.echo(f"{len(events)} certificate(s) expired")

    @group.group("status")
    def status() -> None:
        """Certificate status: show, history, status lists."""

    @status.command("show")
    @click.argument("identifier")
    @click.pass_context
    def show(ctx: click.Context, identifier: str) -> None:
        """A certificate's status and what may be done next."""
        from ..lifecycle import allowed_actions

        view = get_services(ctx).certificates.get(identifier)
        nxt = ", ".join(a.value for a in allowed_actions(view.status) if a is not Action.SUPERSEDE) or "nothing (final)"
        click.echo(f"{view.identifier}: {view.status} {view.status_zh} / {view.status_en}; next: {nxt}")

    @status.command("history")
    @click.argument("identifier")
    @click.pass_context
    def history(ctx: click.Context, identifier: str) -> None:
        """Every audited event of a certificate."""
        for ev in get_services(ctx).certificates.lifecycle.history(identifier.strip()):
            detail = ev.detail or {}
            extra = f" {detail.get('from', '')}->{detail.get('to', '')} ({detail.get('reason', '')})" if "to" in detail else ""
            click.echo(f"{ev.at.isoformat()} {ev.action} by {ev.actor}{extra}")

    @status.command("cache")
    @click.pass_context
    def cache(ctx: click.Context) -> None:
        """Status lists this verifier has fetched, and how long ago."""
        svc = get_services(ctx).certificates
        d = svc.status_cache.cache_dir
        import json

        rows = []
        for p in sorted(d.glob("*.json")) if d is not None and d.is_dir() else []:
            try:
                data = json.loads(p.read_text())
                rows.append((data["uri"], data["fetched_at"]))
            except (OSError, ValueError, KeyError):
                continue
        for uri, at in rows:
            click.echo(f"{uri} fetched {at}")
        if not rows:
            click.echo("no status list fetched yet")
