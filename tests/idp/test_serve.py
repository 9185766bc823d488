"""`idp serve`: configuration check and the refusals that keep instances consistent."""

from __future__ import annotations

from click.testing import CliRunner

from idp.cli import cli
from idp.cli.serve import TARGET, granian_argv


def test_granian_command_line():
    argv = granian_argv(host="127.0.0.2", port=8080, workers=3, threads=2)
    assert argv[1:3] == ["-m", "granian"]
    assert argv[argv.index("--interface") + 1] == "wsgi"
    assert argv[argv.index("--workers") + 1] == "3"
    assert argv[argv.index("--port") + 1] == "8080"
    assert argv[-1] == TARGET == "idp.web.wsgi:app"


def test_granian_respawns_a_worker_that_died():
    # Issue 20 §7: a killed web process comes back without an operator.
    argv = granian_argv(host="127.0.0.1", port=5000, workers=1)
    assert "--respawn-failed-workers" in argv
    assert argv.index("--respawn-failed-workers") < argv.index(TARGET)


def test_several_workers_need_a_shared_redis(yiwang_env):
    env = {k: v for k, v in yiwang_env.items() if k != "YIWANG_REDIS_URL"}
    result = CliRunner().invoke(cli, ["serve", "--workers", "2"], env=env)
    assert result.exit_code != 0
    assert "YIWANG_REDIS_URL" in result.output


def test_check_builds_the_app(yiwang_env, tmp_path):
    from idp.db import Database

    Database(yiwang_env["YIWANG_DATABASE_URL"]).create_all()
    result = CliRunner().invoke(cli, ["serve", "--check"], env=yiwang_env)
    assert result.exit_code == 0, result.output
    assert "configuration ok" in result.output


def test_check_says_which_backend_does_not_answer(yiwang_env):
    from idp.cli import main

    env = dict(yiwang_env, YIWANG_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    done = _run_main(main, env)
    assert done == (2, "idp: the database cannot be reached (check YIWANG_DATABASE_URL and that it is running)")
    if yiwang_env.get("YIWANG_REDIS_URL"):
        env = dict(yiwang_env, YIWANG_REDIS_URL="redis://127.0.0.1:1/0")
        from idp.db import Database

        Database(yiwang_env["YIWANG_DATABASE_URL"]).create_all()
        assert _run_main(main, env) == (2, "idp: Redis cannot be reached (check YIWANG_REDIS_URL and that it is running)")


def _run_main(main, env):
    """``idp serve --check`` through the real entry point: (exit status, last stderr line)."""
    import contextlib
    import io
    import os
    from unittest import mock

    err = io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stderr(err):
        try:
            main(["serve", "--check"])
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
    lines = err.getvalue().strip().splitlines()
    return code, (lines[-1] if lines else "")
