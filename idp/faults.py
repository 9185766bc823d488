"""Named fault seams of the idp, for the fault suite (tests/faults/); inert in production.

A seam is a call ``fault_point("name")`` at a place where a crash matters;
the mechanism (armed by ``YIWANG_FAULT_POINTS``, SIGKILL on the spot) is
:class:`keys.faults.FaultPoints`. This module is the list of the seams.

Seams:

``refresh.after_consume``
    In :meth:`idp.oauth.grants.RefreshTokenGrant.authenticate_refresh_token`,
    right after the statement that consumed the presented refresh token (the
    parent) and before any child is generated or stored. Proves that a
    client whose refresh died there can retry the parent (issue 20 §1).
``refresh.after_store``
    In :meth:`idp.oauth.grants.RefreshTokenGrant.save_token`, after the child
    tokens are committed and before the response leaves: the child exists
    but was never delivered. Proves that the retry of the parent gets a new
    child and the undelivered one is revoked (one live chain).
``logout.after_fetch``
    In the ``logout_deliver`` actor (:mod:`idp.logout.queue`), after the
    worker fetched the job and took the delivery's lock, before the POST:
    the worker dies holding the job. Proves the stated requeue bound
    (``YIWANG_IDP_QUEUE_REQUEUE_SECONDS``, issue 20 §5).
"""

from __future__ import annotations

from keys.faults import FaultPoints

__all__ = ["SEAMS", "fault_point"]

SEAMS = frozenset({"refresh.after_consume", "refresh.after_store", "logout.after_fetch"})
"""Every seam the idp has (a test asserts that each is documented above)."""

fault_point = FaultPoints(SEAMS).fault_point
"""Crash the process here if the named seam is armed (``YIWANG_FAULT_POINTS``)."""
