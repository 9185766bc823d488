"""A client's CIBA registration (CIBA Core 1.0 §4), checked once and kept in ``Client.attributes``.

:class:`CibaRegistration` holds what ``idp clients add`` takes
(``--ciba-mode``, ``--ciba-notification-endpoint``, ``--ciba-signing-alg``,
``--ciba-user-code``, ``--acting``); :func:`ciba_attributes` turns it into
the attributes the protocol core reads:

===============================================  ===========================================
``backchannel_token_delivery_mode``              ``poll`` (default) or ``ping``
``backchannel_client_notification_endpoint``     ping only, required: https to a public host
                                                 (loopback http in the embedded demo), checked
                                                 as logout URIs are (``idp.clients.uris``)
``backchannel_authentication_request_signing_alg``  signed requests required, with this algorithm
``backchannel_user_code_parameter``              the request must carry ``user_code``
``acting``                                       ``clerk`` or ``agent``: ``actor_token`` required
===============================================  ===========================================

Only a confidential client with the grant type
``urn:openid:params:grant-type:ciba`` may have any of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from .request import CIBA_GRANT_TYPE, DELIVERY_MODES
from .signed import ALGORITHMS

__all__ = ["CibaRegistration", "ciba_attributes", "ciba_options", "ACTING_KINDS"]

ACTING_KINDS = ("clerk", "agent")


@dataclass(frozen=True)
class CibaRegistration:
    mode: str = "poll"
    """``backchannel_token_delivery_mode``."""
    notification_endpoint: str | None = None
    """``backchannel_client_notification_endpoint`` (ping mode)."""
    signing_alg: str | None = None
    """``backchannel_authentication_request_signing_alg``: requests must be signed with it."""
    user_code: bool = False
    """``backchannel_user_code_parameter``."""
    acting: str | None = None
    """``clerk`` (a service counter) or ``agent`` (a hotline): someone acts for the citizen."""


def ciba_attributes(reg: CibaRegistration | None, *, grant_types: Sequence[str], public: bool,
                    jwks: dict[str, Any] | None, allow_loopback: bool, resolve: Any) -> dict[str, Any]:
    """The attributes for ``reg``; :class:`InvalidInput` naming what is wrong."""
    from ..clients.uris import validate_logout_uri

    if CIBA_GRANT_TYPE not in grant_types:
        if reg is not None:
            raise InvalidInput(f"the CIBA options need the grant type {CIBA_GRANT_TYPE}")
        return {}
    if public:
        raise InvalidInput("a CIBA client is confidential (CIBA Core 1.0 section 4)")
    reg = reg or CibaRegistration()
    if reg.mode not in DELIVERY_MODES:
        raise InvalidInput(f"the CIBA delivery mode is one of {', '.join(DELIVERY_MODES)} (push is not served)")
    out: dict[str, Any] = {"backchannel_token_delivery_mode": reg.mode}
    if reg.mode == "ping":
        if not reg.notification_endpoint:
            raise InvalidInput("ping mode needs --ciba-notification-endpoint")
        out["backchannel_client_notification_endpoint"] = validate_logout_uri(
            reg.notification_endpoint, "CIBA notification endpoint", allow_loopback=allow_loopback, resolve=resolve)
    elif reg.notification_endpoint:
        raise InvalidInput("--ciba-notification-endpoint is for ping mode")
    if reg.signing_alg:
        if reg.signing_alg not in ALGORITHMS:
            raise InvalidInput(f"the CIBA request signing algorithm is one of {', '.join(ALGORITHMS)}")
        if jwks is None:
            raise InvalidInput("signed CIBA requests need the client's public keys (--jwks)")
        out["backchannel_authentication_request_signing_alg"] = reg.signing_alg
    if reg.user_code:
        out["backchannel_user_code_parameter"] = True
    if reg.acting:
        if reg.acting not in ACTING_KINDS:
            raise InvalidInput(f"--acting is one of {', '.join(ACTING_KINDS)}")
        out["acting"] = reg.acting
    return out


def ciba_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The ``idp clients add`` options above, passed to the command as one ``ciba`` argument."""
    import click

    @click.option("--ciba-mode", type=click.Choice(DELIVERY_MODES), help="CIBA token delivery mode (poll)")
    @click.option("--ciba-notification-endpoint", help="CIBA ping mode: where the idp pings the client")
    @click.option("--ciba-signing-alg", type=click.Choice(ALGORITHMS), help="CIBA requests must be signed JWTs")
    @click.option("--ciba-user-code", is_flag=True, help="CIBA requests carry the citizen's user_code")
    @click.option("--acting", type=click.Choice(ACTING_KINDS),
                  help="a counter (clerk) or hotline (agent) acting for citizens: actor_token required")
    @functools.wraps(command)
    def wrapper(*args: Any, ciba_mode: str | None, ciba_notification_endpoint: str | None,
                ciba_signing_alg: str | None, ciba_user_code: bool, acting: str | None, **kwargs: Any) -> Any:
        given = ciba_mode or ciba_notification_endpoint or ciba_signing_alg or ciba_user_code or acting
        reg = CibaRegistration(mode=ciba_mode or "poll", notification_endpoint=ciba_notification_endpoint,
                               signing_alg=ciba_signing_alg, user_code=ciba_user_code,
                               acting=acting) if given else None
        return command(*args, ciba=reg, **kwargs)

    return wrapper
