"""What an account's fields may hold: name, phone, e-mail, password policy (for creation and CSV import)."""

from __future__ import annotations

import re

from .errors import InvalidInput
from .passwords import MAX_PASSWORD_BYTES

__all__ = ["MIN_PASSWORD_LENGTH", "check_password_policy", "clean_name", "clean_phone", "clean_email"]

MIN_PASSWORD_LENGTH = 8

_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,30}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("the name is missing")
    if len(name) > 200 or _CONTROL.search(name):
        raise InvalidInput("the name is longer than 200 characters or has control characters")
    return name


def clean_phone(phone: str | None) -> str | None:
    phone = (phone or "").strip()
    if not phone:
        return None
    if not _PHONE.match(phone):
        raise InvalidInput("the phone number is not a phone number (digits, optional leading +)")
    return phone


def clean_email(email: str | None) -> str | None:
    email = (email or "").strip()
    if not email:
        return None
    if len(email) > 320 or not _EMAIL.match(email):
        raise InvalidInput("the e-mail address is not valid")
    return email


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"the password must be at most {MAX_PASSWORD_BYTES} bytes")
