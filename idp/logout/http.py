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
  with backoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import requests

__all__ = ["Outcome", "post_logout_token"]

logger = logging.getLogger(__name__)

_USER_AGENT = "Yiwang-idp back-channel logout"


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
    session: requests.Session | None = None,
) -> Outcome:
    """POST ``logout_token`` to ``uri`` once and classify the answer."""
    http = session or requests
    try:
        response = http.post(
            uri,
            data={"logout_token": logout_token},
            timeout=(timeout, timeout),
            allow_redirects=False,
            headers={"User-Agent": _USER_AGENT, "Cache-Control": "no-store"},
        )
    except requests.Timeout:
        return Outcome("retry", f"timed out after {timeout:g} s")
    except requests.ConnectionError as e:
        return Outcome("retry", f"connection failed ({_reason(e)})")
    except requests.RequestException as e:
        # Malformed URL and the like: retrying cannot help.
        return Outcome("failed", f"request not sent ({type(e).__name__})")
    status = response.status_code
    response.close()
    if 200 <= status < 300:
        return Outcome("delivered", f"HTTP {status}")
    if 500 <= status < 600:
        return Outcome("retry", f"HTTP {status}")
    return Outcome("failed", f"HTTP {status}")


def _reason(e: requests.ConnectionError) -> str:
    text = str(e).lower()
    for word in ("refused", "reset", "name or service", "timed out", "unreachable", "aborted"):
        if word in text:
            return {"name or service": "name not resolved"}.get(word, word)
    return type(e).__name__
