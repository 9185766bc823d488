"""``certstore init`` on the default SQLite database: the file is the owner's only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from certstore.cli import main


def test_certstore_init_creates_the_sqlite_database_owner_only(
    yiwang_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("YIWANG_") and not name.startswith("YIWANG_TEST_"):
            monkeypatch.delenv(name)
    for name, value in yiwang_env.items():
        if name != "YIWANG_DATABASE_URL":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("YIWANG_ISSUER", "http://idp.test")
    old = os.umask(0o022)
    try:
        try:
            main(["init"])
        except SystemExit as e:
            assert not e.code, capsys.readouterr().err
    finally:
        os.umask(old)
    db = Path(yiwang_env["YIWANG_HOME"]) / "certstore.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
