"""The idp's old message keys, now a thin layer over the shared gettext catalog (keys.locale).

Pages are written with ``_('English text')`` (see :mod:`keys.locale`); the
Chinese lives in ``keys/locale/zh_CN/LC_MESSAGES/messages.po``. A few idp
modules still name their fixed messages by key (an error page's
``message="error_expired"``): :data:`_MESSAGES` maps those keys to their
English msgid, and :func:`translate` looks the msgid up in the catalog.
:func:`register` still accepts the old ``{"zh-CN": …, "en": …}`` entries;
their Chinese is used only until the catalog has the msgid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from keys.locale import DEFAULT, LANGUAGES, N_, pick_language, translations

__all__ = ["LANGUAGES", "DEFAULT", "pick_language", "translate", "register", "msgid", "known"]

_MESSAGES: dict[str, str] = {
    'site_name': N_('Yiwang unified sign-in'),
    'login_title': N_('Sign in'),
    'login_for': N_('Sign in to continue to %(client)s'),
    'id_number': N_('Resident ID number'),
    'id_number_hint': N_('18 characters; the last may be X'),
    'password': N_('Password'),
    'sign_in': N_('Sign in'),
    'bad_credentials': N_('The ID number or the password is wrong.'),
    'locked': N_('Too many attempts, try again in %(minutes)s minutes.'),
    'attempts_left': N_('%(n)s attempts left before the account is locked for up to %(minutes)s minutes.'),
    'attempts_left_one': N_('1 attempt left before the account is locked for up to %(minutes)s minutes.'),
    'id_length': N_('An ID number has 18 characters; you entered %(n)s.'),
    'id_charset': N_('An ID number is 17 digits followed by a digit or X.'),
    'id_birth_date': N_('Characters 7 to 14 of the ID number must be a real date of birth.'),
    'id_check_character': N_('The check character does not match: please check the number for a typo.'),
    'required': N_('Please fill in this field.'),
    'second_factor_title': N_('Two-step verification'),
    'totp_prompt': N_('Enter the 6-digit code shown in your authenticator app.'),
    'totp_code': N_('Code'),
    'totp_wrong': N_('The code is wrong or has already been used.'),
    'verify': N_('Verify'),
    'consent_title': N_('Allow access'),
    'consent_intro': N_('%(client)s asks for the following:'),
    'scope_openid': N_('An identifier for you (different for each service)'),
    'scope_profile': N_('Your name'),
    'scope_phone': N_('Your phone number'),
    'scope_email': N_('Your e-mail address'),
    'scope_offline_access': N_('Access while you are signed out (long-lived)'),
    'scope_certs:read': N_('Read your certificates in the certificate store (every read is shown in your wallet)'),
    'scope_id_number': N_('Your resident ID number (the full number)'),
    'id_number_warning': N_('Your ID number is sensitive personal information. Tick this only if you want to share it.'),
    'allow': N_('Allow'),
    'deny': N_('Deny'),
    'error_title': N_('Something went wrong'),
    'error_request': N_('This sign-in request is not valid and cannot be sent back to the site that made it.'),
    'error_generic': N_('Something went wrong on our side. Please try again later.'),
    'error_expired': N_('This sign-in request has expired. Go back to the service and start again.'),
    'error_csrf': N_('This page has expired. Reload it and try again.'),
    'account_title': N_('My account'),
    'sessions': N_('Active sessions'),
    'connected_apps': N_('Connected services'),
    'revoke': N_('Revoke'),
    'sign_out': N_('Sign out'),
    'sign_out_all': N_('Sign out everywhere'),
    'this_session': N_('This session'),
    'none_yet': N_('None'),
    'change_password': N_('Change password'),
    'current_password': N_('Current password'),
    'new_password': N_('New password'),
    'new_password_again': N_('New password again'),
    'password_policy': N_('At least %(n)s characters.'),
    'password_change_hint': N_('After the change you are signed out on other devices; this one stays signed in.'),
    'password_mismatch': N_('The two new passwords are not the same.'),
    'password_current_wrong': N_('The current password is wrong.'),
    'password_throttled': N_('Too many attempts, try again later.'),
    'password_changed': N_('Your password was changed; you were signed out on other devices.'),
    'totp_recovery_hint': N_('Lost your phone? Enter one of your recovery codes (like abcde-fghjk); each works once.'),
    'totp_on': N_('Two-step verification is on.'),
    'totp_off': N_('Two-step verification is off.'),
    'totp_setup': N_('Turn on two-step verification'),
    'totp_setup_again': N_('Use a new authenticator app'),
    'totp_setup_title': N_('Set up two-step verification'),
    'totp_setup_scan': N_('Scan the QR code with your authenticator app, then enter the 6-digit code it shows.'),
    'totp_setup_qr_alt': N_('QR code for the authenticator app'),
    'totp_setup_key': N_('Cannot scan? Type this key:'),
    'totp_setup_done': N_('Two-step verification is now on.'),
    'recovery_codes_title': N_('Recovery codes'),
    'recovery_codes_once': N_('Write these down or print them and keep them safe. If you lose your phone, each one replaces a code once. They are shown only this once.'),
    'back_to_account': N_('Back to my account'),
    'error_not_found_title': N_('Page not found'),
    'error_not_found': N_('There is no page at this address. Check the address, or go back to the service you were using and start again.'),
    'channel_browser': N_('Browser'),
    'signed_in_at': N_('signed in %(when)s'),
    'error_unavailable': N_('The service is briefly unavailable. Please reload the page in a few seconds.'),}
"""Key → English msgid."""

_FALLBACK: dict[str, str] = {}
"""Key → Chinese of entries registered the old way, for a msgid the catalog does not have yet."""


def _gettext_style(text: str) -> str:
    return re.sub(r"\{(\w+)\}", r"%(\1)s", text)


def register(messages: Mapping[str, str | dict[str, str]]) -> None:
    """Add a page area's keyed messages to the key map: ``key → N_("English")`` (or, old style,
    ``key → {"zh-CN": …, "en": …}``, whose Chinese serves only until the catalog has the msgid)."""
    for key, entry in messages.items():
        if isinstance(entry, str):
            entry = {"en": entry}
        english = _gettext_style(entry["en"])
        known = _MESSAGES.setdefault(key, english)
        if known != english:
            raise ValueError(f"message {key!r} is defined twice, differently")
        if entry.get("zh-CN"):
            _FALLBACK.setdefault(key, _gettext_style(entry["zh-CN"]))


def known(key: object) -> bool:
    """Whether ``key`` is a registered key or a catalog msgid: pages show only those, never free text
    (an Authlib description, say, would be English on a Chinese page)."""
    return isinstance(key, str) and (key in _MESSAGES or translations("zh-CN").gettext(key) != key)


def msgid(key: str) -> str:
    """The English msgid of an old key (the key itself if it is not one)."""
    return _MESSAGES.get(key, key)


def translate(lang: str, key: str, **values: object) -> str:
    english = _MESSAGES.get(key)
    if english is None:
        text = translations(lang).gettext(key)  # already an English msgid
    else:
        text = translations(lang).gettext(english)
        if lang == "zh-CN" and text == english and key in _FALLBACK:
            text = _FALLBACK[key]
    return text % values if values else text
