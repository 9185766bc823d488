"""The fault-seam mechanism the services share, for the fault suite (tests/faults/); inert in production.

A seam is a call ``fault_point("name")`` at a place where a crash matters.
It does nothing unless the process was started with ``YIWANG_FAULT_POINTS``
naming it (comma-separated, read once, when the service's seams are
declared): then the process kills itself with SIGKILL on the spot, as a
power cut or the OOM killer would, with no ``finally`` block, no rollback
and no answer to the client. The cost when unset is one membership test in
an empty frozenset.

Each service declares its own seams and documents them
(:mod:`certstore.faults`, :mod:`idp.faults`); this module only arms and fires them.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV_VAR", "FaultPoints"]

ENV_VAR = "YIWANG_FAULT_POINTS"


class FaultPoints:
    """A service's seams, armed from :data:`ENV_VAR` once, at construction."""

    def __init__(self, seams: frozenset[str]) -> None:
        self.seams = seams
        armed = os.environ.get(ENV_VAR, "")
        self._armed = frozenset(n.strip() for n in armed.split(",") if n.strip()) & seams

    def fault_point(self, name: str) -> None:
        """Crash the process here if ``name`` is armed (``YIWANG_FAULT_POINTS``)."""
        if name in self._armed:
            os.kill(os.getpid(), signal.SIGKILL)
