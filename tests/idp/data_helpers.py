"""Fixtures for the idp data-layer tests: settings, services on a fresh database.

Import the fixtures into a test module with
``from tests.idp.data_helpers import settings, services  # noqa: F401``.
Argon2id runs at a tiny cost here (``password_hash_memory_kib``) so the
suite stays fast; the production parameters are tested in test_accounts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from idp.services import Services
from idp.settings import IdpSettings
from keys.identifiers import resident_id_check_character
from keys.pii import PiiProtector

__all__ = ["settings", "services", "make_id", "FAST_HASH"]

FAST_HASH = {"password_hash_memory_kib": 64, "password_hash_iterations": 1}


def make_id(first17: str) -> str:
    """A valid resident ID number with the given first 17 digits."""
    return first17 + resident_id_check_character(first17)


@pytest.fixture
def settings(yiwang_env: dict[str, str]) -> IdpSettings:
    return IdpSettings.from_env(yiwang_env).with_(**FAST_HASH)


@pytest.fixture
def services(settings: IdpSettings) -> Iterator[Services]:
    svc = Services.build(settings, pii=PiiProtector.from_secret(os.urandom(32)))
    svc.db.create_all()
    try:
        yield svc
    finally:
        svc.close()
