"""The sign-in orchestration (:class:`idp.signin.SignIn`) without HTTP: plain inputs, outcome values."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from idp.models import Consent
from idp.oauth.discovery import ACR_PASSWORD
from idp.oauth.flow import FlowState, Step
from idp.signin import Browser, ErrorPage, IssueCode, RedirectError, ResumeAt, ReturnTo, ShowStep
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ISSUER, RP, make_rp, pkce_pair

HERE = Browser("a" * 64, new_cookie="cookie-value-of-this-browser")
ELSEWHERE = Browser("b" * 64)


@pytest.fixture
def runtime(app: Any) -> Any:
    with app.app_context():
        yield app.extensions["yiwang"]


def _params(rp: RP, **extra: str) -> dict[str, str]:
    _verifier, challenge = pkce_pair()
    return {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid profile", "state": "st-1", "nonce": "n-1", "code_challenge": challenge,
            "code_challenge_method": "S256", **extra}


def _session(runtime: Any, citizen: Any) -> Any:
    now = runtime.provider.tokens.now()
    session, _cookie = runtime.sessions.create(str(citizen.id), now, ACR_PASSWORD, ["pwd"], "browser", "", "")
    return session


def _now(runtime: Any) -> int:
    return runtime.provider.tokens.now()


def _query(outcome: IssueCode) -> dict[str, list[str]]:
    return parse_qs(urlsplit(outcome.response.headers["Location"]).query)


def test_no_session_shows_the_login_form_and_binds_the_flow(runtime, citizen, rp):
    out = runtime.signin.authorize(_params(rp), session=None, browser=HERE, now=_now(runtime))
    assert isinstance(out, ShowStep) and out.step is Step.LOGIN and out.inline
    assert out.new_browser_cookie == HERE.new_cookie
    stored = runtime.flows.get(out.flow.id)
    assert stored.state is FlowState.LOGIN_PENDING and stored.is_bound_to(HERE.hash)
    assert stored.oauth_state == "st-1" and stored.client_id == rp.client_id


@pytest.mark.parametrize(("signed_in", "error"), [(False, "login_required"), (True, "consent_required")])
def test_prompt_none_errors(runtime, citizen, rp, signed_in, error):
    session = _session(runtime, citizen) if signed_in else None
    out = runtime.signin.authorize(_params(rp, prompt="none"), session=session, browser=HERE, now=_now(runtime))
    assert isinstance(out, RedirectError)
    assert (out.redirect_uri, out.error, out.oauth_state) == (rp.redirect_uri, error, "st-1")


def test_consent_page_then_code(runtime, idp_services, citizen, rp):
    session = _session(runtime, citizen)
    out = runtime.signin.authorize(_params(rp), session=session, browser=HERE, now=_now(runtime))
    assert isinstance(out, ShowStep) and out.step is Step.CONSENT and not out.inline
    flow = runtime.flows.get(out.flow.id)
    assert flow.state is FlowState.CONSENT_PENDING
    resumed = runtime.signin.give_consent(flow, session, ["profile"])
    assert resumed == ResumeAt(flow.id)
    issued = runtime.signin.resume(runtime.flows.get(flow.id), session=session, browser=HERE, now=_now(runtime))
    assert isinstance(issued, IssueCode)
    query = _query(issued)
    assert query["state"] == ["st-1"] and query["iss"] == [ISSUER] and query["code"]
    assert runtime.flows.get(flow.id) is None  # the code's round trip deleted the finished flow
    with idp_services.db.session() as s:
        assert s.scalars(sa.select(Consent.scopes)).one() == ["profile"]
    # Remembered: the next request is answered with a code straight away.
    again = runtime.signin.authorize(_params(rp), session=session, browser=HERE, now=_now(runtime))
    assert isinstance(again, IssueCode)


def test_login_then_consent_then_code(runtime, citizen, rp):
    first = runtime.signin.authorize(_params(rp), session=None, browser=HERE, now=_now(runtime))
    flow = runtime.flows.get(first.flow.id)
    session = _session(runtime, citizen)
    out = runtime.signin.after_login(flow, session, browser=HERE, now=_now(runtime))
    assert isinstance(out, ShowStep) and out.step is Step.CONSENT
    assert out.new_browser_cookie is None  # already bound
    stored = runtime.flows.get(flow.id)
    assert stored.fresh_login_for(session.sid)


def test_denied_consent_is_access_denied_and_ends_the_flow(runtime, citizen, rp):
    session = _session(runtime, citizen)
    out = runtime.signin.authorize(_params(rp), session=session, browser=HERE, now=_now(runtime))
    flow = runtime.flows.get(out.flow.id)
    assert runtime.signin.deny_consent(flow) == RedirectError(rp.redirect_uri, "access_denied",
                                                              "the citizen declined", "st-1")
    assert runtime.flows.get(flow.id) is None
    assert isinstance(runtime.signin.resume(None, session=session, browser=HERE, now=_now(runtime)), ErrorPage)


def test_a_flow_continued_in_another_browser_starts_over(runtime, citizen, rp):
    session = _session(runtime, citizen)
    # prompt=consent: only the consent given in this flow (not the remembered one) lets it go on.
    out = runtime.signin.authorize(_params(rp, prompt="consent"), session=session, browser=HERE, now=_now(runtime))
    flow = runtime.flows.get(out.flow.id)
    runtime.signin.give_consent(flow, session, ["profile"])
    # The same flow id pasted into another browser (even with the same session): the consent does not count.
    elsewhere = runtime.signin.resume(runtime.flows.get(flow.id), session=session, browser=ELSEWHERE,
                                      now=_now(runtime))
    assert isinstance(elsewhere, ShowStep) and elsewhere.step is Step.CONSENT
    moved = runtime.flows.get(flow.id)
    assert moved.is_bound_to(ELSEWHERE.hash) and not moved.is_bound_to(HERE.hash)
    assert moved.consent_for(session.sid) is None
    # And the browser that started it has lost it too: it is bound elsewhere now.
    back = runtime.signin.resume(moved, session=session, browser=HERE, now=_now(runtime))
    assert isinstance(back, ShowStep) and back.step is Step.CONSENT


def test_a_login_in_another_browser_does_not_count(runtime, citizen, rp):
    first = runtime.signin.authorize(_params(rp, prompt="login"), session=None, browser=HERE, now=_now(runtime))
    flow = runtime.flows.get(first.flow.id)
    session = _session(runtime, citizen)
    out = runtime.signin.after_login(flow, session, browser=ELSEWHERE, now=_now(runtime))
    assert isinstance(out, ShowStep) and out.step is Step.LOGIN


def test_a_consent_counts_only_in_its_session(runtime, citizen, rp):
    session = _session(runtime, citizen)
    out = runtime.signin.authorize(_params(rp, prompt="consent"), session=session, browser=HERE, now=_now(runtime))
    flow = runtime.flows.get(out.flow.id)
    runtime.signin.give_consent(flow, session, ["profile"])
    other = _session(runtime, citizen)
    again = runtime.signin.resume(runtime.flows.get(flow.id), session=other, browser=HERE, now=_now(runtime))
    assert isinstance(again, ShowStep) and again.step is Step.CONSENT  # prompt=consent asks again
    assert runtime.flows.get(flow.id).consent_for(session.sid) is None


def test_a_fresh_login_counts_only_in_its_session(runtime, citizen, rp):
    first = runtime.signin.authorize(_params(rp, prompt="login"), session=None, browser=HERE, now=_now(runtime))
    flow = runtime.flows.get(first.flow.id)
    session = _session(runtime, citizen)
    runtime.signin.after_login(flow, session, browser=HERE, now=_now(runtime))
    other = _session(runtime, citizen)
    out = runtime.signin.resume(runtime.flows.get(flow.id), session=other, browser=HERE, now=_now(runtime))
    assert isinstance(out, ShowStep) and out.step is Step.LOGIN  # prompt=login: not satisfied elsewhere


def test_first_party_client_issues_without_consent(runtime, idp_services, citizen):
    portal = make_rp(idp_services, name="政务门户", first_party=True, redirect_uri="https://gov.example.cn/cb")
    out = runtime.signin.authorize(_params(portal), session=_session(runtime, citizen), browser=HERE,
                                   now=_now(runtime))
    assert isinstance(out, IssueCode) and _query(out)["code"]


def test_refusals(runtime, citizen, rp):
    now = _now(runtime)
    unknown = runtime.signin.authorize(_params(rp, client_id="nobody"), session=None, browser=HERE, now=now)
    assert isinstance(unknown, ErrorPage) and unknown.message == "error_unknown_client"
    spoofed = runtime.signin.authorize(_params(rp, redirect_uri="https://evil.example/cb"), session=None,
                                       browser=HERE, now=now)
    assert isinstance(spoofed, ErrorPage) and spoofed.message == "error_redirect_uri"
    assert "evil.example" in (spoofed.detail or "")
    wide = runtime.signin.authorize(_params(rp, scope="openid profile\u00e9"), session=None, browser=HERE, now=now)
    assert isinstance(wide, ErrorPage) and wide.message == "error_request"
    bad_age = runtime.signin.authorize(_params(rp, max_age="-1"), session=None, browser=HERE, now=now)
    assert bad_age == RedirectError(rp.redirect_uri, "invalid_request", "max_age must be a whole number", "st-1")
    mode = runtime.signin.authorize(_params(rp, response_mode="fragment"), session=None, browser=HERE, now=now)
    assert isinstance(mode, RedirectError) and mode.error == "invalid_request"


def test_login_only_flow_returns_to_its_page(runtime, citizen):
    from idp.oauth.flow import Flow

    flow = Flow.login_only("/device?user_code=ABCD-EFGH")
    runtime.flows.create(flow)
    out = runtime.signin.after_login(flow, _session(runtime, citizen), browser=HERE, now=_now(runtime))
    assert out == ReturnTo("/device?user_code=ABCD-EFGH")
    assert runtime.flows.get(flow.id) is None


def test_a_finished_flow_accepts_nothing_more(runtime, citizen, rp):
    session = _session(runtime, citizen)
    out = runtime.signin.authorize(_params(rp), session=session, browser=HERE, now=_now(runtime))
    flow = runtime.flows.get(out.flow.id)
    flow.finish()
    runtime.flows.save(flow)
    assert runtime.signin.resume(flow, session=session, browser=HERE, now=_now(runtime)) == ErrorPage("error_expired")
    assert runtime.signin.give_consent(flow, session, ["profile"]) == ErrorPage("error_expired")
    assert runtime.signin.after_login(flow, session, browser=HERE, now=_now(runtime)) == ErrorPage("error_expired")
