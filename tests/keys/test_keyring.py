"""Key sets on the software backend: creation, rotation, JWKS, failures."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet as JoseKeySet

from keys.config import KeySettings
from keys.errors import (
    ConfigurationError,
    KeyNotFound,
    KeysError,
    KeyStoreCorrupt,
    WrongKeyEncryptionKey,
)
from keys.jws import encode_jws
from keys.keyring import Keyring, open_keyring
from keys.lifecycle import KeyState


def _verify(token: str, jwks: dict[str, object], alg: str = "ES256") -> dict[str, object]:
    """Verify with joserfc against a published JWKS (not with our code)."""
    keyset = JoseKeySet.import_key_set(json.loads(json.dumps(jwks)))
    return dict(jwt.decode(token, keyset, algorithms=[alg]).claims)


def test_first_use_creates_kek_and_a_set_with_active_and_next(key_settings: KeySettings) -> None:
    keyring = open_keyring(key_settings)
    kek = key_settings.kek_file
    assert kek.stat().st_size == 32
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    ks = keyring.keyset("idp-token")
    states = sorted(i.state for i in ks.list())
    assert states == [KeyState.ACTIVE, KeyState.NEXT]
    assert ks.active().algorithm == "ES256"
    assert {k["kid"] for k in ks.jwks()["keys"]} == {i.kid for i in ks.list()}
    # The same set comes back after a restart.
    again = open_keyring(key_settings).keyset("idp-token")
    assert again.active().kid == ks.active().kid


def test_rotate_twice(keyring: Keyring) -> None:
    ks = keyring.keyset("idp-token")
    k0, n0 = ks.active().kid, next(i.kid for i in ks.list() if i.state is KeyState.NEXT)
    token0 = encode_jws(ks.active(), {"sub": "first"})
    assert _verify(token0, ks.jwks()) == {"sub": "first"}

    ks.rotate()
    assert ks.active().kid == n0  # the key caches already knew
    token1 = encode_jws(ks.active(), {"sub": "second"})
    states = {i.kid: i.state for i in ks.list()}
    assert states[k0] is KeyState.RETIRING and states[n0] is KeyState.ACTIVE
    assert _verify(token0, ks.jwks()) == {"sub": "first"}  # signed before the rotation

    ks.rotate()
    states = {i.kid: i.state for i in ks.list()}
    n1 = next(k for k, s in states.items() if s is KeyState.ACTIVE)
    assert list(states.values()).count(KeyState.NEXT) == 1
    assert states[k0] is KeyState.RETIRED and states[n0] is KeyState.RETIRING
    published = [k["kid"] for k in ks.jwks()["keys"]]
    assert published[0] == n1 and set(published) == set(states) - {k0}
    assert _verify(token1, ks.jwks()) == {"sub": "second"}  # signed before this rotation
    with pytest.raises(InvalidKeyIdError):  # the retired key has left the JWKS
        _verify(token0, ks.jwks())
    with pytest.raises(KeyNotFound):
        ks.get(k0)
    assert ks.get(n0).kid == n0
    assert set(ks.public_keys()) == set(published)


def test_retired_private_key_is_destroyed(keyring: Keyring) -> None:
    ks = keyring.keyset("idp-token")
    first = ks.active().kid
    files_before = set((keyring.directory / "private").iterdir())
    ks.rotate()
    ks.rotate()
    files_after = set((keyring.directory / "private").iterdir())
    assert len(files_after) == 3 == len(files_before) + 2 - 1
    assert first in {i.kid for i in ks.list()}  # still listed, as retired


def test_other_processes_see_a_rotation(key_settings: KeySettings) -> None:
    a = open_keyring(key_settings, reload_seconds=0).keyset("idp-token")
    b = open_keyring(key_settings, reload_seconds=0).keyset("idp-token")
    a.rotate()
    assert b.active().kid == a.active().kid
    assert b.jwks() == a.jwks()


def test_failed_rotation_leaves_the_previous_set(
    keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    ks = keyring.keyset("idp-token")
    index = keyring.directory / "sets" / "idp-token.json"
    before = index.read_bytes()
    active = ks.active().kid
    key_files = set((keyring.directory / "private").iterdir())

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)  # the crash hits the index write
    with pytest.raises(OSError, match="No space"):
        ks.rotate()
    monkeypatch.undo()

    assert index.read_bytes() == before
    assert ks.active().kid == active
    assert set((keyring.directory / "private").iterdir()) == key_files  # no orphan key
    assert not [p for p in index.parent.iterdir() if p.name.endswith(".tmp")]
    fresh = open_keyring(keyring.settings).keyset("idp-token")
    assert fresh.active().kid == active
    fresh.rotate()  # and the set still rotates afterwards
    assert fresh.active().kid != active


def test_wrong_kek_is_refused(key_settings: KeySettings, tmp_path: Path) -> None:
    open_keyring(key_settings).keyset("idp-token")
    other = tmp_path / "other-kek.bin"
    other.write_bytes(os.urandom(32))
    wrong = KeySettings(home=key_settings.home, kek_file=other)
    with pytest.raises(WrongKeyEncryptionKey, match="does not open"):
        open_keyring(wrong)


def test_malformed_kek_file_is_refused(key_settings: KeySettings) -> None:
    key_settings.kek_file.parent.mkdir(parents=True)
    key_settings.kek_file.write_bytes(b"too short")
    with pytest.raises(WrongKeyEncryptionKey, match="32 bytes"):
        open_keyring(key_settings)


def test_corrupt_key_file_is_reported(key_settings: KeySettings) -> None:
    ks = open_keyring(key_settings).keyset("idp-token")
    active = next(i for i in ks.list() if i.state is KeyState.ACTIVE)
    index = json.loads((key_settings.key_dir / "sets" / "idp-token.json").read_text())
    handle = next(k["handle"] for k in index["keys"] if k["kid"] == active.kid)
    path = key_settings.key_dir / "private" / f"{handle}.key"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(KeyStoreCorrupt, match="integrity"):
        open_keyring(key_settings).keyset("idp-token")


def test_corrupt_index_is_reported(key_settings: KeySettings) -> None:
    open_keyring(key_settings).keyset("idp-token")
    (key_settings.key_dir / "sets" / "idp-token.json").write_text('{"format": 1, "keys": [')
    with pytest.raises(KeyStoreCorrupt, match="idp-token"):
        open_keyring(key_settings).keyset("idp-token")


def test_one_algorithm_per_purpose(keyring: Keyring) -> None:
    rs = keyring.keyset("idp-token-rs256", algorithm="RS256")
    assert rs.active().algorithm == "RS256"
    assert rs.jwks()["keys"][0]["kty"] == "RSA"
    with pytest.raises(ConfigurationError, match="RS256"):
        keyring.keyset("idp-token-rs256", algorithm="ES256")
    # Without an algorithm, an existing set is taken as it is.
    assert open_keyring(keyring.settings).keyset("idp-token-rs256").algorithm == "RS256"
    with pytest.raises(KeysError, match="name"):
        keyring.keyset("../escape")


def test_secrets_are_stable_sealed_and_distinct(key_settings: KeySettings) -> None:
    a = open_keyring(key_settings)
    cookie = a.secret("idp-cookie")
    assert len(cookie) == 32 and a.secret("pairwise-salt") != cookie
    assert open_keyring(key_settings).secret("idp-cookie") == cookie
    stored = (key_settings.key_dir / "secrets" / "idp-cookie.bin").read_bytes()
    assert cookie not in stored


def test_pii_protector_survives_a_restart(key_settings: KeySettings) -> None:
    number = "11010519491231002X"
    first = open_keyring(key_settings).pii()
    blob = first.encrypt(number, purpose="resident-id")
    second = open_keyring(key_settings).pii()
    assert second.decrypt(blob, purpose="resident-id") == number
    assert second.blind_index(number, purpose="resident-id") == first.blind_index(
        number, purpose="resident-id"
    )
