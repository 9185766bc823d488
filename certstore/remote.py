"""Bounded downloads of remote documents (status lists, other regions' trust lists).

A hostile or broken server must not make certstore hold an unbounded body in
memory, nor hold a worker: every download goes through
:func:`keys.http.bounded_request` (issue 19 §2), which

- reads the raw socket bytes, streamed, and stops one byte past the cap, so
  an oversized answer costs at most ``cap + 1`` bytes before it is refused;
- asks for ``identity`` and never decompresses (a compressed answer is
  refused, not inflated: a small gzip body can expand to gigabytes);
- has one overall deadline for the whole download, so a server trickling a
  byte a second is cut off at the deadline, not after hours of per-read
  time-outs;
- follows no redirect (the URL named is the one trusted to answer; a
  redirect is reported as its status);
- goes to https URLs on public addresses only, the addresses checked after
  resolution and the connection pinned to them; plain http and loopback are
  allowed only when the caller says so (the embedded demo, whose own public
  URL is on loopback: :func:`loopback_allowed`).

:func:`status_list_url` builds the URL of a remote status list from the
trust list's base and a QR code's ``list_id``, which an attacker chooses
(issue 11 §11).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from keys.config import is_loopback_host
from keys.http import FetchError, FetchRefused, FetchTimeout, FetchTooLarge, bounded_request

if TYPE_CHECKING:
    from .settings import CertstoreSettings

__all__ = [
    "RemoteBody",
    "TooLarge",
    "FetchFailed",
    "fetch_capped",
    "loopback_allowed",
    "status_list_url",
    "InvalidListId",
]

logger = logging.getLogger(__name__)

_LIST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FetchFailed(Exception):
    """The server could not be reached, the URL is not allowed, or the transfer broke off or ran out of time.

    The message names the cause, never the URL's query or the body.
    """


class TooLarge(Exception):
    """The body is longer than the cap."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"the answer is larger than {cap} bytes")
        self.cap = cap


class InvalidListId(ValueError):
    """A status-list id or base URL that cannot name a list of the registered host."""


@dataclass(frozen=True)
class RemoteBody:
    status: int
    body: bytes


def loopback_allowed(settings: CertstoreSettings) -> bool:
    """Whether downloads may go to loopback (and plain http there).

    Only when certstore itself runs on loopback (the embedded demo) or the
    explicit knob ``extra["allow_loopback_fetch"]`` says so (tests playing
    several regions on one machine); a deployment on a real host fetches
    https from public addresses only.
    """
    if settings.extra.get("allow_loopback_fetch") is True:
        return True
    return is_loopback_host(urlsplit(settings.public_url).hostname or "")


def fetch_capped(
    url: str,
    cap: int,
    *,
    timeout: tuple[float, float] = (5.0, 15.0),
    headers: Mapping[str, str] | None = None,
    deadline: float | None = None,
    allow_loopback: bool = False,
) -> RemoteBody:
    """GET ``url``: at most ``cap`` raw bytes of body, within one deadline, no redirects followed.

    ``timeout`` is (connect, overall) seconds; ``deadline`` overrides the
    overall part. Raises :class:`TooLarge` past the cap (by
    ``Content-Length`` or by what arrived) and :class:`FetchFailed` on a
    refused URL, a transport error or the deadline. A non-2xx status is
    returned with an empty body (the caller names it).
    """
    connect, overall = timeout
    try:
        got = bounded_request(
            "GET",
            url,
            headers=dict(headers or {}),
            max_bytes=cap,
            deadline=overall if deadline is None else deadline,
            connect_timeout=connect,
            allow_loopback=allow_loopback,
        )
    except FetchTooLarge:
        raise TooLarge(cap) from None
    except FetchRefused as e:
        raise FetchFailed(f"URL not allowed: {e}") from None
    except FetchTimeout:
        raise FetchFailed("timed out") from None
    except FetchError as e:
        raise FetchFailed(str(e)) from None
    if not 200 <= got.status < 300:
        return RemoteBody(got.status, b"")
    return RemoteBody(got.status, got.body)


def status_list_url(base: str, list_id: str) -> str:
    """The URL of status list ``list_id`` under a region's ``base`` (from its signed trust list).

    ``list_id`` comes from a QR code anyone can print: only
    ``[A-Za-z0-9_-]{1,64}`` is accepted, it is quoted as one path segment,
    and the result must stay on the base's scheme, host and port and under
    its path, so a crafted id can neither reach another host nor climb out
    of the status-list directory. Raises :class:`InvalidListId`.
    """
    if not isinstance(list_id, str) or not _LIST_ID.match(list_id):
        raise InvalidListId("the status list id is not 1-64 characters of A-Z, a-z, 0-9, '_' and '-'")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
        raise InvalidListId("the registered status-list base is not a plain http(s) URL")
    prefix = base if base.endswith("/") else base + "/"
    url = prefix + quote(list_id, safe="")
    got = urlsplit(url)
    if (got.scheme, got.netloc) != (parts.scheme, parts.netloc) or not got.path.startswith(parts.path):
        raise InvalidListId("the status list URL leaves the registered host")
    return url
