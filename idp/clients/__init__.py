"""Relying-party registration (issue 3 §2): what a client may register, and managing it.

Registration is an administrator's act (the ``idp clients`` CLI); everything
a client may later do is decided once, at registration, and stored on the
:class:`~idp.models.Client` row that the protocol core reads.

- :mod:`.uris`: which redirect, logout and sector URIs and hosts a client may name;
- :mod:`.registration`: :class:`ClientSpec` and the checks that turn it into a row;
- :mod:`.service`: :class:`ClientService` (add, get, list, rotate secret, delete; audited).
"""

from __future__ import annotations

from .registration import DEFAULT_SCOPES, DEVICE_CODE_GRANT, ID_TOKEN_ALGS, ClientSpec, build_client
from .service import ClientService, client_to_dict
from .uris import Resolver, resolve_host, validate_host, validate_logout_uri, validate_redirect_uri

__all__ = [
    "ClientService",
    "ClientSpec",
    "Resolver",
    "build_client",
    "validate_redirect_uri",
    "validate_logout_uri",
    "resolve_host",
    "validate_host",
    "client_to_dict",
    "DEFAULT_SCOPES",
    "ID_TOKEN_ALGS",
    "DEVICE_CODE_GRANT",
]
