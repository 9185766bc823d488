"""``idp users …``: citizen accounts (issue 3 §1).

Passwords are read from standard input (``--password-stdin``), never from
the command line where ``ps`` and shell history would see them. Nothing here
prints an unmasked ID number.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from keys.errors import InvalidIdentifier
from keys.identifiers import parse_resident_id

from ..errors import InvalidInput, NotFound
from ..settings import IdpSettings
from .db import cli_actor, open_services

__all__ = ["register"]


def _id_number(value: str) -> str:
    try:
        return parse_resident_id(value).number
    except InvalidIdentifier as e:
        raise InvalidInput(f"--id-number: {e}") from None


def _reason(value: str | None, *, required: bool) -> str:
    reason = (value or "").strip()
    if required and not reason:
        raise InvalidInput("--reason: say why (it goes into the audit log)")
    if len(reason) > 500 or any(ord(c) < 32 for c in reason):
        raise InvalidInput("--reason: at most 500 characters, on one line")
    if re.search(r"[0-9]{17}[0-9Xx]", reason):  # the audit log refuses unmasked ID numbers
        raise InvalidInput("--reason: write no ID number in the reason (the command names the account)")
    return reason


def _read_password() -> str:
    if sys.stdin.isatty():  # typed by a person: hidden, twice
        return str(click.prompt("password", hide_input=True, confirmation_prompt=True, err=True))
    line = sys.stdin.readline()
    if not line:
        raise InvalidInput("--password-stdin: nothing on standard input")
    return line.rstrip("\r\n")


def register(group: click.Group) -> None:
    @group.group("users")
    def users() -> None:
        """Citizen accounts."""

    @users.command("add")
    @click.option("--id-number", required=True, help="the resident ID number (18 characters)")
    @click.option("--name", required=True)
    @click.option("--password-stdin", is_flag=True, help="read the password from standard input")
    @click.option("--phone")
    @click.option("--email")
    @click.pass_obj
    def add(
        settings: IdpSettings,
        id_number: str,
        name: str,
        password_stdin: bool,
        phone: str | None,
        email: str | None,
    ) -> None:
        """Create a citizen account."""
        number = _id_number(id_number)
        password = _read_password() if password_stdin else None
        services = open_services(settings)
        try:
            citizen = services.accounts.add(
                number, name, password, phone=phone, email=email, actor=cli_actor()
            )
        finally:
            services.close()
        click.echo(f"created {citizen.id_number_masked} ({citizen.name})")
        if password is None:
            click.echo("no password set yet: use `idp users set-password`", err=True)

    @users.command("set-password")
    @click.option("--id-number", required=True)
    @click.option("--password-stdin", is_flag=True, required=True)
    @click.pass_obj
    def set_password(settings: IdpSettings, id_number: str, password_stdin: bool) -> None:
        """Set or replace a citizen's password (read from standard input)."""
        number = _id_number(id_number)
        password = _read_password()
        services = open_services(settings)
        try:
            citizen = services.accounts.set_password(number, password, actor=cli_actor())
        finally:
            services.close()
        from ..logout.runtime import end_sessions_after_password_change

        ended = end_sessions_after_password_change(settings, citizen.id)  # issue 4 §4
        click.echo(f"password set for {citizen.id_number_masked}; {ended} session(s) ended")

    @users.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--encoding", default="utf-8", show_default=True, help="e.g. gb18030 for Excel exports")
    @click.pass_obj
    def import_(settings: IdpSettings, file: Path, encoding: str) -> None:
        """Import citizens from a CSV file (id_number,name[,phone][,email][,password]).

        Bad rows are listed with their line and reason; the good rows are
        imported. Exit status 0 if any row was imported, 1 if none, 2 if the
        file itself cannot be read.
        """
        services = open_services(settings)
        try:
            rows = services.accounts.load_csv(file, encoding=encoding)
            with click.progressbar(length=len(rows), label="importing", file=sys.stderr) as bar:
                report = services.accounts.import_rows(rows, progress=bar.update, actor=cli_actor())
        finally:
            services.close()
        click.echo(f"imported {report.imported}, rejected {len(report.rejected)}")
        for r in report.rejected:
            click.echo(f"line {r.line}: {r.reason}")
        if report.imported == 0 and report.rejected:
            sys.exit(1)

    @users.command("totp-enrol")
    @click.option("--id-number", required=True)
    @click.pass_obj
    def totp_enrol(settings: IdpSettings, id_number: str) -> None:
        """Give a citizen a TOTP second factor; prints the QR code to scan, once."""
        number = _id_number(id_number)
        services = open_services(settings)
        try:
            enrolment = services.accounts.enrol_totp(number, actor=cli_actor())
        finally:
            services.close()
        import qrcode

        qr = qrcode.QRCode(border=1)
        qr.add_data(enrolment.uri)
        qr.print_ascii(out=sys.stdout, invert=True)
        click.echo(enrolment.uri)
        click.echo("scan this now: the secret is not shown again", err=True)

    @users.command("show")
    @click.option("--id-number", required=True)
    @click.pass_obj
    def show(settings: IdpSettings, id_number: str) -> None:
        """Show an account (masked)."""
        number = _id_number(id_number)
        services = open_services(settings)
        try:
            citizen = services.accounts.find_by_id_number(number)
        finally:
            services.close()
        if citizen is None:
            raise InvalidInput("no account with this ID number")
        click.echo(f"id number:  {citizen.id_number_masked}")
        click.echo(f"name:       {citizen.name}")
        click.echo(f"phone:      {citizen.phone or '-'}")
        click.echo(f"email:      {citizen.email or '-'}")
        click.echo(f"password:   {'set' if citizen.password_hash else 'not set'}")
        click.echo(f"second factor: {'TOTP' if citizen.has_totp else 'none'}")
        click.echo(f"disabled:   {'yes' if citizen.disabled else 'no'}")
        click.echo(f"created:    {citizen.created_at.isoformat(timespec='seconds')}")

    def _set_disabled(settings: IdpSettings, id_number: str, disabled: bool) -> None:
        number = _id_number(id_number)
        services = open_services(settings)
        try:
            citizen = services.accounts.set_disabled(number, disabled, actor=cli_actor())
        finally:
            services.close()
        click.echo(f"{citizen.id_number_masked} {'disabled' if disabled else 'enabled'}")

    @users.command("disable")
    @click.option("--id-number", required=True)
    @click.pass_obj
    def disable(settings: IdpSettings, id_number: str) -> None:
        """Stop a citizen from signing in."""
        _set_disabled(settings, id_number, True)

    @users.command("enable")
    @click.option("--id-number", required=True)
    @click.pass_obj
    def enable(settings: IdpSettings, id_number: str) -> None:
        """Allow a disabled citizen to sign in again."""
        _set_disabled(settings, id_number, False)

    @users.command("unlock")
    @click.option("--id-number", required=True)
    @click.option("--reason", help="why (recorded in the audit log)")
    @click.pass_obj
    def unlock(settings: IdpSettings, id_number: str, reason: str | None) -> None:
        """Clear a citizen's failed-login counters (the per-address ones are kept)."""
        number = _id_number(id_number)
        why = _reason(reason, required=False)
        services = open_services(settings)
        try:
            citizen = services.accounts.unlock(number, reason=why, actor=cli_actor())
        except NotFound:
            raise NotFound("no account with this ID number") from None
        finally:
            services.close()
        click.echo(f"{citizen.id_number_masked} unlocked")

    @users.command("reset-second-factor")
    @click.option("--id-number", required=True)
    # --reason is checked here, not by click: a missing one is then one line, like every bad input
    @click.option("--reason", help="why (required; recorded in the audit log)")
    @click.pass_obj
    def reset_second_factor(settings: IdpSettings, id_number: str, reason: str | None) -> None:
        """Remove a citizen's TOTP second factor (lost phone); they sign in with the password only."""
        number = _id_number(id_number)
        why = _reason(reason, required=True)
        services = open_services(settings)
        try:
            citizen = services.accounts.find_by_id_number(number)
            if citizen is None:
                raise NotFound("no account with this ID number")
            if not citizen.has_totp:
                raise InvalidInput(f"{citizen.id_number_masked} has no second factor")
            services.accounts.remove_totp(number, actor=cli_actor(), reason=why)
        finally:
            services.close()
        click.echo(f"second factor removed for {citizen.id_number_masked}")
