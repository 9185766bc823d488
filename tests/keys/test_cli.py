"""``idp keys …`` and ``certstore ca …``: output, exit status 2 and one line on bad input."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from cryptography import x509
from joserfc import jwt
from joserfc.jwk import KeySet as JoseKeySet

from keys.config import COMMON_VARIABLES, KeySettings
from keys.errors import InvalidIdentifier
from keys.jws import encode_jws
from keys.keyring import open_keyring

USCC = "91350100M000100Y43"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if any(name == "YIWANG_" + v.name for v in COMMON_VARIABLES):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("YIWANG_HOME", str(home))
    return home


def _run(
    main: Callable[[list[str]], Any], capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run a console entry point in-process; returns (status, stdout, stderr)."""
    try:
        main(list(args))
        status = 0
    except SystemExit as e:
        status = int(e.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def _idp_main() -> Callable[[list[str]], Any]:
    from idp.cli import main

    return main


def test_idp_keys_rotate_twice_and_list(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = _idp_main()
    status, _, err = _run(main, capsys, "keys", "list")
    assert status == 2 and "no key set 'idp-token'" in err
    assert "Traceback" not in err

    assert _run(main, capsys, "keys", "rotate")[0] == 0
    settings = KeySettings(home=env, kek_file=env / "kek.bin")
    token = encode_jws(open_keyring(settings).keyset("idp-token").active(), {"sub": "before"})
    status, out, _ = _run(main, capsys, "keys", "rotate")
    assert status == 0 and "is retiring" in out
    # The token signed before this rotation verifies with the published JWKS
    # (checked by joserfc, not by our code).
    jwks = JoseKeySet.import_key_set(
        json.loads(json.dumps(open_keyring(settings).keyset("idp-token").jwks()))
    )
    assert jwt.decode(token, jwks, algorithms=["ES256"]).claims == {"sub": "before"}
    status, out, _ = _run(main, capsys, "keys", "list", "--json")
    assert status == 0
    listed = json.loads(out)
    assert listed["purpose"] == "idp-token"
    assert [k["state"] for k in listed["keys"]] == ["retired", "retiring", "active", "next"]
    status, out, _ = _run(main, capsys, "keys", "list")
    assert status == 0 and out.count("\nretired ") == 1 and "active " in out


def test_idp_keys_with_a_wrong_kek(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main = _idp_main()
    assert _run(main, capsys, "keys", "rotate")[0] == 0
    wrong = tmp_path / "wrong.kek"
    wrong.write_bytes(os.urandom(32))
    monkeypatch.setenv("YIWANG_KEK_FILE", str(wrong))
    status, out, err = _run(main, capsys, "keys", "rotate")
    assert status == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("idp: the key-encryption key does not open the key store")
    assert "Traceback" not in err and out == ""


def _certstore_cli() -> Any:
    """certstore's CLI package (which imports every command module): a broken one fails here."""
    import certstore.cli

    return certstore.cli


def _ca(env_home: Path, *args: str) -> click.testing.Result:
    """``certstore ca`` through its own group, with certstore's settings as ctx.obj."""
    _certstore_cli()
    from certstore.cli.ca import register
    from certstore.settings import CertstoreSettings

    group = click.Group("certstore")
    register(group)
    settings = CertstoreSettings.from_env(
        {"YIWANG_HOME": str(env_home), "YIWANG_CERTSTORE_PUBLIC_URL": "https://cs.example"}
    )
    return CliRunner().invoke(group, ["ca", *args], obj=settings, catch_exceptions=True)


def test_certstore_ca_commands(env: Path, tmp_path: Path) -> None:
    result = _ca(env, "init", "--region", "350100", "--name", "福州市")
    assert result.exit_code == 0, result.output
    assert "https://cs.example/pki/crl/issuing.crl" in result.output
    result = _ca(env, "issue-signer", "--uscc", USCC, "--name", "福州市市场监督管理局")
    assert result.exit_code == 0 and USCC in result.output
    result = _ca(env, "revoke-signer", "--uscc", USCC, "--reason", "keyCompromise")
    assert result.exit_code == 0 and "CRL #" in result.output
    out = tmp_path / "issuing.crl"
    assert _ca(env, "crl", "--out", str(out)).exit_code == 0
    crl = x509.load_der_x509_crl(out.read_bytes())
    assert len(crl) == 1
    root = tmp_path / "root.pem"
    assert _ca(env, "root", "--out", str(root)).exit_code == 0
    assert (
        x509.load_pem_x509_certificate(root.read_bytes()).subject.rfc4514_string().endswith("C=CN")
    )
    result = _ca(env, "show")
    assert result.exit_code == 0 and "revoked" in result.output and "350100" in result.output


def test_certstore_ca_refuses_an_invalid_uscc(env: Path) -> None:
    assert _ca(env, "init", "--region", "350100", "--name", "福州市").exit_code == 0
    result = _ca(env, "issue-signer", "--uscc", USCC[:-1] + "0", "--name", "x")
    # The certstore entry point turns these into one line and exit status 2.
    assert isinstance(result.exception, InvalidIdentifier)
    assert "check character" in str(result.exception)
    result = _ca(env, "issue-signer", "--uscc", USCC, "--name", "x")
    assert result.exit_code == 0  # nothing was half written by the refused attempt


def test_certstore_entry_point_exit_status(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = _certstore_cli().main
    (env / "keys").mkdir(parents=True)  # a home without its region CA (without a home certstore refuses first)
    status, _, err = _run(main, capsys, "ca", "issue-signer", "--uscc", "9135", "--name", "x")
    assert status == 2
    assert err.strip().splitlines()[-1] == (
        "certstore: a unified social credit code has 18 characters, this one has 4"
    )
    status, _, err = _run(main, capsys, "ca", "show")
    assert status == 2 and "ca init" in err


def test_idp_keys_with_a_corrupt_index(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = _idp_main()
    assert _run(main, capsys, "keys", "rotate")[0] == 0
    (env / "keys" / "sets" / "idp-token.json").write_text("{not json")
    status, _, err = _run(main, capsys, "keys", "list")
    assert status == 2
    assert err.strip().splitlines()[-1].startswith("idp: the index of key set idp-token is corrupt")


@pytest.mark.pkcs11
def test_idp_keys_with_a_missing_pkcs11_token(
    env: Path,
    softhsm: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("YIWANG_KEY_BACKEND", "pkcs11")
    monkeypatch.setenv("YIWANG_PKCS11_MODULE", softhsm["module"])
    monkeypatch.setenv("YIWANG_PKCS11_TOKEN", "not-there")
    monkeypatch.setenv("YIWANG_PKCS11_PIN", softhsm["pin"])
    status, _, err = _run(_idp_main(), capsys, "keys", "rotate")
    assert status == 2
    assert err.strip().splitlines()[-1] == (
        "idp: no PKCS#11 token labelled 'not-there' (check YIWANG_PKCS11_TOKEN)"
    )
    monkeypatch.setenv("YIWANG_PKCS11_TOKEN", softhsm["token"])
    assert _run(_idp_main(), capsys, "keys", "rotate")[0] == 0  # the right token works
    monkeypatch.delenv("YIWANG_PKCS11_PIN")
    status, _, err = _run(_idp_main(), capsys, "keys", "list")
    assert status == 2 and "YIWANG_PKCS11_PIN must be set" in err
