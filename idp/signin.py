"""The sign-in orchestration: authorize → login → second factor → consent → code.

:class:`SignIn` takes plain inputs (the request's parameters, the SSO session
or ``None``, the browser, the time) and answers with an :data:`Outcome`: show
a step's page, issue the code (Authlib's response), redirect with an OAuth
error, show an error page, go on at ``/authorize/resume``, or go back to a
local page. The web layer only translates HTTP to these calls and outcomes to
responses (:mod:`idp.web.responses`); Authlib is reached through an
:class:`AuthorizationPort` the web layer supplies.

The flow itself (its states and the checks on it) is :class:`idp.oauth.flow.Flow`;
the consent table is :class:`idp.consents.ConsentService`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.util import scope_to_list
from joserfc.jwk import KeySet

from .consents import ConsentService
from .oauth import fapi
from .oauth.acr import level, requirement
from .oauth.flow import (
    Flow,
    FlowState,
    FlowStateError,
    Situation,
    Step,
    consent_missing,
    final_scopes,
    next_step,
)
from .oauth.flowstore import FlowStore
from .oauth.id_token_hint import BadHint, HintClaims, verify_id_token_hint
from .oauth.par import REQUEST_URI_PREFIX
from .oauth.provider import GrantUser
from .staff.portal import LOGIN_PATH as STAFF_LOGIN_PATH
from .staff.portal import is_staff_portal

__all__ = [
    "SignIn",
    "AuthorizationPort",
    "Browser",
    "ShowStep",
    "IssueCode",
    "RedirectError",
    "ErrorPage",
    "ResumeAt",
    "ReturnTo",
    "Outcome",
    "unsupported",
]

# Protocol values are ASCII (RFC 6749 §3.1.1, §3.3, Appendix A; RFC 3986 for URIs).
# Authlib puts some of them in an error description, and refuses to build one
# with other characters (a ValueError, once an unauthenticated 500).
_ASCII_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "code_challenge",
                 "code_challenge_method", "prompt", "max_age", "response_mode", "request_uri",
                 "dpop_jkt")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


class AuthorizationPort(Protocol):
    """What the sign-in needs of Authlib's authorization server (the web layer supplies it)."""

    def request(self, params: dict[str, str]) -> Any:
        """An ``OAuth2Request`` over ``params``."""

    def get_consent_grant(self, request: Any, end_user: Any) -> Any: ...

    def create_authorization_response(self, request: Any, grant_user: Any, grant: Any) -> Any: ...

    def query_client(self, client_id: str | None) -> Any: ...


@dataclass(frozen=True)
class Browser:
    """The browser of the request: the hash of its flow cookie, and a new cookie value if it had none."""

    hash: str
    new_cookie: str | None = None

    @classmethod
    def of_cookie(cls, value: str | None) -> Browser:
        """The browser whose flow cookie is ``value``; one without a usable cookie gets a new value."""
        if not value or len(value) < 20 or len(value) > 64:
            value = secrets.token_urlsafe(24)
            return cls(hashlib.sha256(value.encode()).hexdigest(), value)
        return cls(hashlib.sha256(value.encode()).hexdigest())


# ------------------------------------------------------------------ outcomes


@dataclass(frozen=True)
class ShowStep:
    """Show the page of ``step`` (login, second factor, consent) for ``flow``."""

    step: Step
    flow: Flow
    new_browser_cookie: str | None = None
    """Set this cookie: the flow was bound to a browser that had none."""
    inline: bool = False
    """The login form answers the request itself (no redirect to /login)."""


@dataclass(frozen=True)
class IssueCode:
    """The code redirect: Authlib's response, as the port made it."""

    response: Any


@dataclass(frozen=True)
class RedirectError:
    """An OAuth error at the client's redirect URI (RFC 6749 §4.1.2.1)."""

    redirect_uri: str
    error: str
    description: str | None = None
    oauth_state: str | None = None


@dataclass(frozen=True)
class ErrorPage:
    """A fixed, translated message (``message`` is its key); ``detail`` goes to the log only."""

    message: str = "error_request"
    status: int = 400
    detail: str | None = None


@dataclass(frozen=True)
class ResumeAt:
    """A step is done: go on at ``/authorize/resume`` with this flow."""

    flow_id: str


@dataclass(frozen=True)
class ReturnTo:
    """A login-only flow is done: back to ``path`` (a local page), or the account page if ``None``."""

    path: str | None


Outcome = ShowStep | IssueCode | RedirectError | ErrorPage | ResumeAt | ReturnTo


def unsupported(params: dict[str, str]) -> tuple[str, str] | None:
    """What this server refuses at the redirect URI, as (error, description).

    Checked once the client and redirect URI are known good, so the answer
    goes back to the client. Discovery says the same: request_parameter_supported
    and request_uri_parameter_supported false, response_modes_supported
    ["query"]. (``claims`` is ignored: claims_parameter_supported false.)
    """
    if params.get("request"):
        return "request_not_supported", "request objects are not supported (OIDC Core 6.1)"
    if params.get("request_uri"):
        return "request_uri_not_supported", "only request_uri values from the PAR endpoint are supported"
    mode = params.get("response_mode")
    if mode not in (None, "", "query"):
        return "invalid_request", "response_mode must be query"
    return None


class SignIn:
    """The sign-in flow's orchestration, without HTTP."""

    def __init__(self, *, provider: Any, port: AuthorizationPort, flows: FlowStore,
                 consents: ConsentService, has_passkey: Any = None) -> None:
        self.provider = provider
        self.port = port
        self.flows = flows
        self.consents = consents
        self._has_passkey = has_passkey
        """``citizen_id -> bool``: a usable passkey (default: :func:`idp.passkeys.store.has_usable_passkey`)."""

    def has_passkey(self, citizen_id: int) -> bool:
        """Whether the account can step up with a passkey (asked only when a level above the session's is wanted)."""
        if self._has_passkey is None:
            from .passkeys.store import has_usable_passkey

            db = self.consents.db
            self._has_passkey = lambda cid: has_usable_passkey(db, cid)
        return bool(self._has_passkey(citizen_id))

    # -------------------------------------------------------------- authorize

    def authorize(self, params: dict[str, str], *, session: Any, browser: Browser, now: int) -> Outcome:
        """A new authorization request (``/authorize``)."""
        for name in _ASCII_PARAMS:
            if name in params and not _PRINTABLE_ASCII.fullmatch(params[name]):
                return ErrorPage("error_request", detail=f"'{name}' has characters outside printable ASCII")
        pushed = False
        if params.get("request_uri", "").startswith(REQUEST_URI_PREFIX):
            # RFC 9126 §4: the pushed parameters replace the request's own.
            taken = self.provider.par.take(params["request_uri"], params.get("client_id"))
            if taken is None:
                return ErrorPage("error_expired", detail="the request_uri is unknown, expired or already used")
            params, pushed = taken, True
        elif self.provider.config.require_par and not params.get("request_uri"):
            return ErrorPage("error_par_required", detail="this server requires pushed authorization requests")
        # Any other request_uri is refused at the client's redirect URI (unsupported).
        return self._decide(params, None, pushed=pushed, session=session, browser=browser, now=now,
                            granted=None, fresh=False, citizen=None, inline_login=True)

    def resume(self, flow: Flow | None, *, session: Any, browser: Browser, now: int,
               citizen: Any = None) -> Outcome:
        """Take up a waiting authorization request after a login, second factor or consent.

        ``citizen`` is the account a login has just read, if any.
        """
        if flow is None or not flow.is_authorization or flow.state is FlowState.DONE:
            return ErrorPage("error_expired")
        # The flow id is a reference anyone could paste: what happened in the flow
        # (a login, a consent) counts only in the browser and session it happened
        # in; elsewhere the flow starts over (no consent, no fresh login) and is
        # bound to the browser that continues it.
        sid = session.sid if session is not None else None
        if flow.is_bound_to(browser.hash):
            flow.keep_only(sid)
        else:
            flow.start_over()
        return self._decide(flow.params, flow, pushed=flow.pushed, session=session, browser=browser, now=now,
                            granted=flow.consent_for(sid), fresh=flow.fresh_login_for(sid), citizen=citizen,
                            inline_login=False)

    # ---------------------------------------------------------- the steps done

    def after_login(self, flow: Flow, session: Any, *, browser: Browser, now: int, citizen: Any = None) -> Outcome:
        """The password (and no second factor) signed ``session`` in: answer the request at once.

        One request fewer than a 303 to ``/authorize/resume``: the code
        redirect, or the next step's page, goes straight back.
        """
        try:
            flow.logged_in(session.sid)
        except FlowStateError:
            return ErrorPage("error_expired")
        if flow.is_authorization:
            return self.resume(flow, session=session, browser=browser, now=now, citizen=citizen)
        return self._login_only_done(flow)

    def after_second_factor(self, flow: Flow, session: Any) -> Outcome:
        try:
            flow.second_factor_passed(session.sid)
        except FlowStateError:
            return ErrorPage("error_expired")
        if not flow.is_authorization:
            return self._login_only_done(flow)
        self.flows.keep(flow)
        assert flow.id is not None
        return ResumeAt(flow.id)

    def _login_only_done(self, flow: Flow) -> ReturnTo:
        flow.finish()
        if flow.id is not None:
            self.flows.delete(flow.id)
        return ReturnTo(flow.return_to)

    def give_consent(self, flow: Flow, session: Any, granted: list[str]) -> Outcome:
        """The consent page allowed ``granted``: remembered (added to what the client holds), then resume."""
        if flow.state is not FlowState.CONSENT_PENDING or flow.client_id is None or flow.id is None:
            return ErrorPage("error_expired")
        self.consents.remember(int(session.citizen_id), flow.client_id, granted)
        flow.consented(granted, session.sid)
        self.flows.save(flow)
        return ResumeAt(flow.id)

    def deny_consent(self, flow: Flow) -> Outcome:
        """The citizen declined: the client hears ``access_denied`` (RFC 6749 §4.1.2.1)."""
        if flow.state is FlowState.DONE or flow.redirect_uri is None:
            return ErrorPage("error_expired")
        flow.finish()
        if flow.id is not None:
            self.flows.delete(flow.id)
        self.provider.audit("consent.denied", client_id=flow.client_id)
        return RedirectError(flow.redirect_uri, "access_denied", "the citizen declined", flow.oauth_state)

    # --------------------------------------------------------------- deciding

    def _refusal(self, error: OAuth2Error, params: dict[str, str]) -> ErrorPage:
        """The error page for a request that cannot be answered at its redirect URI."""
        message = "error_request"
        if error.error == "invalid_client":
            message = "error_unknown_client"
        else:
            client = self.port.query_client(params.get("client_id"))
            wanted = params.get("redirect_uri")
            if client is not None and (not client.check_redirect_uri(wanted) if wanted
                                       else client.get_default_redirect_uri() is None):
                message = "error_redirect_uri"
        return ErrorPage(message, detail=f"{error.error}: {error.description or ''}")

    def _decide(self, params: dict[str, str], flow: Flow | None, *, pushed: bool, session: Any, browser: Browser,
                now: int, granted: list[str] | None, fresh: bool, citizen: Any, inline_login: bool) -> Outcome:
        # The citizen row is read later, with the consent, in one query; the
        # grant's validation needs only to know that someone is signed in.
        user = None
        if session is not None:
            user = GrantUser(citizen_id=int(session.citizen_id), public_id="", sid=session.sid,
                             auth_time=session.auth_time, acr=session.acr, amr=list(session.amr))
        params = dict(params)
        oreq = self.port.request(params)
        st = params.get("state")
        try:
            grant = self.port.get_consent_grant(oreq, end_user=user)
        except OAuth2Error as e:
            if e.redirect_uri:
                return RedirectError(e.redirect_uri, e.error, e.description, st)
            return self._refusal(e, params)
        except ValueError as e:  # Authlib refusing to build an error around a value (see _ASCII_PARAMS)
            return ErrorPage("error_request", detail=str(e))
        client = grant.request.client
        redirect_uri = grant.redirect_uri
        refused = unsupported(params)
        if refused is not None:
            return RedirectError(redirect_uri, *refused, st)
        refused = fapi.check_authorization(client, params, pushed=pushed)  # a FAPI 2.0 client's rules
        if refused is not None:
            return RedirectError(redirect_uri, *refused, st)
        max_age = None
        if params.get("max_age") not in (None, ""):
            try:
                max_age = int(params["max_age"])
                if max_age < 0:
                    raise ValueError
            except ValueError:
                return RedirectError(redirect_uri, "invalid_request", "max_age must be a whole number", st)
        hint = None
        if params.get("id_token_hint"):
            try:
                hint = verify_id_token_hint(params["id_token_hint"], issuer=self.provider.issuer,
                                            keys=KeySet.import_key_set(self.provider.tokens.jwks()))
            except BadHint as e:
                return RedirectError(redirect_uri, "invalid_request", str(e), st)
        if is_staff_portal(client):  # issue 13 §1: a staff portal signs in staff, never a citizen
            return self._to_staff_login(flow, params, client, grant, redirect_uri, pushed)

        requested = scope_to_list(grant.request.scope) or []
        rules = {"first_party": client.first_party, "may_receive_id_number": client.may_receive_id_number}
        consent = None
        if user is None:
            citizen = None
        elif citizen is None or citizen.id != user.citizen_id or consent_missing(requested, **rules, consented=None):
            citizen, consent = self.consents.citizen_and_consent(user.citizen_id, client.client_id)
        # else: the account login has just read, and no consent row could change the answer
        if user is None or citizen is None or citizen.disabled:
            user = None
        else:
            user.public_id = citizen.public_id
            user.citizen = citizen
        consent_given = granted is not None
        consented = granted if consent_given else (consent.current if consent is not None else None)
        # acr_values, the client's default_acr_values and require_acr (idp/oauth/acr.py); the
        # passkey table is read only when the session is below the level wanted.
        needs = requirement(params.get("acr_values"), getattr(client, "attributes", None))
        has_passkey = bool(user is not None and level(session.acr) < max(needs.level, level(needs.floor))
                           and self.has_passkey(user.citizen_id))
        decision = next_step(Situation.of(
            params, now=now, max_age=max_age,
            session_auth_time=session.auth_time if user else None,
            session_acr=session.acr if user else None,
            citizen_has_totp=bool(citizen is not None and citizen.has_totp),
            citizen_has_passkey=has_passkey, acr_wanted=needs.acr, acr_floor=needs.floor,
            consent_missing=consent_missing(requested, **rules, consented=consented),
            fresh_login=fresh, consent_given=consent_given,
            hint_names_another=hint is not None and user is not None and not self._names(hint, citizen),
        ))
        if decision.step is Step.ERROR:
            return RedirectError(redirect_uri, decision.error or "interaction_required", None, st)
        if decision.step is not Step.ISSUE:
            return self._wait(flow, decision.step, params, client=client, requested=requested,
                              redirect_uri=redirect_uri, pushed=pushed, browser=browser, inline_login=inline_login)

        assert user is not None and session is not None
        # Authlib re-validates the request when it issues the code and recomputes
        # the scope from the parameters, so the cut is made in the parameters.
        oreq.payload.data["scope"] = " ".join(final_scopes(requested, **rules, consented=consented))
        grant.request.user = user
        # The code's save also adds the client to the session and deletes the
        # finished flow (one round trip).
        deleted: list[bool] = []
        fid = flow.id if flow is not None else None
        if flow is not None and fid is not None:
            flows, done = self.flows, fid

            def finish(pipe: Any) -> None:
                flows.delete(done, pipe=pipe)
                deleted.append(True)

            user.on_code_issue = finish
            flow.finish()
        response = self.port.create_authorization_response(oreq, grant_user=user, grant=grant)
        if fid and not deleted:  # no code was issued (an error answer): the flow ends all the same
            self.flows.delete(fid)
        return IssueCode(response)

    def _names(self, hint: HintClaims, citizen: Any) -> bool:
        """The hint's ``sub`` is the citizen's, as the client it was issued to knows them (pairwise)."""
        client = self.port.query_client(hint.client_id)
        if client is None or hint.sub is None:
            return False
        return self.provider.subject(client, citizen.public_id) == hint.sub

    def _to_staff_login(self, flow: Flow | None, params: dict[str, str], client: Any, grant: Any,
                        redirect_uri: str, pushed: bool) -> ReturnTo:
        """The request waits for the staff sign-in page (:mod:`idp.staff.signin`); no citizen session is read."""
        if flow is None:
            flow = Flow.authorization(params, client_id=client.client_id, client_name=client.name,
                                      scopes=scope_to_list(grant.request.scope) or [], redirect_uri=redirect_uri,
                                      pushed=pushed)
        if flow.state is not FlowState.LOGIN_PENDING:
            flow.wait_for(Step.LOGIN)
        return ReturnTo(f"{STAFF_LOGIN_PATH}?flow={self.flows.keep(flow)}")

    def _wait(self, flow: Flow | None, step: Step, params: dict[str, str], *, client: Any, requested: list[str],
              redirect_uri: str, pushed: bool, browser: Browser, inline_login: bool) -> ShowStep:
        if flow is None:
            flow = Flow.authorization(params, client_id=client.client_id, client_name=client.name,
                                      scopes=requested, redirect_uri=redirect_uri, pushed=pushed)
        flow.wait_for(step)
        new_cookie = None
        if flow.browser is None:
            flow.bind_to_browser(browser.hash)
            new_cookie = browser.new_cookie
        self.flows.keep(flow)
        return ShowStep(step, flow, new_cookie, inline=inline_login and step is Step.LOGIN)
