"""The sign-in state machine and the scope/consent rules, without HTTP."""

from __future__ import annotations

import json

import pytest

from idp.oauth.claims import CitizenClaims, releasable_scopes, user_claims
from idp.oauth.discovery import ACR_2FA, ACR_PASSWORD
from idp.oauth.flow import (
    FLOW_VERSION,
    Flow,
    FlowState,
    FlowStateError,
    Situation,
    Step,
    consent_missing,
    final_scopes,
    next_step,
)
from idp.oauth.subject import pairwise_sub, sector_of, subject_for
from tests.idp.oidc_helpers import *  # noqa: F403

NOW = 1_800_000_000


def _step(**kw):
    base = dict(prompt=None, max_age=None, acr_values=None, session_auth_time=NOW - 100,
                session_acr=ACR_PASSWORD, citizen_has_totp=False, consent_missing=False,
                fresh_login=False, consent_given=False, now=NOW)
    base.update(kw)
    return next_step(Situation(**base))


def test_no_session_means_login_or_login_required():
    assert _step(session_auth_time=None).step is Step.LOGIN
    d = _step(session_auth_time=None, prompt="none")
    assert d.step is Step.ERROR and d.error == "login_required"


def test_session_and_consent_issue():
    assert _step().step is Step.ISSUE


def test_prompt_login_until_fresh():
    assert _step(prompt="login").step is Step.LOGIN
    assert _step(prompt="login", fresh_login=True).step is Step.ISSUE


@pytest.mark.parametrize(("max_age", "expected"), [(1000, Step.ISSUE), (100, Step.ISSUE), (99, Step.LOGIN), (0, Step.LOGIN)])
def test_max_age(max_age, expected):
    assert _step(max_age=max_age).step is expected


def test_max_age_with_prompt_none_is_login_required():
    assert _step(max_age=10, prompt="none").error == "login_required"


def test_an_id_token_hint_for_someone_else_is_no_silent_answer():
    # OIDC Core §3.1.2.1: login_required under prompt=none, else the login page; a fresh login settles it.
    assert _step(hint_names_another=True).step is Step.LOGIN
    d = _step(hint_names_another=True, prompt="none")
    assert d.step is Step.ERROR and d.error == "login_required"
    assert _step(hint_names_another=True, fresh_login=True).step is Step.ISSUE


def test_totp_account_needs_second_factor_until_2fa():
    assert _step(citizen_has_totp=True).step is Step.SECOND_FACTOR
    assert _step(citizen_has_totp=True, session_acr=ACR_2FA).step is Step.ISSUE
    assert _step(citizen_has_totp=True, prompt="none").error == "interaction_required"
    # step-up asked for
    assert _step(citizen_has_totp=True, acr_values=ACR_2FA).step is Step.SECOND_FACTOR


def test_consent():
    assert _step(consent_missing=True).step is Step.CONSENT
    assert _step(consent_missing=True, prompt="none").error == "consent_required"
    assert _step(prompt="consent").step is Step.CONSENT
    assert _step(prompt="consent", consent_given=True).step is Step.ISSUE


def test_consent_missing_rules():
    req = ["openid", "profile", "id_number"]
    assert consent_missing(req, first_party=False, may_receive_id_number=False, consented=None)
    assert not consent_missing(req, first_party=False, may_receive_id_number=False, consented=["profile"])
    assert consent_missing(req, first_party=False, may_receive_id_number=True, consented=["profile"])
    # first party: only the ID number needs consent
    assert not consent_missing(["openid", "profile"], first_party=True, may_receive_id_number=True, consented=None)
    assert consent_missing(req, first_party=True, may_receive_id_number=True, consented=None)
    assert not consent_missing(req, first_party=True, may_receive_id_number=False, consented=None)


def test_final_scopes_never_include_id_number_without_both_conditions():
    req = ["openid", "profile", "id_number"]
    assert final_scopes(req, first_party=True, may_receive_id_number=False, consented=["id_number"]) == ["openid", "profile"]
    assert final_scopes(req, first_party=True, may_receive_id_number=True, consented=[]) == ["openid", "profile"]
    assert final_scopes(req, first_party=False, may_receive_id_number=True, consented=["profile", "id_number"]) == req
    assert final_scopes(req, first_party=False, may_receive_id_number=True, consented=["profile"]) == ["openid", "profile"]


def test_user_claims_and_releasable_scopes():
    c = CitizenClaims(public_id="p", name="李四", phone="+86 1", email=None, id_number="110105194912310021")
    assert user_claims(c, ["openid", "profile", "id_number"], may_receive_id_number=False) == {"name": "李四"}
    assert user_claims(c, ["id_number"], may_receive_id_number=True) == {"id_number": "110105194912310021"}
    assert "110105194912310021" not in repr(c)
    assert releasable_scopes(["openid", "id_number"], may_receive_id_number=True, consented=[]) == ["openid"]


def test_pairwise_subjects():
    salt = b"s" * 32
    a = pairwise_sub("a.example", "pid", salt)
    assert a == pairwise_sub("a.example", "pid", salt)
    assert a != pairwise_sub("b.example", "pid", salt)
    assert a != pairwise_sub("a.example", "pid", b"t" * 32)
    assert subject_for(subject_type="public", sector="x", public_id="pid", salt=salt) == "pid"
    assert sector_of(None, ["https://A.example/cb", "https://a.example/x"], "c1") == "a.example"
    assert sector_of(None, ["https://a.example/cb", "https://b.example/x"], "c1") == "client:c1"
    assert sector_of("https://sector.example/list.json", [], "c1") == "sector.example"


# ------------------------------------------------------- the flow's state machine

S = FlowState
_ALL = list(FlowState)
_WAITING = [S.DECIDING, S.LOGIN_PENDING, S.SECOND_FACTOR_PENDING, S.CONSENT_PENDING, S.PASSKEY_PENDING]

TRANSITIONS = {
    # name: (call, {state it is allowed in: state it leads to})
    "wait_for_login": (lambda f: f.wait_for(Step.LOGIN), dict.fromkeys(_WAITING, S.LOGIN_PENDING)),
    "wait_for_second_factor": (lambda f: f.wait_for(Step.SECOND_FACTOR),
                               dict.fromkeys(_WAITING, S.SECOND_FACTOR_PENDING)),
    "wait_for_consent": (lambda f: f.wait_for(Step.CONSENT), dict.fromkeys(_WAITING, S.CONSENT_PENDING)),
    "password_passed": (lambda f: f.password_passed(7), {S.LOGIN_PENDING: S.SECOND_FACTOR_PENDING}),
    "logged_in": (lambda f: f.logged_in("sid-1"), {S.LOGIN_PENDING: S.DECIDING}),
    "second_factor_passed": (lambda f: f.second_factor_passed("sid-1"), {S.SECOND_FACTOR_PENDING: S.DECIDING}),
    "consented": (lambda f: f.consented(["profile"], "sid-1"), {S.CONSENT_PENDING: S.DECIDING}),
    "wait_for_passkey": (lambda f: f.wait_for(Step.PASSKEY), dict.fromkeys(_WAITING, S.PASSKEY_PENDING)),
    "passkey_passed": (lambda f: f.passkey_passed("sid-1"),
                       {S.LOGIN_PENDING: S.DECIDING, S.PASSKEY_PENDING: S.DECIDING}),
    "finish": (lambda f: f.finish(), dict.fromkeys(_WAITING, S.DONE)),
}


def _flow(state: FlowState = S.DECIDING, **kw) -> Flow:
    return Flow(state, params={"client_id": "c1", "state": "xyz"}, client_id="c1", **kw)


@pytest.mark.parametrize("state", _ALL, ids=lambda s: s.value)
@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_every_transition_from_every_state(name, state):
    call, allowed = TRANSITIONS[name]
    flow = _flow(state)
    if state in allowed:
        call(flow)
        assert flow.state is allowed[state]
    else:
        with pytest.raises(FlowStateError) as caught:
            call(flow)
        assert caught.value.state is state
        assert flow.state is state  # a refused transition changes nothing


def test_every_state_is_in_the_table():
    reachable = {target for _call, allowed in TRANSITIONS.values() for target in allowed.values()}
    assert reachable == set(FlowState)


def test_a_flow_cannot_wait_for_issuing():
    with pytest.raises(ValueError):
        _flow().wait_for(Step.ISSUE)


def test_password_then_second_factor_makes_a_fresh_login_in_that_session():
    flow = _flow(S.LOGIN_PENDING)
    flow.password_passed(42)
    assert flow.pending_citizen == 42 and not flow.fresh_login_for("sid-1")
    flow.second_factor_passed("sid-1")
    assert flow.pending_citizen is None
    assert flow.fresh_login_for("sid-1") and not flow.fresh_login_for("sid-2")


def test_a_step_up_second_factor_is_not_a_fresh_login():
    flow = _flow()
    flow.wait_for(Step.SECOND_FACTOR)
    flow.second_factor_passed("sid-1")
    assert not flow.fresh_login_for("sid-1")


def test_waiting_for_a_login_again_forgets_the_half_done_one():
    flow = _flow(S.LOGIN_PENDING)
    flow.password_passed(42)
    flow.wait_for(Step.LOGIN)
    assert flow.pending_citizen is None


def test_the_fresh_login_counts_only_in_the_session_it_started():
    flow = _flow(S.LOGIN_PENDING)
    flow.logged_in("sid-1")
    assert flow.fresh_login_for("sid-1")
    assert not flow.fresh_login_for("sid-2")
    assert not flow.fresh_login_for(None)
    assert not _flow().fresh_login_for("sid-1")


def test_the_consent_counts_only_in_the_session_it_was_given_in():
    flow = _flow(S.CONSENT_PENDING)
    flow.consented(["profile", "phone"], "sid-1")
    assert flow.consent_for("sid-1") == ["profile", "phone"]
    assert flow.consent_for("sid-2") is None
    assert flow.consent_for(None) is None
    assert _flow().consent_for("sid-1") is None


def test_keep_only_drops_what_another_session_did():
    flow = _flow(S.LOGIN_PENDING)
    flow.logged_in("sid-1")
    flow.wait_for(Step.CONSENT)
    flow.consented(["profile"], "sid-1")
    flow.keep_only("sid-1")
    assert flow.fresh_login_for("sid-1") and flow.consent_for("sid-1") == ["profile"]
    flow.keep_only("sid-2")
    assert flow.login_sid is None and flow.consent_sid is None and flow.granted is None


def test_browser_binding():
    flow = _flow()
    assert not flow.is_bound_to("a" * 64)
    flow.bind_to_browser("a" * 64)
    assert flow.is_bound_to("a" * 64)
    assert not flow.is_bound_to("b" * 64)
    assert not flow.is_bound_to("")
    assert not flow.is_bound_to(None)
    flow.bind_to_browser("a" * 64)  # the same browser again is fine
    with pytest.raises(FlowStateError):
        flow.bind_to_browser("b" * 64)  # never moved silently
    with pytest.raises(ValueError):
        _flow().bind_to_browser("")


def test_binding_compares_in_constant_time(monkeypatch):
    import hmac

    import idp.oauth.flow as flow_module

    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(flow_module.hmac, "compare_digest", spy)
    flow = _flow(browser="a" * 64)
    assert flow.is_bound_to("a" * 64)
    assert seen


def test_start_over_unbinds_and_forgets_everything_done():
    flow = _flow(S.LOGIN_PENDING, browser="a" * 64)
    flow.password_passed(42)
    flow.second_factor_passed("sid-1")
    flow.wait_for(Step.CONSENT)
    flow.consented(["profile"], "sid-1")
    flow.start_over()
    assert flow.browser is None and flow.pending_citizen is None
    assert not flow.fresh_login_for("sid-1") and flow.consent_for("sid-1") is None
    flow.bind_to_browser("b" * 64)
    assert flow.is_bound_to("b" * 64)


def test_authorization_flow_keeps_oauth_state_apart_and_the_hint_only_when_pushed():
    params = {"client_id": "c1", "state": "oauth-xyz", "login_hint": "110105194912310021", "ui_locales": "en"}
    front = Flow.authorization(params, client_id="c1", client_name="P", scopes=["openid"],
                               redirect_uri="https://p.example/cb", pushed=False)
    assert front.state is S.DECIDING and front.oauth_state == "oauth-xyz" and front.login_hint is None
    assert front.ui_locales == "en" and front.is_authorization
    pushed = Flow.authorization(params, client_id="c1", client_name="P", scopes=["openid"],
                                redirect_uri="https://p.example/cb", pushed=True)
    assert pushed.login_hint == "110105194912310021"
    assert not Flow.login_only("/device").is_authorization


def test_serialisation_round_trip():
    flow = _flow(S.CONSENT_PENDING, client_name="门户", scopes=["openid", "profile"], redirect_uri="https://p/cb",
                 oauth_state="xyz", ui_locales="zh-CN", pushed=True, login_hint="h", browser="a" * 64,
                 login_sid="sid-1", return_to=None)
    flow.consented(["profile"], "sid-1")
    raw = flow.to_json()
    data = json.loads(raw)
    assert data["v"] == FLOW_VERSION and data["state"] == "deciding" and "id" not in data
    assert data["oauth_state"] == "xyz" and "state" in data
    back = Flow.from_json(raw, flow_id="fid-1")
    assert back == flow and back.id == "fid-1"
    assert Flow.from_json(raw.encode()) == flow


@pytest.mark.parametrize("raw", [
    None, b"", "not json", "[]", "{}",
    # the untyped record of before (no version): read as expired
    '{"params": {"client_id": "c"}, "fresh_login": true, "state": "st"}',
    json.dumps({"v": FLOW_VERSION + 1, "state": "deciding"}),
    json.dumps({"v": FLOW_VERSION, "state": "no-such-state"}),
    json.dumps({"v": FLOW_VERSION, "state": "deciding", "surprise": 1}),
    json.dumps({"v": FLOW_VERSION, "state": "deciding", "params": ["x"]}),
])
def test_unknown_or_old_records_read_as_expired(raw):
    assert Flow.from_json(raw) is None


def test_flowstore_round_trip_and_ttl(idp_services):
    from idp.oauth.flowstore import FlowStore

    store = FlowStore(idp_services.redis, idp_services.keyspace.base + "t:", ttl_seconds=60)
    flow = Flow.login_only("/device?user_code=ABCD")
    fid = store.create(flow)
    assert flow.id == fid
    got = store.get(fid)
    assert got == flow and got.id == fid
    assert 0 < idp_services.redis.ttl(idp_services.keyspace.base + "t:flow:" + fid) <= 60
    got.password_passed(3)
    with idp_services.redis.pipeline() as pipe:
        store.save(got, pipe=pipe)
        pipe.execute()
    assert store.get(fid).pending_citizen == 3
    idp_services.redis.set(idp_services.keyspace.base + "t:flow:old", '{"return_to": "/x"}')
    assert store.get("old") is None
    assert store.get(None) is None and store.get("x" * 65) is None
    store.delete(fid)
    assert store.get(fid) is None
