"""The CIBA service: a request in, the citizen told, their decision recorded (CIBA Core 1.0 §7, §8, §10).

:class:`CibaService` is what the backchannel authentication endpoint
(:mod:`.grant`), the approval page (``idp.web.views_ciba``) and the token
grant share: the store, the notifiers, the ping delivery and the audit log.
It knows no framework.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749.util import scope_to_list

from .acting import actor_label, actor_record
from .live import LiveNotifier
from .notify import ActorDisplay, Notifier, PendingApproval, notify_all
from .ping import PingDelivery
from .request import CIBA_GRANT_TYPE, CibaConfig, acr_rank, validate
from .store import Approval, CibaStore, StoredRequest

__all__ = ["CibaService", "RequestView"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestView:
    """A pending request as the approval page shows it."""

    h: str
    display_id: str
    client_id: str
    client_name: str
    citizen_id: int
    scopes: tuple[str, ...]
    binding_message: str
    actor: ActorDisplay | None
    acr: str
    expires_at: int
    status: str


@dataclass
class CibaService:
    store: CibaStore
    live: LiveNotifier
    provider: Any
    accounts: Any
    config: CibaConfig = field(default_factory=CibaConfig)
    notifiers: Sequence[Notifier] = ()
    """Besides :attr:`live` (Web Push, …): the container adds them."""
    ping: PingDelivery | None = None
    audit: Callable[..., None] | None = None

    # the backchannel authentication endpoint (CIBA §7) ----------------------
    def start(self, client: Any, params: dict[str, Any], *, ip: str | None = None) -> dict[str, Any]:
        """Validate, keep and announce a request; the §7.3 answer (``auth_req_id``, ``expires_in``, ``interval``)."""
        now = self.store.now()
        valid = validate(client, params, provider=self.provider, accounts=self.accounts, config=self.config,
                         now=now, ip=ip)
        citizen = valid.citizen
        acr = self._required_acr(valid.acr, client)
        actor = actor_record(valid.actor)
        auth_req_id, display_id, expires_at = self.store.create(StoredRequest(
            client_id=client.client_id, citizen_id=citizen.id, public_id=citizen.public_id, scope=valid.scope,
            expires_in=valid.expires_in, interval=self.config.interval, mode=valid.mode, acr=acr,
            binding_message=valid.binding_message, actor=actor, notification_token=valid.notification_token,
        ))
        pending = PendingApproval(
            account_id=citizen.id, display_id=display_id, client_name=client.name,
            actor=ActorDisplay(actor["kind"], actor["name"], actor["office"]) if actor else None,
            binding_message=valid.binding_message or None, scopes=tuple(scope_to_list(valid.scope) or ()),
            expires_at=expires_at,
        )
        notify_all([self.live, *self.notifiers], pending)
        self._audit("ciba.requested", client_id=client.client_id, subject=citizen.id_number_masked,
                    actor=actor_label(actor), ip=ip,
                    detail={"request": display_id, "scope": valid.scope, "mode": valid.mode,
                            **({"actor_kind": actor["kind"], "office": actor["office"]} if actor else {})})
        return {"auth_req_id": auth_req_id, "expires_in": valid.expires_in, "interval": self.config.interval}

    def _required_acr(self, asked: str, client: Any) -> str:
        """The request's level, raised to the client's ``require_acr`` floor (``idp.oauth.acr``)."""
        floor = client.attribute("require_acr")
        if not asked:
            defaults = client.attribute("default_acr_values") or []
            known = [a for a in defaults if acr_rank(a) >= 0] if isinstance(defaults, list) else []
            asked = min(known, key=acr_rank) if known else ""
        if isinstance(floor, str) and acr_rank(floor) > acr_rank(asked):
            return floor
        return asked

    # the approval page (CIBA §8) ------------------------------------------
    def view(self, display_id: str, citizen_id: int) -> RequestView | None:
        """The request behind a display id, only for the citizen it names (anyone else: ``None``)."""
        found = self.store.by_display_id(display_id)
        if found is None:
            return None
        h, data = found
        if data.get("citizen_id") != str(citizen_id):
            return None
        client = self.provider.query_client(data["client_id"])
        actor = json.loads(data["actor"]) if data.get("actor") else None
        return RequestView(
            h=h, display_id=display_id, client_id=data["client_id"],
            client_name=client.name if client is not None else data["client_id"], citizen_id=citizen_id,
            scopes=self._scopes(client, data["scope"]), binding_message=data.get("binding_message", ""),
            actor=ActorDisplay(actor["kind"], actor["name"], actor["office"]) if actor else None,
            acr=data.get("acr", ""), expires_at=int(data["expires_at"]),
            status=data["status"] if int(data["expires_at"]) > self.store.now() else "expired",
        )

    def _scopes(self, client: Any, scope: str) -> tuple[str, ...]:
        from ..oauth.scopes import decide

        if client is None:
            return ()
        return decide(client, CIBA_GRANT_TYPE, scope).granted

    def needs_stronger_sign_in(self, view: RequestView, session: Any) -> bool:
        return bool(view.acr) and acr_rank(session.acr) < acr_rank(view.acr)

    def decide(self, view: RequestView, session: Any, *, approve: bool) -> bool:
        """Record the citizen's decision (from ``session``); False when it was already decided or expired."""
        approval = None
        if approve:
            approval = Approval(sid=session.sid, auth_time=session.auth_time, acr=session.acr,
                                amr=tuple(session.amr), scope=" ".join(view.scopes))
        data = self.store.decide(view.h, view.citizen_id, approval)
        self.live.withdraw(view.citizen_id, view.display_id)
        if data is None:
            return False
        actor = json.loads(data["actor"]) if data.get("actor") else None
        self._audit("ciba.approved" if approve else "ciba.denied", client_id=view.client_id,
                    actor=actor_label(actor), subject=f"citizen:{view.citizen_id}",
                    detail={"request": view.display_id, "sid": session.sid,
                            **({"office": actor["office"]} if actor else {})})
        if data.get("mode") == "ping" and self.ping is not None:
            self.ping.enqueue(view.h)  # CIBA §10.2: success or failure, the client is pinged
        return True

    def pending_for(self, account_id: int) -> list[PendingApproval]:
        return self.live.pending_for(account_id)

    def _audit(self, kind: str, **kw: Any) -> None:
        if self.audit is not None:
            self.audit(kind, **kw)
