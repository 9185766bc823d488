"""Password hashing: Argon2id at OWASP's recommended parameters.

OWASP Password Storage Cheat Sheet: Argon2id with m = 19 MiB (19,456 KiB),
t = 2, p = 1. Hashes are PHC strings (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``)
made and checked by ``cryptography``'s Argon2id, which is about 10 % faster
than argon2-cffi here (docs/design.md, performance facts). The parameters live in
the string, so raising them later only needs :meth:`PasswordHasher.needs_rehash`
at the next successful login.

Only the test suite lowers the memory cost (``IdpSettings.password_hash_memory_kib``).

A process confined to one CPU (``taskset``, a cpuset: ``make bench`` pins the
idp so) computes the same Argon2id with the reference library, libargon2,
called so that it keeps the interpreter lock (:func:`exclusive_argon2`): see
there for why. Both make and check the same PHC strings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = ["PasswordHasher", "hash_slots", "exclusive_argon2", "cpus_available", "OWASP_MEMORY_KIB", "OWASP_ITERATIONS",
           "MAX_PASSWORD_BYTES"]

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


_library_lock = threading.Lock()
_library: tuple[int, Any] | None = None


def _load_libargon2() -> Any:
    """libargon2 (Debian: libargon2-1) as a ``ctypes.PyDLL``, or ``None`` where it is not installed."""
    path = ctypes.util.find_library("argon2")
    if not path:
        return None
    try:
        lib = ctypes.PyDLL(path)
        u32, size, text = ctypes.c_uint32, ctypes.c_size_t, ctypes.c_char_p
        lib.argon2id_hash_encoded.argtypes = [u32, u32, u32, text, size, text, size, size, text, size]
        lib.argon2id_hash_encoded.restype = ctypes.c_int
        lib.argon2id_verify.argtypes = [text, text, size]
        lib.argon2id_verify.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib


def exclusive_argon2() -> Any:
    """libargon2 called with the interpreter lock held, when this process may use one CPU only; else ``None``.

    On one CPU the request threads and the hash take turns on the same core.
    With ``cryptography`` the hash lets go of the interpreter, so the other
    threads' Python work cuts into it again and again, and each side evicts
    the other's working set from the caches: a login then costs 2–5 ms more
    CPU than its parts alone (docs/performance.md, "Password sign-ins"). A
    ``ctypes.PyDLL`` call keeps the lock, so the hash runs to its end in one
    stretch and the requests run between hashes; on one CPU nothing could run
    in parallel anyway. With more CPUs, hashes and requests do run side by
    side, so there the GIL-free ``cryptography`` is used (:func:`hash_slots`
    still bounds the hashes to one per CPU). Decided once per process.
    """
    global _library
    pid = os.getpid()
    with _library_lock:
        if _library is None or _library[0] != pid:
            _library = (pid, _load_libargon2() if cpus_available() == 1 else None)
        return _library[1]


def _hash_exclusive(lib: Any, data: bytes, salt: bytes, *, iterations: int, memory_kib: int, lanes: int) -> str:
    out = ctypes.create_string_buffer(256)  # a PHC string at any parameters fits (hash and salt: 43 + 22 base64)
    rc = lib.argon2id_hash_encoded(iterations, memory_kib, lanes, data, len(data), salt, len(salt), 32, out, len(out))
    if rc != 0:
        raise RuntimeError(f"libargon2 refused to hash (error {rc})")
    return out.value.decode("ascii")


def _verify_phc(data: bytes, phc: str) -> bool:
    """Whether ``data`` is the password of ``phc`` (one Argon2id, in a hash slot)."""
    lib = exclusive_argon2()
    with hash_slots():
        if lib is not None:
            return bool(lib.argon2id_verify(phc.encode("ascii"), data, len(data)) == 0)
        try:
            Argon2id.verify_phc_encoded(data, phc)
        except InvalidKey:
            return False
        return True


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
        salt = os.urandom(16)
        lib = exclusive_argon2()
        with hash_slots():
            if lib is not None:
                return _hash_exclusive(lib, data, salt, iterations=self.iterations, memory_kib=self.memory_kib,
                                       lanes=self.lanes)
            return self._kdf(salt).derive_phc_encoded(data)

    def verify(self, password: str, phc: str | None) -> bool:
        """True if ``password`` matches ``phc``.

        With ``phc=None`` (no such account, or no password set) a dummy hash
        is checked instead, so the answer costs the same time either way.
        """
        data = password.encode()[: MAX_PASSWORD_BYTES + 1]
        if phc is None or _PHC.match(phc) is None:
            self._verify_dummy(data)
            return False
        return _verify_phc(data, phc)

    def _verify_dummy(self, data: bytes) -> None:
        if not self._dummy:
            self._dummy.append(self.hash("dummy password for absent accounts"))
        _verify_phc(data, self._dummy[0])

    def needs_rehash(self, phc: str) -> bool:
        """True if ``phc`` was made with other parameters than these."""
        m = _PHC.match(phc)
        if m is None:
            return True
        return (int(m[1]), int(m[2]), int(m[3])) != (self.memory_kib, self.iterations, self.lanes)
