"""The idp's settings, read once from the environment at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from keys.config import (
    COMMON_VARIABLES,
    CommonSettings,
    Variable,
    parse_int,
    read_environment,
)

__all__ = ["IdpSettings", "IDP_VARIABLES"]

IDP_VARIABLES = (
    *COMMON_VARIABLES,
    Variable("IDP_DATABASE_URL", str, "overrides YIWANG_DATABASE_URL for the idp"),
    Variable("IDP_SESSION_IDLE_SECONDS", parse_int, "SSO session idle timeout"),
    Variable("IDP_SESSION_MAX_SECONDS", parse_int, "SSO session absolute lifetime"),
    Variable("IDP_ACCESS_TOKEN_SECONDS", parse_int, "access token lifetime"),
)


@dataclass(frozen=True)
class IdpSettings:
    """Everything the identity provider needs to start."""

    common: CommonSettings
    session_idle_seconds: int = 30 * 60
    """An SSO session unused this long ends (and fires back-channel logout)."""
    session_max_seconds: int = 12 * 3600
    """No SSO session outlives this, however active."""
    access_token_seconds: int = 600
    id_token_seconds: int = 600
    refresh_token_seconds: int = 30 * 24 * 3600
    code_seconds: int = 60
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Test- or deployment-specific knobs that have no variable yet."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IdpSettings:
        values = read_environment(environ, IDP_VARIABLES, own_namespace="IDP_")
        if "IDP_DATABASE_URL" in values:
            values["DATABASE_URL"] = values["IDP_DATABASE_URL"]
        common = CommonSettings.from_values(values, default_issuer="http://127.0.0.1:5000")
        kwargs: dict[str, Any] = {}
        for name, attr in (
            ("IDP_SESSION_IDLE_SECONDS", "session_idle_seconds"),
            ("IDP_SESSION_MAX_SECONDS", "session_max_seconds"),
            ("IDP_ACCESS_TOKEN_SECONDS", "access_token_seconds"),
        ):
            if name in values:
                kwargs[attr] = values[name]
        return cls(common=common, **kwargs)

    @property
    def home(self) -> Path:
        return self.common.home

    @property
    def database_url(self) -> str:
        return self.common.database_url or f"sqlite:///{self.common.home / 'idp.db'}"

    @property
    def issuer(self) -> str:
        return self.common.issuer

    def with_(self, **changes: Any) -> IdpSettings:
        return replace(self, **changes)
