"""Which URLs the idp may call out to (issue 19 §7): one pure rule for registration and delivery.

``https`` only, to a public host; a literal loopback, private, link-local,
shared, multicast, unspecified or reserved address is refused, and so is a
name for loopback (``localhost``), unless ``allow_loopback`` (the embedded
demo's explicit setting) lets loopback through, plain ``http`` included.
This looks at the URL only; the addresses a name resolves to are checked
again when the request is made (:func:`keys.http.bounded_request`), which
also pins the connection to the checked address (DNS rebinding).
"""

from __future__ import annotations

import ipaddress

from keys.http import FetchRefused, check_address, check_url

__all__ = ["OutboundUrlRefused", "check_outbound_url"]


class OutboundUrlRefused(ValueError):
    """The URL is not one the idp may send requests to; the message says why (no URL echoed)."""


def check_outbound_url(url: str, *, allow_loopback: bool) -> None:
    """Raise :class:`OutboundUrlRefused` unless the idp may POST or GET ``url``."""
    if not isinstance(url, str) or len(url) > 2000:
        raise OutboundUrlRefused("the URL is missing or too long")
    try:
        target = check_url(url, allow_loopback=allow_loopback)
        host = target.host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            lowered = host.lower()
            if (lowered == "localhost" or lowered.endswith(".localhost")) and not allow_loopback:
                raise FetchRefused("the host is a loopback name") from None
            return
        check_address(host, allow_loopback=allow_loopback)
    except FetchRefused as e:
        raise OutboundUrlRefused(str(e)) from None
