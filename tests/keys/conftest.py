"""Fixtures for the keys tests: a fresh key directory, and each backend.

The ``backend`` fixture is parametrized over every backend, so the
conformance tests run unchanged on the software backend and on SoftHSM2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from keys.backend import KeyBackend
from keys.config import KeySettings
from keys.keyring import Keyring, open_keyring

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "yiwang-test"  # noqa: S105 (a label)
USER_PIN = "1234"
SO_PIN = "5678"


@pytest.fixture
def key_settings(tmp_path: Path) -> KeySettings:
    home = tmp_path / "home"
    return KeySettings(home=home, kek_file=home / "kek.bin")


@pytest.fixture
def keyring(key_settings: KeySettings) -> Keyring:
    # reload_seconds=0: every call looks at the index on disk, so tests see
    # other keyrings' changes at once.
    return open_keyring(key_settings, reload_seconds=0)


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A private SoftHSM2 token (own config and token directory) for one test."""
    if not SOFTHSM_MODULE.exists() or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    tokendir = tmp_path / "tokens"
    tokendir.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(  # noqa: S603
        [  # noqa: S607
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--pin",
            USER_PIN,
            "--so-pin",
            SO_PIN,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    yield {"module": str(SOFTHSM_MODULE), "token": TOKEN_LABEL, "pin": USER_PIN}
    # SoftHSM reads SOFTHSM2_CONF when initialised: unload it so that the next
    # test's token directory is read afresh.
    import pkcs11

    pkcs11.unload(str(SOFTHSM_MODULE))


@pytest.fixture
def pkcs11_settings(tmp_path: Path, softhsm: dict[str, str]) -> KeySettings:
    home = tmp_path / "home"
    return KeySettings(
        home=home,
        kek_file=home / "kek.bin",
        backend="pkcs11",
        pkcs11_module=Path(softhsm["module"]),
        pkcs11_token_label=softhsm["token"],
        pkcs11_pin=softhsm["pin"],
    )


@pytest.fixture(params=["software", pytest.param("pkcs11", marks=pytest.mark.pkcs11)])
def backend(request: pytest.FixtureRequest, key_settings: KeySettings) -> KeyBackend:
    """Each key backend in turn."""
    if request.param == "software":
        return open_keyring(key_settings).backend("software")
    settings: KeySettings = request.getfixturevalue("pkcs11_settings")
    return open_keyring(settings).backend("pkcs11")
