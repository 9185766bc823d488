"""Password hashing: Argon2id at OWASP's recommended parameters.

OWASP Password Storage Cheat Sheet: Argon2id with m = 19 MiB (19,456 KiB),
t = 2, p = 1. Hashes are PHC strings (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``)
made and checked by ``cryptography``'s Argon2id, which is about 10 % faster
than argon2-cffi here (docs/design.md, performance facts). The parameters live in
the string, so raising them later only needs :meth:`PasswordHasher.needs_rehash`
at the next successful login.

Only the test suite lowers the memory cost (``IdpSettings.password_hash_memory_kib``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = ["PasswordHasher", "hash_slots", "cpus_available", "OWASP_MEMORY_KIB", "OWASP_ITERATIONS", "MAX_PASSWORD_BYTES"]

OWASP_MEMORY_KIB = 19456
OWASP_ITERATIONS = 2
MAX_PASSWORD_BYTES = 1024
"""Longer inputs are refused before hashing (no hashing of megabyte bodies)."""

_slots_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


def cpus_available() -> int:
    """The CPUs this process may run on (``taskset``/cgroup affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def hash_slots() -> threading.BoundedSemaphore:
    """At most one Argon2id computation per available CPU in this process at a time.

    ``cryptography`` releases the GIL while it hashes, so a server's request
    threads would otherwise run as many 19 MiB hashes side by side as there
    are logins in flight; on one core that only interleaves them, and their
    working sets evict each other from the cache (8 concurrent hashes on one
    core: ~31/s against ~34/s one after the other). Queuing them costs no
    throughput. Created per process (a forked worker gets its own).
    """
    global _slots
    pid = os.getpid()
    with _slots_lock:
        if _slots is None or _slots[0] != pid:
            _slots = (pid, threading.BoundedSemaphore(cpus_available()))
        return _slots[1]


_PHC = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


@dataclass(frozen=True)
class PasswordHasher:
    """Hashes and verifies passwords; holds the cost parameters."""

    memory_kib: int = OWASP_MEMORY_KIB
    iterations: int = OWASP_ITERATIONS
    lanes: int = 1
    _dummy: list[str] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.memory_kib < 8 * self.lanes or self.iterations < 1 or self.lanes < 1:
            raise ValueError("Argon2id needs m >= 8p KiB, t >= 1, p >= 1")

    def _kdf(self, salt: bytes) -> Argon2id:
        return Argon2id(
            salt=salt,
            length=32,
            iterations=self.iterations,
            lanes=self.lanes,
            memory_cost=self.memory_kib,
        )

    def hash(self, password: str) -> str:
        """A fresh PHC string for ``password`` (random 16-byte salt)."""
        data = password.encode()
        if len(data) > MAX_PASSWORD_BYTES:
            raise ValueError("password too long")
        with hash_slots():
            return self._kdf(os.urandom(16)).derive_phc_encoded(data)

    def verify(self, password: str, phc: str | None) -> bool:
        """True if ``password`` matches ``phc``.

        With ``phc=None`` (no such account, or no password set) a dummy hash
        is checked instead, so the answer costs the same time either way.
        """
        data = password.encode()[: MAX_PASSWORD_BYTES + 1]
        if phc is None or _PHC.match(phc) is None:
            self._verify_dummy(data)
            return False
        try:
            with hash_slots():
                Argon2id.verify_phc_encoded(data, phc)
        except InvalidKey:
            return False
        return True

    def _verify_dummy(self, data: bytes) -> None:
        if not self._dummy:
            self._dummy.append(self.hash("dummy password for absent accounts"))
        with contextlib.suppress(InvalidKey), hash_slots():
            Argon2id.verify_phc_encoded(data, self._dummy[0])

    def needs_rehash(self, phc: str) -> bool:
        """True if ``phc`` was made with other parameters than these."""
        m = _PHC.match(phc)
        if m is None:
            return True
        return (int(m[1]), int(m[2]), int(m[3])) != (self.memory_kib, self.iterations, self.lanes)
