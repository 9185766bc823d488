"""A staff portal's authorization request: the staff session, then a code through the usual machinery.

:class:`idp.signin.SignIn` hands a staff portal's request (:func:`idp.staff.portal.is_staff_portal`)
over at once, as a flow waiting for a login at :data:`idp.staff.portal.LOGIN_PATH`;
the citizen's SSO session plays no part. There (:mod:`idp.web.views_staff`):

- :meth:`StaffSignIn.resume`: a live staff session of an active account answers
  at once with a code (SSO between the counter and hotline systems), unless
  ``prompt=login`` or ``max_age`` asks for a fresh sign-in; ``prompt=none``
  without one is ``login_required`` (OIDC Core §3.1.2.6); otherwise the page.
- the page's POST signs in (:meth:`idp.staff.accounts.StaffService.login`:
  username, password and TOTP at once), starts a staff session
  (:class:`StaffSessions`, its own cookie) and :meth:`StaffSignIn.issue`\\ s the code.

The code is Authlib's, through the same :class:`idp.signin.AuthorizationPort`
and grant as a citizen's; the :class:`~idp.oauth.provider.GrantUser` carries
``staff`` (the ``sub`` ``staff:<public id>`` and the ID-token claims) and no
citizen, so the tokens never name a citizen and no refresh token is issued.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.util import scope_to_list

from ..oauth.claims import ID_NUMBER_SCOPE
from ..oauth.discovery import ACR_2FA
from ..oauth.flow import Flow, FlowState
from ..oauth.provider import GrantUser
from ..signin import ErrorPage, IssueCode, Outcome, RedirectError
from .accounts import StaffService, StaffView
from .portal import is_staff_portal

__all__ = ["StaffSession", "StaffSessions", "StaffSignIn", "SESSION_SECONDS", "staff_claims"]

logger = logging.getLogger(__name__)

SESSION_SECONDS = 8 * 3600
"""A staff session lasts a shift at most; then the clerk signs in again."""
STAFF_AMR = ["pwd", "otp"]


@dataclass(frozen=True)
class StaffSession:
    """A signed-in clerk or agent (Redis, :data:`SESSION_SECONDS`)."""

    sid: str
    sub: str
    username: str
    auth_time: int


def staff_claims(staff: StaffView) -> dict[str, Any]:
    """The ID token's claims about a staff member (besides ``sub``)."""
    return {"name": staff.display_name, "preferred_username": staff.username, "staff_kind": staff.kind,
            "office": staff.office}


class StaffSessions:
    """Staff sessions in Redis under the SHA-256 of their cookie (a stolen key dump holds no cookie)."""

    def __init__(self, redis: Any, keyspace: Any, ttl_seconds: int = SESSION_SECONDS) -> None:
        self._r = redis
        self._ks = keyspace
        self.ttl = ttl_seconds

    def _key(self, cookie: str) -> str:
        return str(self._ks.key("staff", "s", hashlib.sha256(cookie.encode()).hexdigest()))

    def create(self, staff: StaffView, now: int) -> tuple[StaffSession, str]:
        cookie = secrets.token_urlsafe(32)
        session = StaffSession(sid=secrets.token_urlsafe(16), sub=staff.sub, username=staff.username, auth_time=now)
        self._r.set(self._key(cookie), json.dumps(asdict(session)), ex=self.ttl)
        return session, cookie

    def get(self, cookie: str | None) -> StaffSession | None:
        if not cookie or not 20 <= len(cookie) <= 100:
            return None
        raw = self._r.get(self._key(cookie))
        if raw is None:
            return None
        try:
            return StaffSession(**json.loads(raw))
        except (TypeError, ValueError):
            return None

    def end(self, cookie: str | None) -> None:
        if cookie and 20 <= len(cookie) <= 100:
            self._r.delete(self._key(cookie))


class StaffSignIn:
    """What the staff sign-in page needs: is this a staff flow, may a session answer it, the code."""

    def __init__(self, *, port: Any, flows: Any, staff: StaffService, sessions: StaffSessions, audit: Any) -> None:
        self.port = port
        self.flows = flows
        self.staff = staff
        self.sessions = sessions
        self._audit = audit

    def is_staff_flow(self, flow: Flow | None) -> bool:
        """A waiting authorization request of a staff portal (anything else is not this page's)."""
        if flow is None or not flow.is_authorization or flow.state is FlowState.DONE:
            return False
        return is_staff_portal(self.port.query_client(flow.client_id))

    def resume(self, flow: Flow, session: StaffSession | None, *, now: int) -> Outcome | None:
        """The answer without the page (a code or ``login_required``), or ``None``: show the page."""
        prompt = (flow.params.get("prompt") or "").split()
        fresh_enough = True
        max_age = flow.params.get("max_age")
        if session is not None and max_age not in (None, ""):
            try:
                fresh_enough = now - session.auth_time <= int(max_age)
            except ValueError:
                fresh_enough = False
        if session is not None and "login" not in prompt and fresh_enough:
            return self.issue(flow, session, now=now, reused=True)
        if "none" in prompt and flow.redirect_uri:
            return self._end(flow, RedirectError(flow.redirect_uri, "login_required", None, flow.oauth_state))
        return None

    def issue(self, flow: Flow, session: StaffSession, *, now: int, reused: bool = False) -> Outcome:
        """The code for ``flow``, for the (still active) staff member of ``session``."""
        staff = self.staff.active_by_sub(session.sub)
        if staff is None:
            return ErrorPage("error_expired", detail="the staff account is disabled or gone")
        user = GrantUser(citizen_id=None, public_id="", sid=None, auth_time=session.auth_time,  # type: ignore[arg-type]
                         acr=ACR_2FA, amr=list(STAFF_AMR),
                         staff={"sub": staff.sub, "claims": staff_claims(staff)})
        oreq = self.port.request(dict(flow.params))
        try:
            grant = self.port.get_consent_grant(oreq, end_user=user)
        except OAuth2Error as e:
            if e.redirect_uri:
                return self._end(flow, RedirectError(e.redirect_uri, e.error, e.description, flow.oauth_state))
            return self._end(flow, ErrorPage("error_request", detail=f"{e.error}: {e.description or ''}"))
        # Scopes as the policy cut them (the grant's validation), never the ID number: a staff
        # member has none. Authlib validates again from the parameters when it issues the code.
        scopes = [s for s in (scope_to_list(grant.request.scope) or []) if s != ID_NUMBER_SCOPE]
        oreq.payload.data["scope"] = " ".join(scopes)
        grant.request.user = user
        fid = flow.id
        if fid is not None:
            flows = self.flows
            user.on_code_issue = lambda pipe: flows.delete(fid, pipe=pipe)
        flow.finish()
        response = self.port.create_authorization_response(oreq, grant_user=user, grant=grant)
        self._record("staff.authorized", staff, flow.client_id, {"scopes": scopes, "sso": reused})
        return IssueCode(response)

    def _end(self, flow: Flow, outcome: Outcome) -> Outcome:
        flow.finish()
        if flow.id is not None:
            self.flows.delete(flow.id)
        return outcome

    def _record(self, kind: str, staff: StaffView, client_id: str | None, detail: dict[str, Any]) -> None:
        if self._audit is None:
            return
        try:
            self._audit.record(kind, subject="staff:" + staff.username, client_id=client_id, detail=detail)
        except Exception:  # the code is issued; the audit writer logs its own failures
            logger.exception("audit record %s failed", kind)
