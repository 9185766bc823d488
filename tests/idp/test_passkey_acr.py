"""Issue 13 §2: the acr levels and the step-up rules, without HTTP (idp/oauth/acr.py, flow.next_step)."""

from __future__ import annotations

import pytest

from idp.errors import InvalidInput
from idp.oauth.acr import UNMET, acr_attributes, level, requirement
from idp.oauth.discovery import ACR_2FA, ACR_PASSKEY, ACR_PASSWORD, ACR_VALUES
from idp.oauth.flow import Situation, Step, next_step
from idp.passkeys.amr import amr_for, authenticator_kind

NOW = 1_800_000_000


def _step(**kw):
    base = dict(now=NOW, session_auth_time=NOW - 60, session_acr=ACR_PASSWORD)
    return next_step(Situation(**{**base, **kw}))


def test_levels_are_ordered_as_discovery_lists_them():
    assert [level(a) for a in ACR_VALUES] == [1, 2, 3]
    assert level(None) == level("urn:other") == 0


def test_the_lowest_listed_value_is_needed_and_the_clients_floor_raises_it():
    assert requirement(f"{ACR_2FA} {ACR_PASSKEY}", {}).acr == ACR_2FA
    assert requirement("urn:unknown", {}).acr is None
    assert requirement(None, {"default_acr_values": [ACR_PASSKEY]}).acr == ACR_PASSKEY
    assert requirement(ACR_PASSWORD, {"default_acr_values": [ACR_PASSKEY]}).acr == ACR_PASSWORD  # asked wins
    r = requirement(ACR_PASSWORD, {"require_acr": ACR_PASSKEY})
    assert (r.acr, r.floor) == (ACR_PASSKEY, ACR_PASSKEY)
    r = requirement(ACR_PASSKEY, {"require_acr": ACR_2FA})
    assert (r.acr, r.floor) == (ACR_PASSKEY, ACR_2FA)


def test_registration_refuses_unknown_acr_values():
    assert acr_attributes(ACR_PASSKEY, [ACR_2FA]) == {"require_acr": ACR_PASSKEY, "default_acr_values": [ACR_2FA]}
    with pytest.raises(InvalidInput):
        acr_attributes("urn:made-up", ())


def test_step_up_to_a_passkey():
    assert _step(acr_wanted=ACR_PASSKEY, citizen_has_passkey=True).step is Step.PASSKEY
    assert _step(acr_wanted=ACR_PASSKEY, citizen_has_passkey=True, prompt="none").error == "interaction_required"
    # a passkey also satisfies 2fa for an account without TOTP, and goes first for one with it
    assert _step(acr_wanted=ACR_2FA, citizen_has_passkey=True).step is Step.PASSKEY
    assert _step(acr_wanted=ACR_PASSKEY, citizen_has_passkey=True, citizen_has_totp=True).step is Step.PASSKEY
    assert _step(acr_wanted=ACR_2FA, citizen_has_passkey=True, citizen_has_totp=True).step is Step.SECOND_FACTOR
    # reached: nothing more
    assert _step(acr_wanted=ACR_PASSKEY, session_acr=ACR_PASSKEY, citizen_has_totp=True).step is Step.ISSUE


def test_a_passkey_session_is_not_asked_for_totp():
    assert _step(session_acr=ACR_PASSKEY, citizen_has_totp=True).step is Step.ISSUE
    assert _step(session_acr=ACR_PASSWORD, citizen_has_totp=True).step is Step.SECOND_FACTOR


def test_an_unreachable_level():
    # voluntary: the best the account has, and the ID token says which (OIDC Core §2)
    assert _step(acr_wanted=ACR_PASSKEY, citizen_has_totp=True).step is Step.SECOND_FACTOR
    assert _step(acr_wanted=ACR_PASSKEY).step is Step.ISSUE
    # the client's floor: no weaker sign-in, whatever prompt says
    assert _step(acr_wanted=ACR_PASSKEY, acr_floor=ACR_PASSKEY, citizen_has_totp=True).error == UNMET
    assert _step(acr_wanted=ACR_2FA, acr_floor=ACR_2FA).error == UNMET


def test_max_age_still_sends_the_citizen_to_log_in_first():
    assert _step(max_age=10, acr_wanted=ACR_PASSKEY, citizen_has_passkey=True).step is Step.LOGIN
    assert _step(max_age=10, acr_wanted=ACR_PASSKEY, citizen_has_passkey=True,
                 fresh_login=True).step is Step.PASSKEY


def test_amr_and_kind():
    assert amr_for(backup_eligible=False, user_verified=True) == ["hwk", "user", "mfa"]
    assert amr_for(backup_eligible=True, user_verified=True) == ["swk", "user", "mfa"]
    assert authenticator_kind(transports=["usb"], backup_eligible=False, aaguid="x") == "passkey_kind_security_key"
    assert authenticator_kind(transports=["hybrid"], backup_eligible=True, aaguid="x") == "passkey_kind_phone"
    assert authenticator_kind(transports=["internal"], backup_eligible=True, aaguid="x") == "passkey_kind_synced"
    assert authenticator_kind(transports=["internal"], backup_eligible=False, aaguid="x") == "passkey_kind_device"


def test_no_passkeys_on_an_ip_address():
    from idp.passkeys.policy import PasskeyPolicy

    assert PasskeyPolicy("idp.gov.example.cn", "x", ()).usable and PasskeyPolicy("localhost", "x", ()).usable
    assert not PasskeyPolicy("127.0.0.1", "x", ()).usable and not PasskeyPolicy("[::1]", "x", ()).usable


def test_a_client_registers_its_acr_floor_and_defaults():
    from idp.clients.registration import ClientSpec, build_client

    client = build_client(ClientSpec(name="不动产登记", redirect_uris=["https://estate.example.cn/cb"],
                                     require_acr=ACR_PASSKEY, default_acr_values=[ACR_2FA]))
    assert client.attributes["require_acr"] == ACR_PASSKEY
    assert client.attributes["default_acr_values"] == [ACR_2FA]
    plain = build_client(ClientSpec(name="门户", redirect_uris=["https://portal.example.cn/cb"]))
    assert "require_acr" not in plain.attributes and "default_acr_values" not in plain.attributes
    with pytest.raises(InvalidInput):
        build_client(ClientSpec(name="x", redirect_uris=["https://x.example.cn/cb"], require_acr="urn:bogus"))
