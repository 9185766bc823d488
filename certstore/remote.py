"""Bounded downloads of remote documents (status lists, other regions' trust lists).

A hostile or broken server must not make certstore hold an unbounded body in
memory: the body is streamed and reading stops one byte past the cap, so an
oversized answer costs at most ``cap + 1`` bytes (plus one chunk) before it is
refused. Redirects are not followed (the URL named is the one trusted to
answer; a redirect is reported as its status), and both the connection and
each read have a timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RemoteBody", "TooLarge", "FetchFailed", "fetch_capped"]

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class FetchFailed(Exception):
    """The server could not be reached or the transfer broke off (the message names the exception type only)."""


class TooLarge(Exception):
    """The body is longer than the cap."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"the answer is larger than {cap} bytes")
        self.cap = cap


@dataclass(frozen=True)
class RemoteBody:
    status: int
    body: bytes


def fetch_capped(
    url: str,
    cap: int,
    *,
    timeout: tuple[float, float] = (5.0, 15.0),
    headers: Mapping[str, str] | None = None,
) -> RemoteBody:
    """GET ``url``: at most ``cap`` bytes of body, no redirects followed.

    Raises :class:`TooLarge` past the cap (by ``Content-Length`` or by what
    arrived) and :class:`FetchFailed` on any transport error. A non-2xx status
    is returned with an empty body (the caller names it).
    """
    import requests

    try:
        with requests.get(url, timeout=timeout, headers=dict(headers or {}), stream=True, allow_redirects=False) as resp:
            if not 200 <= resp.status_code < 300:
                return RemoteBody(resp.status_code, b"")
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > cap:
                raise TooLarge(cap)
            body = bytearray()
            for chunk in resp.iter_content(_CHUNK):
                body += chunk
                if len(body) > cap:
                    raise TooLarge(cap)
            return RemoteBody(resp.status_code, bytes(body))
    except requests.RequestException as e:
        raise FetchFailed(type(e).__name__) from None
