"""The sign-in state machine and the scope/consent rules, without HTTP."""

from __future__ import annotations

import pytest

from idp.oauth.claims import CitizenClaims, releasable_scopes, user_claims
from idp.oauth.discovery import ACR_2FA, ACR_PASSWORD
from idp.oauth.flow import FlowState, Step, consent_missing, final_scopes, next_step
from idp.oauth.subject import pairwise_sub, sector_of, subject_for

NOW = 1_800_000_000


def _step(**kw):
    base = dict(prompt=None, max_age=None, acr_values=None, session_auth_time=NOW - 100,
                session_acr=ACR_PASSWORD, citizen_has_totp=False, consent_missing=False,
                state=FlowState(), now=NOW)
    base.update(kw)
    return next_step(**base)


def test_no_session_means_login_or_login_required():
    assert _step(session_auth_time=None).step is Step.LOGIN
    d = _step(session_auth_time=None, prompt="none")
    assert d.step is Step.ERROR and d.error == "login_required"


def test_session_and_consent_issue():
    assert _step().step is Step.ISSUE


def test_prompt_login_until_fresh():
    assert _step(prompt="login").step is Step.LOGIN
    assert _step(prompt="login", state=FlowState(fresh_login=True)).step is Step.ISSUE


@pytest.mark.parametrize(("max_age", "expected"), [(1000, Step.ISSUE), (100, Step.ISSUE), (99, Step.LOGIN), (0, Step.LOGIN)])
def test_max_age(max_age, expected):
    assert _step(max_age=max_age).step is expected


def test_max_age_with_prompt_none_is_login_required():
    assert _step(max_age=10, prompt="none").error == "login_required"


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
    assert _step(prompt="consent", state=FlowState(consent_given=True)).step is Step.ISSUE


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
