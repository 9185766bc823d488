"""``idp logout …`` and ``idp sessions …``: single sign-out operations.

``idp logout deliveries`` shows what back-channel logout owes and to whom
(issue 4 §4); ``idp logout resend-pending`` re-queues pending deliveries (the
recovery an operator runs after losing Redis; workers also run it at start).
``idp sessions end`` is the administrator's way of ending sessions: it goes
through ``SessionStore.end`` like every other sign-out, so the relying
parties are told and the tokens revoked.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import click

from keys.identifiers import parse_resident_id

from ..errors import InvalidInput, NotFound
from ..logout.delivery import DELIVERY_STATUSES
from ..settings import IdpSettings

if TYPE_CHECKING:
    from ..container import Container

__all__ = ["register"]

logger = logging.getLogger(__name__)

_DRAIN_MS = 10_000


def _container(settings: IdpSettings) -> Container:
    """What these commands need: sessions and single sign-out; they issue nothing."""
    from ..container import Container

    return Container.from_settings(settings, provider=False)


def _drain(stack: Container) -> None:
    """With the in-process queue, deliver now: this process's queue dies with it.

    Whatever is still pending afterwards (an RP that is down) is recovered by
    the next worker start or ``idp logout resend-pending``.
    """
    if not stack.logout.queue.in_process:
        return
    stack.logout.queue.start_worker(sweep=False)
    try:
        stack.logout.queue.join(timeout_ms=_DRAIN_MS)
    except Exception:  # QueueJoinTimeout: retries wait in the delay queue
        logger.info("some deliveries are still pending; they are retried later")


def _citizen_id(stack: Container, id_number: str) -> int:
    try:
        parse_resident_id(id_number)
    except Exception as e:
        raise InvalidInput(f"--citizen: {e}") from None
    citizen = stack.services.accounts.find_by_id_number(id_number)
    if citizen is None:
        raise NotFound("no citizen with that ID number")
    return int(citizen.id)


def register(group: click.Group) -> None:
    @group.group("logout")
    def logout() -> None:
        """Back-channel logout deliveries."""

    @logout.command("deliveries")
    @click.option("--status", type=click.Choice(DELIVERY_STATUSES), help="only this status")
    @click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="one JSON document")
    @click.pass_obj
    def deliveries(settings: IdpSettings, status: str | None, limit: int, as_json: bool) -> None:
        """Show pending, delivered and failed back-channel logout deliveries."""
        stack = _container(settings)
        try:
            rows = stack.logout.service.deliveries(status=status, limit=limit)
            counts = stack.logout.service.counts()
        finally:
            stack.close()
        if as_json:
            click.echo(json.dumps({"counts": counts, "deliveries": [r.as_json() for r in rows]}, indent=2))
            return
        click.echo(
            f"pending {counts['pending']}  delivered {counts['delivered']}  failed {counts['failed']}"
        )
        for r in rows:
            when = (r.delivered_at or r.next_attempt_at or r.created_at).strftime("%Y-%m-%d %H:%M:%S")
            error = f"  {r.last_error}" if r.last_error and r.status != "delivered" else ""
            click.echo(
                f"{r.id:>6}  {r.status:<9}  {r.client_id:<24}  attempts {r.attempts:<3}  "
                f"{r.reason or '':<17}  {when}Z  {r.uri}{error}"
            )

    @logout.command("resend-pending")
    @click.option("--only-lost", is_flag=True, help="skip deliveries whose job is still queued")
    @click.pass_obj
    def resend_pending(settings: IdpSettings, only_lost: bool) -> None:
        """Re-queue pending deliveries (after Redis lost its queue, or to retry now)."""
        stack = _container(settings)
        try:
            n = stack.logout.service.resend_pending(only_lost=only_lost)
            _drain(stack)
        finally:
            stack.close()
        click.echo(f"re-queued {n} pending deliveries")

    @group.group("sessions")
    def sessions() -> None:
        """SSO sessions."""

    @sessions.command("end")
    @click.option("--sid", help="end this session")
    @click.option("--citizen", "id_number", help="end every session of the citizen with this ID number")
    @click.option("--all", "end_all", is_flag=True, help="end every session")
    @click.option(
        "--everywhere",
        is_flag=True,
        help="with --citizen: also revoke offline tokens (sign out everywhere)",
    )
    @click.pass_obj
    def end(settings: IdpSettings, sid: str | None, id_number: str | None, end_all: bool, everywhere: bool) -> None:
        """End sessions as an administrator; their relying parties get logout tokens."""
        if sum(bool(x) for x in (sid, id_number, end_all)) != 1:
            raise click.UsageError("give exactly one of --sid, --citizen, --all")
        stack = _container(settings)
        try:
            if sid:
                ended = [s for s in [stack.sessions.end(sid, "admin")] if s is not None]
            elif id_number:
                cid = _citizen_id(stack, id_number)
                reason = "sign_out_everywhere" if everywhere else "admin"
                ended = stack.sessions.end_all_for_citizen(str(cid), reason)
            else:
                ended = []
                for one in stack.sessions.all_sids():
                    s = stack.sessions.end(one, "admin")
                    if s is not None:
                        ended.append(s)
            _drain(stack)
        finally:
            stack.close()
        click.echo(f"ended {len(ended)} session(s)")

    @sessions.command("sweep")
    @click.pass_obj
    def sweep(settings: IdpSettings) -> None:
        """End sessions past their idle or absolute deadline (the worker does this periodically)."""
        stack = _container(settings)
        try:
            before = len(stack.sessions.all_sids())
            stack.sessions.sweep_expired()
            after = len(stack.sessions.all_sids())
            _drain(stack)
        finally:
            stack.close()
        click.echo(f"ended {before - after} expired session(s)")
