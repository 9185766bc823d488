"""Argon2id computations are queued to one per available CPU (idp.passwords.hash_slots)."""

from __future__ import annotations

import threading
import time

import idp.passwords as passwords
from idp.passwords import PasswordHasher, cpus_available, hash_slots


def test_no_more_hashes_at_once_than_cpus(monkeypatch):
    hasher = PasswordHasher(memory_kib=64, iterations=1)
    phc = hasher.hash("secret")
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow_verify(data: bytes, encoded: str) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    monkeypatch.setattr(passwords.Argon2id, "verify_phc_encoded", staticmethod(slow_verify))
    threads = [threading.Thread(target=hasher.verify, args=("secret", phc)) for _ in range(cpus_available() + 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= peak <= cpus_available()


def test_absent_account_dummy_hash_also_queues(monkeypatch):
    hasher = PasswordHasher(memory_kib=64, iterations=1)
    hasher.verify("warm up the dummy hash", None)
    seen: list[bool] = []
    slots = hash_slots()

    def probe(data: bytes, encoded: str) -> None:
        # the slot is held: a non-blocking acquire of every slot cannot all succeed
        got = [slots.acquire(blocking=False) for _ in range(cpus_available())]
        for ok in got:
            if ok:
                slots.release()
        seen.append(not all(got))

    monkeypatch.setattr(passwords.Argon2id, "verify_phc_encoded", staticmethod(probe))
    assert hasher.verify("anything", None) is False
    assert hasher.verify("anything", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g") is True
    assert seen == [True, True]


def test_wrong_password_still_false_and_slot_released():
    hasher = PasswordHasher(memory_kib=64, iterations=1)
    phc = hasher.hash("right")
    for _ in range(cpus_available() + 2):
        assert hasher.verify("wrong", phc) is False
    assert hasher.verify("right", phc) is True
