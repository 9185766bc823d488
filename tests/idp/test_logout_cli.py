"""``idp sessions end``, ``idp logout deliveries|resend-pending``, ``idp worker``, ``idp init``."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from idp.cli import cli
from idp.cli.worker import run_worker
from idp.clients import ClientSpec
from idp.services import Services
from idp.sessions import SessionStore
from idp.settings import IdpSettings
from tests.idp.logout_helpers import wait_until
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD

FAST = {"YIWANG_IDP_LOGOUT_MIN_BACKOFF_MS": "100", "YIWANG_IDP_LOGOUT_MAX_BACKOFF_MS": "300"}


@pytest.fixture
def env(yiwang_env):
    return {**yiwang_env, **FAST}


@pytest.fixture
def world(env, logout_rp):
    """An initialised idp with a citizen signed in twice to a portal with back-channel logout."""
    runner = CliRunner()
    res = runner.invoke(cli, ["init"], env=env)
    assert res.exit_code == 0, res.output
    settings = IdpSettings.from_env(env).with_(password_hash_memory_kib=64, password_hash_iterations=1)
    services = Services.from_settings(settings)
    citizen = services.accounts.add(ID_NUMBER, "张三", PASSWORD)
    client, _secret = services.clients.add(ClientSpec(
        name="Portal", redirect_uris=["https://portal.example.cn/cb"], backchannel_logout_uri=logout_rp.uri,
    ))
    sessions = SessionStore(services.redis, services.keyspace, 600, 3600)
    sids = []
    for _ in range(2):
        s, _cookie = sessions.create(str(citizen.id), 1, "urn:yiwang:acr:pwd", ["pwd"], "browser", "", "")
        sessions.add_client(s.sid, client.client_id)
        sids.append(s.sid)
    try:
        yield {"runner": runner, "env": env, "settings": settings, "sessions": sessions, "sids": sids,
               "client_id": client.client_id}
    finally:
        services.close()


def _main(env, args, monkeypatch, capsys) -> tuple[int, str]:
    """Run ``idp`` through its real entry point (one-line errors, exit status 2)."""
    from idp.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def _deliveries(world, *args):
    res = world["runner"].invoke(cli, ["logout", "deliveries", "--json", *args], env=world["env"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output[res.output.index("{"):])


def _deliver_with_worker(world, until):
    """In-process queue: the CLI already drained. Redis queue: run an ``idp worker`` meanwhile."""
    if not world["settings"].common.redis_url:
        return wait_until(until)
    stop = threading.Event()
    t = threading.Thread(target=run_worker, args=(world["settings"], 2, stop), daemon=True)
    t.start()
    try:
        return wait_until(until, timeout=30)
    finally:
        stop.set()
        t.join(timeout=20)


def test_admin_ends_a_citizens_sessions_and_every_rp_is_told(world, logout_rp):
    res = world["runner"].invoke(cli, ["sessions", "end", "--citizen", ID_NUMBER], env=world["env"])
    assert res.exit_code == 0, res.output
    assert "ended 2 session(s)" in res.output
    assert all(world["sessions"].get(s, touch=False) is None for s in world["sids"])
    _deliver_with_worker(world, lambda: _deliveries(world)["counts"]["delivered"] == 2)
    data = _deliveries(world, "--status", "delivered")
    assert {d["sid"] for d in data["deliveries"]} == set(world["sids"])
    assert all(d["reason"] == "admin" and d["client_id"] == world["client_id"] for d in data["deliveries"])
    assert len(logout_rp.tokens) == 2
    # The table form shows the same, without any token.
    table = world["runner"].invoke(cli, ["logout", "deliveries"], env=world["env"]).output
    assert "delivered 2" in table and logout_rp.tokens[0] not in table


def test_end_all_and_usage_errors(world, monkeypatch, capsys):
    runner, env = world["runner"], world["env"]
    assert _main(env, ["sessions", "end"], monkeypatch, capsys)[0] == 2
    assert _main(env, ["sessions", "end", "--all", "--sid", "x"], monkeypatch, capsys)[0] == 2
    code, out = _main(env, ["sessions", "end", "--citizen", "110105194912310021"], monkeypatch, capsys)
    assert code == 2 and "check character" in out and "110105194912310021" not in out
    assert len(out.strip().splitlines()) == 1
    res = runner.invoke(cli, ["sessions", "end", "--all"], env=env)
    assert res.exit_code == 0 and "ended 2 session(s)" in res.output


def test_rp_down_stays_pending_then_resend_delivers(world, logout_rp):
    logout_rp.stop()
    runner, env = world["runner"], world["env"]
    assert runner.invoke(cli, ["sessions", "end", "--sid", world["sids"][0]], env=env).exit_code == 0
    _deliver_with_worker(world, lambda: _deliveries(world)["deliveries"][0]["attempts"] >= 1)
    pending = _deliveries(world, "--status", "pending")
    assert pending["counts"]["pending"] == 1 and "connection failed" in pending["deliveries"][0]["last_error"]
    logout_rp.start()
    res = runner.invoke(cli, ["logout", "resend-pending"], env=env)
    assert res.exit_code == 0 and "re-queued 1" in res.output
    _deliver_with_worker(world, lambda: _deliveries(world)["counts"]["delivered"] == 1)
    assert len(logout_rp.tokens) == 1


def test_worker_needs_a_redis_server(env, monkeypatch, capsys):
    monkeypatch.delenv("YIWANG_REDIS_URL", raising=False)
    code, out = _main({k: v for k, v in env.items() if k != "YIWANG_REDIS_URL"}, ["worker"], monkeypatch, capsys)
    assert code == 2 and "YIWANG_REDIS_URL" in out


def test_init_demo_is_idempotent_and_keeps_secrets(env, tmp_path):
    runner = CliRunner()
    first = runner.invoke(cli, ["init", "--demo"], env=env)
    assert first.exit_code == 0, first.output
    path = tmp_path / "home" / "demo-clients.json"
    data = json.loads(path.read_text())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert set(data["clients"]) == {"demo-portal-a", "demo-portal-b"}
    assert runner.invoke(cli, ["init", "--demo"], env=env).exit_code == 0
    assert json.loads(path.read_text()) == data
    assert data["citizen"]["password"] not in first.output


def test_password_change_ends_every_session_with_back_channel(world, logout_rp):
    res = world["runner"].invoke(
        cli, ["users", "set-password", "--id-number", ID_NUMBER, "--password-stdin"],
        input="a brand new passphrase 42\n", env=world["env"],
    )
    assert res.exit_code == 0, res.output
    assert "2 session(s) ended" in res.output
    assert all(world["sessions"].get(s, touch=False) is None for s in world["sids"])
    _deliver_with_worker(world, lambda: _deliveries(world)["counts"]["delivered"] == 2)
    assert {d["reason"] for d in _deliveries(world)["deliveries"]} == {"password_change"}


def test_worker_and_cli_container_shares_sessions_and_tokens_and_issues_nothing(world):
    from idp.container import Container

    stack = Container.from_settings(world["settings"], provider=False)
    try:
        assert stack.provider is None
        assert stack.logout.service.tokens is stack.tokens
        assert stack.logout.service.sessions is stack.sessions
        # ending a session through the container's store revokes and tells the relying party
        ended = stack.sessions.end(world["sids"][0], "admin")
        assert ended is not None
        assert stack.logout.service.counts()["pending"] + stack.logout.service.counts()["delivered"] == 1
    finally:
        stack.close()
