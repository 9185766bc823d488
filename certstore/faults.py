"""Named fault seams of certstore, for the fault suite (tests/faults/); inert in production.

A seam is a call ``fault_point("name")`` at a place where a crash matters;
the mechanism (armed by ``YIWANG_FAULT_POINTS``, SIGKILL on the spot) is
:class:`keys.faults.FaultPoints`. This module is the list of the seams.

Seams:

``issue.before_store``
    In :meth:`certstore.issuance.Issuance.issue`, after the serial and the
    status-list position were drawn and the QR payload and PDF signed, right
    before the statement that stores the certificate. Proves that a request
    dying there leaves no status-list slot behind (issue 20 §3): the slot is
    only taken by the statement that stores the certificate.
"""

from __future__ import annotations

from keys.faults import FaultPoints

__all__ = ["SEAMS", "fault_point"]

SEAMS = frozenset({"issue.before_store"})
"""Every seam certstore has (a test asserts that each is documented above)."""

fault_point = FaultPoints(SEAMS).fault_point
"""Crash the process here if the named seam is armed (``YIWANG_FAULT_POINTS``)."""
