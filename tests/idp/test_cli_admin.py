"""The admin command line: db, users, clients, audit — output, exit statuses, messages."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from idp.cli import main
from idp.services import Services
from idp.settings import IdpSettings
from tests.idp.data_helpers import make_id

ALICE = make_id("11010519491231002")
BOB = make_id("44030019900101123")
WRONG_CHECK = ALICE[:17] + ("0" if ALICE[17] != "0" else "1")


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def env(yiwang_env: dict[str, str]) -> dict[str, str]:
    return {**yiwang_env, "YIWANG_IDP_PASSWORD_HASH_MEMORY_KIB": "64"}


@pytest.fixture
def idp(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    """Run ``idp ARGS`` in this process, as the console script does."""
    for name in list(os.environ):
        if name.startswith("YIWANG_") and not name.startswith("YIWANG_TEST_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def run(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def _services(env: dict[str, str]) -> Services:
    return Services.from_settings(IdpSettings.from_env(env))


def test_an_invalid_id_number_is_one_line_and_status_2(idp: Run) -> None:
    result = idp("users", "add", "--id-number", WRONG_CHECK, "--name", "张三")
    assert result.code == 2
    line = _one_line(result.err)
    assert "check character" in line and WRONG_CHECK not in line
    result = idp("users", "add", "--id-number", "1101051949", "--name", "张三")
    assert result.code == 2 and "18 characters" in _one_line(result.err)


def test_commands_refuse_a_database_without_the_schema(idp: Run) -> None:
    result = idp("db", "current")
    assert result.code == 0 and "empty" in result.out
    result = idp("clients", "list")
    assert result.code == 2 and "idp db upgrade" in _one_line(result.err)
    assert idp("db", "upgrade").code == 0
    result = idp("db", "current")
    assert result.code == 0 and "(head)" in result.out
    assert "already" in idp("db", "upgrade").out


def test_users_add_set_password_and_duplicates(idp: Run, env: dict[str, str]) -> None:
    idp("db", "upgrade")
    result = idp(
        "users", "add", "--id-number", ALICE, "--name", "张三", "--password-stdin",
        "--phone", "13800000000", stdin="correct horse\n",
    )
    assert result.code == 0, result.err
    assert ALICE not in result.out and ALICE[-4:] in result.out
    again = idp("users", "add", "--id-number", ALICE, "--name", "李四", "--password-stdin", stdin="x" * 9)
    assert again.code == 2 and "already exists" in _one_line(again.err)
    assert ALICE not in again.err
    short = idp("users", "add", "--id-number", BOB, "--name", "李四", "--password-stdin", stdin="short\n")
    assert short.code == 2 and "at least 8" in _one_line(short.err)
    services = _services(env)
    try:
        assert services.accounts.authenticate(ALICE, "correct horse") is not None
        assert services.accounts.find_by_id_number(BOB) is None
        assert idp("users", "set-password", "--id-number", ALICE, "--password-stdin", stdin="battery staple\n").code == 0
        assert services.accounts.authenticate(ALICE, "battery staple") is not None
        assert services.accounts.authenticate(ALICE, "correct horse") is None
    finally:
        services.close()
    shown = idp("users", "show", "--id-number", ALICE)
    assert shown.code == 0 and "张三" in shown.out and ALICE not in shown.out


def test_users_import_reports_bad_rows_and_refuses_bad_files(
    idp: Run, env: dict[str, str], tmp_path: Path
) -> None:
    idp("db", "upgrade")
    good = tmp_path / "good.csv"
    good.write_text(
        f"id_number,name,password\n{ALICE},张三,correct horse\n{WRONG_CHECK},错号,\n{BOB},,\n",
        encoding="utf-8",
    )
    result = idp("users", "import", str(good))
    assert result.code == 0, result.err
    assert "imported 1, rejected 2" in result.out
    assert "line 3: ID number:" in result.out and "check character" in result.out
    assert "line 4: the name is missing" in result.out
    assert WRONG_CHECK not in result.out and BOB not in result.out

    bad = tmp_path / "bad.csv"
    bad.write_text(f"number,name\n{BOB},李四\n", encoding="utf-8")
    result = idp("users", "import", str(bad))
    assert result.code == 2 and "header line" in _one_line(result.err)
    latin = tmp_path / "gbk.csv"
    latin.write_bytes(f"id_number,name\n{BOB},李四\n".encode("gb18030"))
    result = idp("users", "import", str(latin))
    assert result.code == 2 and "not utf-8" in _one_line(result.err)
    all_bad = tmp_path / "all_bad.csv"
    all_bad.write_text(f"id_number,name\n{ALICE},张三\n", encoding="utf-8")
    assert idp("users", "import", str(all_bad)).code == 1  # nothing imported: a duplicate
    assert idp("users", "import", str(latin), "--encoding", "gb18030").code == 0
    services = _services(env)
    try:
        bob = services.accounts.find_by_id_number(BOB)
        assert bob is not None and bob.name == "李四"
    finally:
        services.close()


def test_totp_enrol_prints_the_uri_once(idp: Run, env: dict[str, str]) -> None:
    idp("db", "upgrade")
    idp("users", "add", "--id-number", ALICE, "--name", "张三", "--password-stdin", stdin="correct horse\n")
    result = idp("users", "totp-enrol", "--id-number", ALICE)
    assert result.code == 0
    uri = next(line for line in result.out.splitlines() if line.startswith("otpauth://"))
    assert "secret=" in uri and ALICE not in uri
    missing = idp("users", "totp-enrol", "--id-number", BOB)
    assert missing.code == 2 and "no account" in _one_line(missing.err)


def _audit_kinds(services: Services) -> list[tuple[str, str | None, dict | None]]:
    from idp.models import AuditEvent

    with services.db.session() as s:
        events = s.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)).all()
        return [(e.kind, e.actor, e.detail) for e in events]


def test_unlock_clears_the_account_counters_and_is_audited(idp: Run, env: dict[str, str]) -> None:
    idp("db", "upgrade")
    idp("users", "add", "--id-number", ALICE, "--name", "张三", "--password-stdin", stdin="correct horse\n")
    services = _services(env)
    try:
        for _ in range(5):
            services.accounts.login(ALICE, "wrong horse", ip="192.0.2.40")
        assert services.accounts.login(ALICE, "correct horse", ip="192.0.2.41").status == "throttled"
        result = idp("users", "unlock", "--id-number", ALICE, "--reason", "ticket 4711, identity checked")
        assert result.code == 0 and ALICE not in result.out and "unlocked" in result.out
        assert services.accounts.login(ALICE, "correct horse", ip="192.0.2.41").ok
        unlocked = [e for e in _audit_kinds(services) if e[0] == "account.unlocked"]
        assert unlocked[0][2] == {"reason": "ticket 4711, identity checked"}
    finally:
        services.close()
    for args, text in [
        (["--id-number", BOB], "no account"),
        (["--id-number", WRONG_CHECK], "check character"),
        (["--id-number", ALICE, "--reason", "two\nlines"], "one line"),
        (["--id-number", ALICE, "--reason", f"asked by {ALICE}"], "no ID number"),
    ]:
        bad = idp("users", "unlock", *args)
        assert bad.code == 2 and text in _one_line(bad.err), args
        assert ALICE not in bad.err and BOB not in bad.err


def test_reset_second_factor_needs_a_reason_and_removes_totp(idp: Run, env: dict[str, str]) -> None:
    idp("db", "upgrade")
    idp("users", "add", "--id-number", ALICE, "--name", "张三", "--password-stdin", stdin="correct horse\n")
    idp("users", "totp-enrol", "--id-number", ALICE)
    no_reason = idp("users", "reset-second-factor", "--id-number", ALICE)
    assert no_reason.code == 2 and "--reason" in _one_line(no_reason.err)
    blank = idp("users", "reset-second-factor", "--id-number", ALICE, "--reason", "  ")
    assert blank.code == 2 and "--reason" in _one_line(blank.err)
    result = idp("users", "reset-second-factor", "--id-number", ALICE, "--reason", "lost phone, ticket 12")
    assert result.code == 0 and ALICE not in result.out
    services = _services(env)
    try:
        outcome = services.accounts.login(ALICE, "correct horse", ip="192.0.2.42")
        assert outcome.ok and not outcome.needs_second_factor
        removed = [e for e in _audit_kinds(services) if e[0] == "account.totp_removed"]
        assert removed[0][2] == {"reason": "lost phone, ticket 12", "had_second_factor": True}
    finally:
        services.close()
    again = idp("users", "reset-second-factor", "--id-number", ALICE, "--reason", "again")
    assert again.code == 2 and "no second factor" in _one_line(again.err)
    for number, text in [(BOB, "no account"), ("1101051949", "18 characters")]:
        bad = idp("users", "reset-second-factor", "--id-number", number, "--reason", "x")
        assert bad.code == 2 and text in _one_line(bad.err)


def test_clients_lifecycle(idp: Run, env: dict[str, str]) -> None:
    idp("db", "upgrade")
    result = idp(
        "clients", "add", "--name", "办事大厅", "--redirect-uri", "https://portal.example.cn/cb",
        "--redirect-uri", "https://portal.example.cn/cb2",
        "--post-logout-redirect-uri", "https://portal.example.cn/bye",
        "--backchannel-logout-uri", "https://portal.example.cn/bc",
        "--scope", "openid", "--scope", "profile", "--first-party", "--may-receive-id-number",
        "--id-token-alg", "RS256", "--auth-method", "client_secret_post", "--json",
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    client_id, secret = data["client_id"], data["client_secret"]
    assert data["scopes"] == ["openid", "profile", "id_number"]
    assert data["first_party"] and data["id_token_signed_response_alg"] == "RS256"  # noqa: S105
    assert data["token_endpoint_auth_method"] == "client_secret_post"  # noqa: S105

    shown = idp("clients", "show", client_id, "--json")
    assert shown.code == 0, shown.err
    assert secret not in shown.out
    assert json.loads(shown.out)["redirect_uris"] == [
        "https://portal.example.cn/cb",
        "https://portal.example.cn/cb2",
    ]
    listed = idp("clients", "list")
    assert client_id in listed.out, listed.err

    rotated = idp("clients", "rotate-secret", client_id)
    assert rotated.code == 0, rotated.err
    new_secret = rotated.out.split("client_secret:")[1].split()[0]
    services = _services(env)
    try:
        client = services.clients.show(client_id)
        assert client.check_client_secret(new_secret) and not client.check_client_secret(secret)
    finally:
        services.close()

    public = idp("clients", "add", "--name", "app", "--public", "--redirect-uri", "cn.gov.app:/cb")
    assert public.code == 0, public.err
    assert "client_secret" not in public.out

    deleted = idp("clients", "delete", client_id, "--yes")
    assert deleted.code == 0, deleted.err
    gone = idp("clients", "show", client_id)
    assert gone.code == 2 and "no client" in _one_line(gone.err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--redirect-uri", "http://portal.example.cn/cb"], "loopback"),
        (["--redirect-uri", "https://portal.example.cn/cb#x"], "fragment"),
        (["--redirect-uri", "https://a.example.cn/cb", "--scope", "id_number"], "may-receive-id-number"),
        (["--public", "--redirect-uri", "https://a.example.cn/cb", "--grant-type", "client_credentials"], "client_credentials"),
    ],
)
def test_clients_add_refuses_bad_registrations(idp: Run, args: list[str], message: str) -> None:
    idp("db", "upgrade")
    result = idp("clients", "add", "--name", "x", *args)
    assert result.code == 2 and message in _one_line(result.err)
    assert idp("clients", "list").out == ""


def test_audit_verify_and_tail(idp: Run, env: dict[str, str]) -> None:
    idp("db", "upgrade")
    idp("users", "add", "--id-number", ALICE, "--name", "张三", "--password-stdin", stdin="correct horse\n")
    added = json.loads(idp("clients", "add", "--name", "p", "--redirect-uri", "https://p.example.cn/cb", "--json").out)
    idp("clients", "rotate-secret", added["client_id"])
    result = idp("audit", "verify")
    assert result.code == 0 and result.out.startswith("3 records, chain intact; 3 checkpoints")
    tail = idp("audit", "tail", "--json")
    events = [json.loads(line) for line in tail.out.splitlines()]
    assert [e["kind"] for e in events] == [
        "account.created",
        "admin.client_added",
        "admin.client_secret_rotated",
    ]
    assert all(e["actor"].startswith("cli") for e in events)
    assert ALICE not in tail.out and added["client_secret"] not in tail.out

    services = _services(env)
    try:
        with services.db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE audit_event SET actor = 'someone else' WHERE seq = 2"))
    finally:
        services.close()
    broken = idp("audit", "verify")
    assert broken.code == 2 and "seq 2" in _one_line(broken.err)


def test_the_console_script_exits_2_with_one_line(env: dict[str, str]) -> None:
    """The real executable, not just main(): status and stderr as an operator sees them."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_")}
    exe = Path(sys.executable).with_name("idp")
    proc = subprocess.run(  # noqa: S603
        [str(exe), "users", "add", "--id-number", WRONG_CHECK, "--name", "x"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert _one_line(proc.stderr).startswith("idp: --id-number:")
    assert "Traceback" not in proc.stderr and WRONG_CHECK not in proc.stderr
