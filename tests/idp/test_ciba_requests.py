"""CIBA request variants: signed requests, user_code, login_hint_token, id_token_hint, acr, registration."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest

from idp.ciba.registration import CibaRegistration
from idp.clients import ClientSpec
from idp.errors import InvalidInput
from tests.idp.ciba_helpers import (
    CIBA,
    ClientKey,
    approval_page,
    claims,
    decide,
    make_ciba_rp,
    pending_ids,
    poll,
    signed_in_phone,
    start,
)
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ID_NUMBER, ISSUER, RP
from tests.idp.test_cli_admin import env, idp  # noqa: F401 - the CLI fixtures


def _auth_only(web: Any, rp: RP, **data: Any) -> Any:
    return web.post("/bc-authorize", data=data, headers=rp.basic())


@pytest.fixture
def key() -> ClientKey:
    return ClientKey()


@pytest.fixture
def signing(idp_services: Any, citizen: Any, key: ClientKey) -> RP:
    """A client that must sign its requests (ES256)."""
    return make_ciba_rp(idp_services, name="签名窗口", jwks=key.jwks(), reg=CibaRegistration(signing_alg="ES256"))


PARAMS = {"scope": "openid profile", "login_hint": ID_NUMBER, "binding_message": "B2"}


def test_a_signed_request_is_accepted_and_an_unsigned_one_refused(web: Any, signing: RP, key: ClientKey) -> None:
    ok = _auth_only(web, signing, request=key.request_object(signing.client_id, PARAMS))
    assert ok.status_code == 200, ok.data
    unsigned = start(web, signing, login_hint=ID_NUMBER)
    assert unsigned.status_code == 400 and unsigned.get_json()["error"] == "invalid_request"


def test_signed_requests_expired_replayed_or_wrong_are_refused(web: Any, signing: RP, key: ClientKey) -> None:
    now = int(time.time())
    expired = key.request_object(signing.client_id, PARAMS, now=now - 400, lifetime=300)
    replayed = key.request_object(signing.client_id, PARAMS, jti="jti-once-only")
    assert _auth_only(web, signing, request=replayed).status_code == 200
    cases = {
        "expired": expired,
        "replayed": replayed,
        "too long-lived": key.request_object(signing.client_id, PARAMS, lifetime=7200),
        "wrong aud": key.request_object(signing.client_id, PARAMS, aud="https://elsewhere.example"),
        "wrong iss": key.request_object(signing.client_id, PARAMS, iss="someone-else"),
        "no jti": key.request_object(signing.client_id, PARAMS, jti=""),
        "another key": ClientKey().request_object(signing.client_id, PARAMS),
        "not yet valid": key.request_object(signing.client_id, PARAMS, nbf=now + 600),
    }
    for name, token in cases.items():
        resp = _auth_only(web, signing, request=token)
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request", name
    outside = _auth_only(web, signing, request=key.request_object(signing.client_id, PARAMS), scope="openid")
    assert outside.status_code == 400 and outside.get_json()["error"] == "invalid_request"


def test_alg_none_and_hs256_are_refused(web: Any, signing: RP, key: ClientKey) -> None:
    from tests.keys.dpop_client import raw_jws

    now = int(time.time())
    body = {"iss": signing.client_id, "aud": ISSUER, "iat": now, "nbf": now, "exp": now + 60, "jti": "x" * 12,
            **PARAMS}
    for alg in ("none", "HS256"):
        resp = _auth_only(web, signing, request=raw_jws({"alg": alg}, body))
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request", alg


def test_signing_is_optional_for_other_clients(web: Any, idp_services: Any, citizen: Any, key: ClientKey) -> None:
    rp = make_ciba_rp(idp_services, jwks=key.jwks())
    assert _auth_only(web, rp, request=key.request_object(rp.client_id, PARAMS)).status_code == 200
    assert start(web, rp, login_hint=ID_NUMBER).status_code == 200


def test_a_fapi_client_must_sign(web: Any, idp_services: Any, citizen: Any, key: ClientKey) -> None:
    spec = ClientSpec(name="FAPI 窗口", redirect_uris=["https://fapi.example.cn/cb"], grant_types=(CIBA,),
                      scopes=("openid", "profile"), auth_method="private_key_jwt", jwks=key.jwks(), profile="fapi2")
    client, _ = idp_services.clients.add(spec)
    now = int(time.time())
    assertion = key.sign({"iss": client.client_id, "sub": client.client_id, "aud": ISSUER, "iat": now,
                          "exp": now + 60, "jti": f"a-{now}-{id(spec)}"})
    auth = {"client_id": client.client_id, "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    resp = web.post("/bc-authorize", data={**auth, "scope": "openid", "login_hint": ID_NUMBER})
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert "sign" in resp.get_json()["error_description"]


def test_user_code_missing_wrong_and_right(web: Any, idp_services: Any, citizen: Any) -> None:
    enrolment = idp_services.accounts.enrol_totp(ID_NUMBER)
    totp = pyotp.TOTP(enrolment.secret)
    rp = make_ciba_rp(idp_services, reg=CibaRegistration(user_code=True))
    missing = start(web, rp, login_hint=ID_NUMBER)
    assert missing.status_code == 400 and missing.get_json()["error"] == "missing_user_code"
    wrong = start(web, rp, login_hint=ID_NUMBER, user_code="000000" if totp.now() != "000000" else "111111")
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_user_code"
    right = start(web, rp, login_hint=ID_NUMBER, user_code=totp.now())
    assert right.status_code == 200, right.data


def test_login_hint_token(web: Any, idp_services: Any, citizen: Any, key: ClientKey) -> None:
    rp = make_ciba_rp(idp_services, jwks=key.jwks())
    now = int(time.time())
    good = key.sign({"iss": rp.client_id, "aud": ISSUER, "exp": now + 120,
                     "sub_id": {"format": "cn_resident_id", "id": ID_NUMBER}})
    assert start(web, rp, login_hint_token=good).status_code == 200
    expired = key.sign({"iss": rp.client_id, "aud": ISSUER, "exp": now - 5,
                        "sub_id": {"format": "cn_resident_id", "id": ID_NUMBER}})
    resp = start(web, rp, login_hint_token=expired)
    assert resp.status_code == 400 and resp.get_json()["error"] == "expired_login_hint_token"
    forged = ClientKey().sign({"iss": rp.client_id, "aud": ISSUER, "exp": now + 120,
                               "sub_id": {"format": "cn_resident_id", "id": ID_NUMBER}})
    assert start(web, rp, login_hint_token=forged).get_json()["error"] == "invalid_request"


def test_id_token_hint_of_the_same_client(web: Any, app: Any, idp_services: Any, citizen: Any) -> None:
    rp = make_ciba_rp(idp_services)
    rid = start(web, rp, login_hint=ID_NUMBER).get_json()["auth_req_id"]
    phone = signed_in_phone(app)
    decide(phone, pending_ids(phone)[0])
    id_token = poll(web, rp, rid).get_json()["id_token"]
    again = start(web, rp, id_token_hint=id_token)
    assert again.status_code == 200, again.data
    other = make_ciba_rp(idp_services, name="别的窗口")
    resp = start(web, other, id_token_hint=id_token)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert claims(id_token)["sub"]


def test_a_higher_acr_asks_for_a_fresh_sign_in(web: Any, app: Any, idp_services: Any, citizen: Any) -> None:
    rp = make_ciba_rp(idp_services)
    start(web, rp, login_hint=ID_NUMBER, acr_values="urn:yiwang:acr:2fa")
    phone = signed_in_phone(app)  # password only: acr pwd
    [display_id] = pending_ids(phone)
    page = approval_page(phone, display_id).get_data(as_text=True)
    assert 'id="ciba-needs-sign-in"' in page and 'id="approve"' not in page
    html = page
    from tests.idp.oidc_helpers import csrf_of

    refused = phone.post(f"/ciba/{display_id}", data={"csrf_token": csrf_of(html), "decision": "approve"})
    assert refused.status_code == 403 and pending_ids(phone) == [display_id]
    again = phone.get(f"/ciba/{display_id}/sign-in")
    assert again.status_code == 303 and "/login" in again.headers["Location"]


def test_unknown_acr_values_are_refused(web: Any, idp_services: Any, citizen: Any) -> None:
    rp = make_ciba_rp(idp_services)
    resp = start(web, rp, login_hint=ID_NUMBER, acr_values="urn:other:acr")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_registration_rules(idp_services: Any) -> None:
    def add(**kw: Any) -> Any:
        spec = ClientSpec(name="窗口", redirect_uris=["https://c.example.cn/cb"], scopes=("openid",), **kw)
        return idp_services.clients.add(spec)[0]

    with pytest.raises(InvalidInput, match="confidential"):
        add(grant_types=(CIBA,), public=True)
    with pytest.raises(InvalidInput, match="need the grant type"):
        add(grant_types=("authorization_code",), ciba=CibaRegistration(mode="ping"))
    with pytest.raises(InvalidInput, match="ping mode needs"):
        add(grant_types=(CIBA,), ciba=CibaRegistration(mode="ping"))
    with pytest.raises(InvalidInput, match="CIBA notification endpoint"):
        add(grant_types=(CIBA,), ciba=CibaRegistration(mode="ping", notification_endpoint="http://10.0.0.5/ping"))
    with pytest.raises(InvalidInput, match="push is not served"):
        add(grant_types=(CIBA,), ciba=CibaRegistration(mode="push"))
    with pytest.raises(InvalidInput, match="--jwks"):
        add(grant_types=(CIBA,), ciba=CibaRegistration(signing_alg="ES256"))
    client = add(grant_types=(CIBA,), ciba=CibaRegistration(mode="ping", acting="agent",
                                                            notification_endpoint="https://c.example.cn/ping"))
    assert client.attributes["backchannel_token_delivery_mode"] == "ping"  # noqa: S105 - a mode
    assert client.attributes["backchannel_client_notification_endpoint"] == "https://c.example.cn/ping"
    assert client.attributes["acting"] == "agent"
    assert add(grant_types=(CIBA,)).attributes["backchannel_token_delivery_mode"] == "poll"  # noqa: S105


def test_cli_registers_a_ciba_client(idp: Any) -> None:  # noqa: F811 - the imported fixture
    import json

    assert idp("db", "upgrade").code == 0
    result = idp("clients", "add", "--name", "热线", "--grant-type", CIBA, "--scope", "openid", "--ciba-mode", "ping",
                 "--ciba-notification-endpoint", "https://hotline.example.cn/ciba", "--acting", "agent", "--json")
    assert result.code == 0, result.err
    attributes = json.loads(result.out)["attributes"]
    assert attributes["acting"] == "agent"
    assert attributes["backchannel_token_delivery_mode"] == "ping"  # noqa: S105 - a mode
    assert attributes["backchannel_client_notification_endpoint"] == "https://hotline.example.cn/ciba"
    bad = idp("clients", "add", "--name", "热线", "--grant-type", CIBA, "--ciba-mode", "ping")
    assert bad.code != 0 and "ping mode needs" in bad.err


def test_the_fresh_sign_in_steps_up_and_comes_back(web: Any, app: Any, idp_services: Any, citizen: Any) -> None:
    """A session at pwd; the request wants 2fa: sign in again (password, then the code), back to the page, approve."""
    from tests.idp.oidc_helpers import csrf_of, login

    rp = make_ciba_rp(idp_services)
    phone = signed_in_phone(app)  # signed in before the authenticator was set up: acr pwd
    totp = pyotp.TOTP(idp_services.accounts.enrol_totp(ID_NUMBER).secret)
    rid = start(web, rp, login_hint=ID_NUMBER, acr_values="urn:yiwang:acr:2fa").get_json()["auth_req_id"]
    [display_id] = pending_ids(phone)
    resp = phone.get(f"/ciba/{display_id}/sign-in")
    resp = login(phone, resp.headers["Location"])
    assert resp.status_code == 303 and "/login/second-factor" in resp.headers["Location"]
    page = phone.get(resp.headers["Location"]).get_data(as_text=True)
    resp = phone.post(resp.headers["Location"], data={"csrf_token": csrf_of(page), "code": totp.now()})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/ciba/{display_id}")
    done = decide(phone, display_id)
    assert 'data-outcome="approved"' in done.get_data(as_text=True)
    tokens = poll(web, rp, rid).get_json()
    assert claims(tokens["id_token"])["acr"] == "urn:yiwang:acr:2fa"


def test_a_passkey_request_sends_a_citizen_with_a_passkey_to_the_step_up_page(
        web: Any, app: Any, idp_services: Any, citizen: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import idp.passkeys.store

    rp = make_ciba_rp(idp_services)
    start(web, rp, login_hint=ID_NUMBER, acr_values="urn:yiwang:acr:passkey")
    phone = signed_in_phone(app)
    [display_id] = pending_ids(phone)
    assert 'id="ciba-needs-sign-in"' in approval_page(phone, display_id).get_data(as_text=True)
    no_passkey = phone.get(f"/ciba/{display_id}/sign-in")
    assert no_passkey.status_code == 303 and "/login?" in no_passkey.headers["Location"]
    monkeypatch.setattr(idp.passkeys.store, "has_usable_passkey", lambda db, citizen_id: True)
    with_passkey = phone.get(f"/ciba/{display_id}/sign-in")
    assert with_passkey.status_code == 303 and "/login/passkey?flow=" in with_passkey.headers["Location"]
    assert phone.get(with_passkey.headers["Location"]).status_code == 200  # the step-up page takes the flow
