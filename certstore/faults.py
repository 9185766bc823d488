"""Named fault seams of certstore, for the fault suite (tests/faults/); inert in production.

A seam is a call ``fault_point("name")`` at a place where a crash matters.
It does nothing unless the process was started with ``YIWANG_FAULT_POINTS``
naming it (comma-separated, read once at import): then the process kills
itself with SIGKILL on the spot, as a power cut or the OOM killer would,
with no ``finally`` block, no rollback and no answer to the client. The
cost when unset is one membership test in an empty frozenset.

Seams:

``issue.before_store``
    In :meth:`certstore.issuance.Issuance.issue`, after the serial and the
    status-list position were drawn and the QR payload and PDF signed, right
    before the statement that stores the certificate. Proves that a request
    dying there leaves no status-list slot behind (issue 20 §3): the slot is
    only taken by the statement that stores the certificate.
"""

from __future__ import annotations

import os
import signal

__all__ = ["SEAMS", "fault_point"]

SEAMS = frozenset({"issue.before_store"})
"""Every seam certstore has (a test asserts that each is documented above)."""

_ARMED = frozenset(n.strip() for n in os.environ.get("YIWANG_FAULT_POINTS", "").split(",") if n.strip()) & SEAMS


def fault_point(name: str) -> None:
    """Crash the process here if ``name`` is armed (``YIWANG_FAULT_POINTS``)."""
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
