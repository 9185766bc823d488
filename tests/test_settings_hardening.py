"""Issue 19 §8 and §9: the services refuse a home other users may write to, and plain http off loopback.

§8: under umask 000 the home was created world-writable and another local
user swapped the key-encryption key. §9: an http issuer or public URL on a
real host was accepted silently (no Secure cookies, secrets in clear).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from certstore.settings import CertstoreSettings
from idp.settings import IdpSettings
from keys.errors import ConfigurationError

BIN = Path(sys.executable).parent


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Only the ``YIWANG_*`` variables a test sets (the test suite's own stay)."""
    for name in list(os.environ):
        if name.startswith("YIWANG_") and not name.startswith("YIWANG_TEST_"):
            monkeypatch.delenv(name)

    def setenv(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv("YIWANG_" + name, value)

    yield setenv


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _run_cli(main: Callable[[list[str]], Any], args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _serve(service: str, **values: str) -> tuple[int | None, str]:
    """``<service> serve`` with only these ``YIWANG_*`` variables: its exit status (``None``: it served) and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_")}
    env.update({"YIWANG_" + k: v for k, v in values.items()})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(BIN / service), "serve", "--port", str(port)],  # noqa: S603 - our own CLI
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _out, err = proc.communicate(timeout=30)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the server and its workers
        proc.communicate()
        return None, ""


# ----------------------------------------------------------------- §8 home


def test_the_home_is_created_owner_only_whatever_the_umask(tmp_path, clean_env, umask_000, capsys):
    from idp.cli import main

    home = tmp_path / "srv" / "yiwang"
    clean_env(HOME=str(home))
    code, err = _run_cli(main, ["db", "upgrade"], capsys)
    assert code == 0, err
    assert _mode(home) == 0o700
    assert not _mode(home.parent) & 0o022  # nor can anyone rename it away from its parent


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_settings_refuse_a_home_others_may_write(tmp_path, mode):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(mode)
    with pytest.raises(ConfigurationError, match="YIWANG_HOME .* is writable by other users"):
        IdpSettings.from_env({"YIWANG_HOME": str(home)})
    with pytest.raises(ConfigurationError, match="YIWANG_HOME"):
        CertstoreSettings.from_env({"YIWANG_HOME": str(home)})


def test_settings_accept_a_home_others_may_only_read(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    assert IdpSettings.from_env({"YIWANG_HOME": str(home)}).home == home


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_settings_refuse_a_home_owned_by_another_user(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 12345, 12345)
    with pytest.raises(ConfigurationError, match="belongs to another user"):
        IdpSettings.from_env({"YIWANG_HOME": str(home)})


def test_settings_refuse_an_open_key_directory_or_kek(tmp_path):
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    (home / "keys").chmod(0o777)
    with pytest.raises(ConfigurationError, match="the key directory .* writable by other users"):
        IdpSettings.from_env({"YIWANG_HOME": str(home)})
    (home / "keys").chmod(0o700)
    kek = home / "kek.bin"
    kek.write_bytes(os.urandom(32))
    kek.chmod(0o666)
    with pytest.raises(ConfigurationError, match="key-encryption key file .* writable by other users"):
        IdpSettings.from_env({"YIWANG_HOME": str(home)})
    kek.chmod(0o600)
    IdpSettings.from_env({"YIWANG_HOME": str(home)})


def test_settings_refuse_a_kek_in_a_directory_anyone_may_write(tmp_path):
    home = tmp_path / "home"
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # no sticky bit: anyone may replace the file
    kek = shared / "kek.bin"
    kek.write_bytes(os.urandom(32))
    kek.chmod(0o600)
    with pytest.raises(ConfigurationError, match="key-encryption key file"):
        IdpSettings.from_env({"YIWANG_HOME": str(home), "YIWANG_KEK_FILE": str(kek)})
    shared.chmod(0o1777)  # with the sticky bit (a /tmp) only the file's owner may replace it
    assert IdpSettings.from_env({"YIWANG_HOME": str(home), "YIWANG_KEK_FILE": str(kek)}).common.keys.kek_file == kek


@pytest.mark.parametrize("service", ["idp", "certstore"])
def test_the_clis_stop_on_an_open_home_with_one_line_and_status_2(tmp_path, clean_env, capsys, service):
    import certstore.cli
    import idp.cli

    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    clean_env(HOME=str(home))
    main = idp.cli.main if service == "idp" else certstore.cli.main
    code, err = _run_cli(main, ["db", "upgrade"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "YIWANG_HOME" in err and "Traceback" not in err
    assert not (home / "kek.bin").exists() and not (home / "keys").exists()  # nothing written


@pytest.mark.parametrize("service", ["idp", "certstore"])
def test_serve_stops_on_an_open_home(tmp_path, service):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    code, err = _serve(service, HOME=str(home))
    assert code == 2, err
    assert "YIWANG_HOME" in err and err.count("\n") == 1


# ----------------------------------------------------------- §9 plain http


@pytest.mark.parametrize("url", ["http://idp.example.gov.cn", "http://10.0.0.5:5000", "http://127.0.0.1.nip.io"])
def test_a_plain_http_issuer_on_a_real_host_is_refused(tmp_path, url):
    env = {"YIWANG_HOME": str(tmp_path / "h"), "YIWANG_ISSUER": url}
    with pytest.raises(ConfigurationError, match="YIWANG_ISSUER is plain http"):
        IdpSettings.from_env(env)
    with pytest.raises(ConfigurationError, match="YIWANG_ISSUER is plain http"):
        CertstoreSettings.from_env(env)  # certstore's idp: its client secret would travel in clear


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000", "http://127.8.9.10", "http://localhost:8080",
                                 "http://[::1]:5000", "https://idp.example.gov.cn"])
def test_loopback_http_and_https_are_accepted(tmp_path, url):
    assert IdpSettings.from_env({"YIWANG_HOME": str(tmp_path / "h"), "YIWANG_ISSUER": url}).issuer == url


def test_certstore_public_url_must_be_https_off_loopback(tmp_path):
    env = {"YIWANG_HOME": str(tmp_path / "h"), "YIWANG_CERTSTORE_PUBLIC_URL": "http://certs.example.gov.cn"}
    with pytest.raises(ConfigurationError, match="YIWANG_CERTSTORE_PUBLIC_URL is plain http"):
        CertstoreSettings.from_env(env)
    ok = CertstoreSettings.from_env({**env, "YIWANG_CERTSTORE_PUBLIC_URL": "http://127.0.0.1:5100"})
    assert ok.public_url == "http://127.0.0.1:5100"


def test_the_opt_in_accepts_plain_http_with_a_warning(tmp_path, caplog):
    env = {"YIWANG_HOME": str(tmp_path / "h"), "YIWANG_ISSUER": "http://idp.lab",
           "YIWANG_CERTSTORE_PUBLIC_URL": "http://certs.lab", "YIWANG_ALLOW_INSECURE_HTTP": "1"}
    with caplog.at_level(logging.WARNING, logger="keys.config"):
        settings = CertstoreSettings.from_env(env)
    assert settings.public_url == "http://certs.lab"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("YIWANG_ISSUER is plain http on idp.lab" in m for m in warned)
    assert any("YIWANG_CERTSTORE_PUBLIC_URL is plain http on certs.lab" in m for m in warned)


@pytest.mark.parametrize("service", ["idp", "certstore"])
def test_serve_stops_on_a_plain_http_issuer_with_one_line_and_status_2(tmp_path, service):
    code, err = _serve(service, HOME=str(tmp_path / "h"), ISSUER="http://idp.example.gov.cn")
    assert code == 2, err
    assert "YIWANG_ISSUER is plain http" in err and err.count("\n") == 1
