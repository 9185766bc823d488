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
