"""``idp staff …``: clerks and hotline agents (issue 13 §1), separate from citizens.

``add`` creates the account with its password (standard input, never the
command line) and its TOTP secret, printed once for the staff member's
authenticator app; ``reset-second-factor`` replaces a lost one the same way.
Bad input is one line on stderr and exit status 2 (:mod:`idp.cli`).
"""

from __future__ import annotations

import json

import click

from ..settings import IdpSettings
from ..staff.accounts import StaffEnrolment, StaffService
from .db import cli_actor, open_services
from .users import _read_password, _reason

__all__ = ["register"]


def _show_enrolment(enrolment: StaffEnrolment) -> None:
    click.echo("TOTP secret (shown once; add it to the staff member's authenticator app):")
    click.echo(f"  secret: {enrolment.secret}")
    click.echo(f"  uri:    {enrolment.uri}")


def register(group: click.Group) -> None:
    @group.group("staff")
    def staff() -> None:
        """Staff accounts: counter clerks and hotline agents (they act for citizens)."""

    @staff.command("add")
    @click.option("--username", required=True, help="3-64 characters of a-z 0-9 . _ -")
    @click.option("--name", required=True, help="the display name citizens are shown")
    @click.option("--kind", required=True, help="clerk (a service counter) or agent (a hotline)")
    @click.option("--office", required=True, help="the counter's or hotline's name")
    @click.option("--password-stdin", is_flag=True, required=True, help="read the password from standard input")
    @click.pass_obj
    def add(settings: IdpSettings, username: str, name: str, kind: str, office: str, password_stdin: bool) -> None:
        """Create a staff account with its password and TOTP second factor (both required)."""
        password = _read_password()
        services = open_services(settings)
        try:
            view, enrolment = StaffService.of(services).add(username, name, kind, office, password,
                                                            actor=cli_actor())
        finally:
            services.close()
        click.echo(f"created staff account {view.username} ({view.kind}, {view.office})")
        _show_enrolment(enrolment)

    @staff.command("list")
    @click.option("--json", "as_json", is_flag=True, help="one JSON array")
    @click.pass_obj
    def list_(settings: IdpSettings, as_json: bool) -> None:
        """List staff accounts (no secrets)."""
        services = open_services(settings)
        try:
            rows = StaffService.of(services).list()
        finally:
            services.close()
        if as_json:
            click.echo(json.dumps([{"username": r.username, "name": r.display_name, "kind": r.kind,
                                    "office": r.office, "sub": r.sub, "disabled": r.disabled} for r in rows],
                                  ensure_ascii=False))
            return
        for r in rows:
            state = "disabled" if r.disabled else "active"
            click.echo(f"{r.username}\t{r.kind}\t{r.office}\t{r.display_name}\t{state}")

    @staff.command("disable")
    @click.option("--username", required=True)
    @click.option("--reason", help="why (required; recorded in the audit log)")
    @click.option("--enable", is_flag=True, help="enable the account again instead")
    @click.pass_obj
    def disable(settings: IdpSettings, username: str, reason: str | None, enable: bool) -> None:
        """Disable a staff account: no more sign-ins, and its actor tokens stop working at once."""
        why = _reason(reason, required=True)
        services = open_services(settings)
        try:
            view = StaffService.of(services).set_disabled(username, not enable, reason=why, actor=cli_actor())
        finally:
            services.close()
        click.echo(f"staff account {view.username} {'enabled' if enable else 'disabled'}")

    @staff.command("reset-second-factor")
    @click.option("--username", required=True)
    @click.option("--reason", help="why (required; recorded in the audit log)")
    @click.pass_obj
    def reset_second_factor(settings: IdpSettings, username: str, reason: str | None) -> None:
        """Give a staff account a new TOTP secret (lost phone); the old one stops working."""
        why = _reason(reason, required=True)
        services = open_services(settings)
        try:
            enrolment = StaffService.of(services).reset_second_factor(username, reason=why, actor=cli_actor())
        finally:
            services.close()
        click.echo(f"second factor reset for {enrolment.username}")
        _show_enrolment(enrolment)
