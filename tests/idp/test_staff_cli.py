"""``idp staff add|list|disable|reset-second-factor``: output, exit statuses, audit (issue 13 §1)."""

from __future__ import annotations

import json
import re

import pyotp
import sqlalchemy as sa

from idp.models import AuditEvent
from idp.services import Services
from idp.settings import IdpSettings
from idp.staff.accounts import StaffService
from tests.idp.test_cli_admin import Run, env, idp  # noqa: F401 - fixtures

PASSWORD = "hotline agent password"  # noqa: S105 - test account


def _secret(out: str) -> str:
    m = re.search(r"secret: ([A-Z2-7]+)", out)
    assert m, out
    return m.group(1)


def test_the_staff_commands_from_add_to_reset(idp: Run, env: dict[str, str]) -> None:  # noqa: F811
    assert idp("db", "upgrade").code == 0  # 0001 → 0007
    added = idp("staff", "add", "--username", "agent.li", "--name", "李强", "--kind", "agent",
                "--office", "12345 政务服务热线", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.code == 0, added.err
    assert "created staff account agent.li (agent, 12345 政务服务热线)" in added.out
    assert "otpauth://totp/" in added.out and PASSWORD not in added.out + added.err
    first = _secret(added.out)
    listed = idp("staff", "list", "--json")
    rows = json.loads(listed.out)
    assert rows[0]["username"] == "agent.li" and rows[0]["sub"].startswith("staff:") and not rows[0]["disabled"]
    assert idp("staff", "disable", "--username", "agent.li", "--reason", "on leave").code == 0
    assert "disabled" in idp("staff", "list").out
    assert idp("staff", "disable", "--username", "agent.li", "--reason", "back", "--enable").code == 0
    reset = idp("staff", "reset-second-factor", "--username", "agent.li", "--reason", "lost phone")
    assert reset.code == 0 and _secret(reset.out) != first
    services = Services.from_settings(IdpSettings.from_env(env).with_(password_hash_memory_kib=64))
    try:
        assert StaffService.of(services).login("agent.li", PASSWORD, pyotp.TOTP(_secret(reset.out)).now()).ok
        services.audit.flush()
        with services.db.session() as s:
            kinds = set(s.scalars(sa.select(AuditEvent.kind)))
            actors = set(s.scalars(sa.select(AuditEvent.actor).where(AuditEvent.kind.like("staff.%"))))
    finally:
        services.close()
    assert {"staff.created", "staff.disabled", "staff.enabled", "staff.second_factor_reset", "staff.login"} <= kinds
    assert any(a and a.startswith("cli") for a in actors)


def test_bad_input_is_one_line_and_status_2(idp: Run) -> None:  # noqa: F811
    assert idp("db", "upgrade").code == 0
    base = ["staff", "add", "--name", "王芳", "--office", "3 号窗口", "--password-stdin"]
    for args, stdin, words in (
        (["--username", "x", "--kind", "clerk"], PASSWORD + "\n", "username"),
        (["--username", "clerk.wang", "--kind", "boss"], PASSWORD + "\n", "clerk"),
        (["--username", "clerk.wang", "--kind", "clerk"], "short\n", "password"),
        (["--username", "clerk.wang", "--kind", "clerk"], "", "standard input"),
    ):
        result = idp(*base, *args, stdin=stdin)
        assert result.code == 2, (args, result)
        assert words in result.err and len(result.err.strip().splitlines()) == 1
    assert idp(*base, "--username", "clerk.wang", "--kind", "clerk", stdin=PASSWORD + "\n").code == 0
    dup = idp(*base, "--username", "clerk.wang", "--kind", "clerk", stdin=PASSWORD + "\n")
    assert dup.code == 2 and "already exists" in dup.err
    missing = idp("staff", "disable", "--username", "nobody.here", "--reason", "x")
    assert missing.code == 2 and "no staff account" in missing.err
    no_reason = idp("staff", "reset-second-factor", "--username", "clerk.wang")
    assert no_reason.code == 2 and "--reason" in no_reason.err
