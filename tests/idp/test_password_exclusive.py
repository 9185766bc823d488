"""On one CPU, Argon2id runs in libargon2 with the interpreter lock held (idp.passwords.exclusive_argon2).

The two implementations must make and accept the same PHC strings, the
answer for a wrong password or an absent account must not change, and the
exclusive hash must still take a hash slot.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import pytest
from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

import idp.passwords as passwords
from idp.passwords import PasswordHasher, cpus_available, hash_slots

LIB = passwords._load_libargon2()
needs_lib = pytest.mark.skipif(LIB is None, reason="libargon2 (Debian libargon2-1) is not installed")


@pytest.fixture
def one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as if confined to one CPU: the next exclusive_argon2() decides again."""
    monkeypatch.setattr(passwords, "cpus_available", lambda: 1)
    monkeypatch.setattr(passwords, "_library", None)
    monkeypatch.setattr(passwords, "_slots", None)


@pytest.fixture
def two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "cpus_available", lambda: 2)
    monkeypatch.setattr(passwords, "_library", None)
    monkeypatch.setattr(passwords, "_slots", None)


@needs_lib
def test_one_cpu_uses_libargon2_holding_the_gil(one_cpu: None) -> None:
    lib = passwords.exclusive_argon2()
    assert isinstance(lib, ctypes.PyDLL)  # a PyDLL call keeps the GIL for its whole length


def test_more_cpus_keep_cryptography(two_cpus: None) -> None:
    assert passwords.exclusive_argon2() is None


@needs_lib
@pytest.mark.parametrize("params", [(64, 1, 1), (passwords.OWASP_MEMORY_KIB, 2, 1), (256, 3, 2)])
def test_both_implementations_make_and_accept_the_same_strings(params: tuple[int, int, int]) -> None:
    memory, iterations, lanes = params
    made_by_lib = passwords._hash_exclusive(LIB, "密码 secret".encode(), os.urandom(16), iterations=iterations,
                                            memory_kib=memory, lanes=lanes)
    assert made_by_lib.startswith(f"$argon2id$v=19$m={memory},t={iterations},p={lanes}$")
    assert passwords._PHC.match(made_by_lib)
    Argon2id.verify_phc_encoded("密码 secret".encode(), made_by_lib)
    with pytest.raises(InvalidKey):
        Argon2id.verify_phc_encoded(b"wrong", made_by_lib)
    made_by_crypto = Argon2id(salt=os.urandom(16), length=32, iterations=iterations, lanes=lanes,
                              memory_cost=memory).derive_phc_encoded("密码 secret".encode())
    assert LIB.argon2id_verify(made_by_crypto.encode(), "密码 secret".encode(), len("密码 secret".encode())) == 0
    assert LIB.argon2id_verify(made_by_crypto.encode(), b"wrong", 5) != 0


@needs_lib
def test_the_hasher_answers_the_same_on_one_cpu(one_cpu: None) -> None:
    hasher = PasswordHasher(memory_kib=64, iterations=1)
    phc = hasher.hash("right")
    assert hasher.verify("right", phc) is True
    assert hasher.verify("wrong", phc) is False
    assert hasher.verify("right", None) is False  # the absent account's dummy hash
    assert hasher.verify("right", "not a phc string") is False
    assert hasher.verify("x" * 5000, phc) is False  # over MAX_PASSWORD_BYTES: checked, never equal
    with_nul = hasher.hash("a\x00b")  # the length is passed: a NUL does not cut the password short
    assert hasher.verify("a\x00b", with_nul) is True and hasher.verify("a", with_nul) is False
    Argon2id.verify_phc_encoded(b"a\x00b", with_nul)
    with pytest.raises(ValueError):
        hasher.hash("x" * 5000)
    assert hasher.needs_rehash(phc) is False
    assert PasswordHasher().needs_rehash(phc) is True
    # a string made on a machine with more CPUs is accepted here, and the other way round
    monkey_two = PasswordHasher(memory_kib=64, iterations=1)._kdf(os.urandom(16)).derive_phc_encoded(b"right")
    assert hasher.verify("right", monkey_two) is True


@needs_lib
def test_the_exclusive_hash_takes_a_hash_slot(one_cpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = passwords.exclusive_argon2()
    held: list[bool] = []

    class Probe:
        def argon2id_verify(self, encoded: bytes, data: bytes, size: int) -> int:
            slots = hash_slots()
            got = [slots.acquire(blocking=False) for _ in range(cpus_available())]
            for ok in got:
                if ok:
                    slots.release()
            held.append(not all(got))
            return int(real.argon2id_verify(encoded, data, size))

        def argon2id_hash_encoded(self, *args: Any) -> int:
            return int(real.argon2id_hash_encoded(*args))

    monkeypatch.setattr(passwords, "_library", (os.getpid(), Probe()))
    hasher = PasswordHasher(memory_kib=64, iterations=1)
    phc = hasher.hash("pw")
    assert hasher.verify("pw", phc) is True
    assert hasher.verify("pw", None) is False
    assert held == [True, True]


def test_without_libargon2_one_cpu_falls_back_to_cryptography(one_cpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_load_libargon2", lambda: None)
    assert passwords.exclusive_argon2() is None
    hasher = PasswordHasher(memory_kib=64, iterations=1)
    assert hasher.verify("a", hasher.hash("a")) is True
