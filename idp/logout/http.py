"""One back-channel logout POST and what its answer means (Back-Channel Logout 1.0 §2.5, §2.8).

§2.5: the OP sends ``logout_token`` in an ``application/x-www-form-urlencoded``
POST to the RP's ``backchannel_logout_uri``. §2.8: the RP answers 200 (204 is
common and accepted: any 2xx), or 400 when the token is invalid or the logout
failed. We read the outcome as:

- 2xx → delivered;
- 4xx (and 3xx: redirects are not followed, a back-channel endpoint has no
  business redirecting) → failed for good: the RP rejected this token and
  retrying the same token cannot change its mind;
- 5xx, time-outs, refused or reset connections, DNS failures → transient: retry
  with backoff;
- a URI we may not reach (not https, or resolving to a loopback, private or
  link-local address outside the embedded demo) → failed for good.

The receiver is a stranger to the idp: only its status line matters, so the
exchange goes through :func:`keys.http.bounded_request` with one deadline for
the whole delivery, at most :data:`ANSWER_BYTES` of raw body read and never
decompressed (issue 19 §2: a gzip answer of 3 MB once took a worker to 6 GB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from keys.http import FetchFailed, FetchRefused, FetchTimeout, FetchTooLarge, bounded_request

__all__ = ["Outcome", "post_logout_token", "post_form", "post_once", "ANSWER_BYTES"]

logger = logging.getLogger(__name__)

ANSWER_BYTES = 4096
"""Raw bytes of the receiver's body read at most (§2.8 gives the body no meaning)."""


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt. ``detail`` is safe to store and log (no token, no body)."""

    result: Literal["delivered", "failed", "retry"]
    detail: str


def post_logout_token(
    uri: str,
    logout_token: str,
    *,
    timeout: float,
    allow_loopback: bool = False,
) -> Outcome:
    """POST ``logout_token`` to ``uri`` once, within ``timeout`` seconds in all, and classify the answer.

    ``allow_loopback``: the embedded demo's receivers on 127.0.0.1 (plain
    http allowed there too); never private or link-local addresses.
    """
    return post_form(
        uri,
        {"logout_token": logout_token},
        user_agent="Yiwang-idp back-channel logout",
        timeout=timeout,
        allow_loopback=allow_loopback,
    )


def post_form(
    uri: str,
    fields: dict[str, str],
    *,
    user_agent: str,
    timeout: float,
    allow_loopback: bool = False,
) -> Outcome:
    """POST ``fields`` as a form to a logout receiver once and classify its answer (module docstring).

    Shared by back-channel logout and CAS single logout (:mod:`idp.cas.slo`),
    whose receivers are read the same way.
    """
    return post_once(uri, urlencode(fields).encode(), {
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent": user_agent, "Cache-Control": "no-store",
    }, timeout=timeout, allow_loopback=allow_loopback)


def post_once(uri: str, body: bytes, headers: dict[str, str], *, timeout: float,
              allow_loopback: bool = False) -> Outcome:
    """One bounded POST to a stranger's endpoint, classified as the module docstring says.

    Also CIBA's ping callbacks (:mod:`idp.ciba.ping`), whose answers mean the same.
    """
    try:
        response = bounded_request(
            "POST", uri, body=body, headers=headers, max_bytes=ANSWER_BYTES, on_excess="cut",
            deadline=timeout, connect_timeout=timeout, allow_loopback=allow_loopback,
        )
    except FetchRefused as e:
        return Outcome("failed", f"not sent: {e}")
    except FetchTimeout:
        return Outcome("retry", f"timed out after {timeout:g} s")
    except (FetchFailed, FetchTooLarge) as e:
        return Outcome("retry", f"connection failed ({e})")
    status = response.status
    if 200 <= status < 300:
        return Outcome("delivered", f"HTTP {status}")
    if 500 <= status < 600:
        return Outcome("retry", f"HTTP {status}")
    return Outcome("failed", f"HTTP {status}")
