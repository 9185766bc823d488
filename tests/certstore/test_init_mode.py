"""``certstore init`` on the default SQLite database: the file is the owner's only."""

from __future__ import annotations

import stat

from certstore.cli import main


def test_certstore_init_creates_the_sqlite_database_owner_only(embedded_init) -> None:
    home = embedded_init(main, YIWANG_ISSUER="http://idp.test")
    db = home / "certstore.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
