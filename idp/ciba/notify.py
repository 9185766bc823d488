"""How a citizen learns that a counter or hotline asks for their approval (CIBA Core 1.0 §7.3).

CIBA leaves "how the OP contacts the user" to the provider. Here it is a
list of :class:`Notifier` implementations the container builds from
settings; each gets the same :class:`PendingApproval`, which says only what
the citizen's device needs to show (never the ``auth_req_id``, a bearer
reference the client holds, nor the citizen's ID number):

- the embedded live notifier (:class:`idp.ciba.live.LiveNotifier`): the
  citizen's signed-in idp pages pick the pending request up without reload;
- Web Push (``idp.ciba.webpush.WebPushNotifier``) for the app and browsers.

A notifier must not raise for a delivery problem of its own (log it, with
the display id, and return): the request stays pending and the citizen can
still find it on the account page. :func:`notify_all` enforces that for the
whole list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["ActorDisplay", "Notifier", "PendingApproval", "notify_all"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActorDisplay:
    """Who at the agency started the request, as the citizen is shown it."""

    kind: str
    """``clerk`` (a service counter) or ``agent`` (a hotline)."""
    name: str
    """The clerk's or agent's display name."""
    office: str
    """The counter or hotline name."""


@dataclass(frozen=True)
class PendingApproval:
    """A CIBA request waiting for the citizen's decision."""

    account_id: int
    """The citizen's account (``Citizen.id``) whose devices are told."""
    display_id: str
    """A random id for the approval page (``/ciba/<display_id>``); never the ``auth_req_id``."""
    client_name: str
    """The relying party's registered name."""
    actor: ActorDisplay | None
    """The clerk or agent acting for the citizen, or ``None`` when no one acts for them."""
    binding_message: str | None
    """CIBA §7.1: shown on both the consumption and the authentication device."""
    scopes: tuple[str, ...]
    """What the client asks for, already cut by ``idp.oauth.scopes.decide``."""
    expires_at: int
    """Unix time after which the request cannot be approved."""


@runtime_checkable
class Notifier(Protocol):
    """Something that tells a citizen's devices about a :class:`PendingApproval`."""

    def notify(self, pending: PendingApproval) -> None:
        """Deliver (or enqueue) the notice; must not raise for its own delivery failures."""
        ...


def notify_all(notifiers: Iterable[Notifier], pending: PendingApproval) -> None:
    """Tell every notifier; one failing does not stop the others (nor the CIBA request)."""
    for n in notifiers:
        try:
            n.notify(pending)
        except Exception as e:  # a notifier's own failure: logged, the request stays pending
            logger.warning("CIBA notifier %s failed for request %s (%s)",
                           type(n).__name__, pending.display_id, type(e).__name__)
