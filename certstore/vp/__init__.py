"""The OpenID4VP 1.0 verifier any counter or portal embeds (issue 15 §2, 亮证).

* :mod:`certstore.vp.dcql` — the DCQL query (one type, only the claims needed)
  and the check that nothing more was disclosed;
* :mod:`certstore.vp.requests` — request objects (JAR by reference, client id
  prefix ``x509_hash``, signed by the embedding agency's key);
* :mod:`certstore.vp.responses` — the ``response_uri``: ``direct_post`` and
  ``direct_post.jwt``, the presentation (:mod:`signing.sdjwt_verify`), status,
  the citizen's read log;
* :mod:`certstore.vp.store` — requests and results in Redis, short-lived.

:class:`Verifier` puts them together for the web layer (``certstore/web/vp.py``).
No Flask here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from .dcql import beyond_request, build_query
from .requests import RESPONSE_MODES, Created, RequestMaker, x509_hash_client_id
from .responses import VIA, ResponseChecker, VpRefused
from .store import RequestStore

__all__ = [
    "Verifier",
    "Created",
    "RequestStore",
    "RequestMaker",
    "ResponseChecker",
    "VpRefused",
    "VIA",
    "RESPONSE_MODES",
    "build_query",
    "beyond_request",
    "x509_hash_client_id",
    "vct_values",
]

_STATUS_SUFFIX = "/status-lists/"


def vct_values(certificates: Any, type_code: str) -> list[str]:
    """The ``vct`` values of ``type_code`` this deployment accepts: its own, and those of every imported
    region one of whose issuers may issue that type (its public URL is where its status lists live)."""
    code = certificates.registry.get_type(type_code).code
    own = f"{certificates.settings.public_url}/vct/{code}"
    out = [own]
    for doc in certificates.trust_store.imported():
        if any(code in i.allowed_types for i in doc.issuers) and doc.status_list_base_url.endswith(_STATUS_SUFFIX):
            vct = doc.status_list_base_url[: -len(_STATUS_SUFFIX)] + f"/vct/{code}"
            if vct not in out:
                out.append(vct)
    return out


class Verifier:
    """Requests and the answers to them, for the agencies of this deployment."""

    def __init__(self, certificates: Any, store: RequestStore, *, time: Callable[[], float] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.certificates = certificates
        self.store = store
        self._vct_cache: dict[str, tuple[float, tuple[str, ...]]] = {}
        kwargs = {"clock": time} if time is not None else {}
        self.requests = RequestMaker.for_keyring(
            store,
            public_url=certificates.settings.public_url,
            keyring=certificates.keyring,
            registry=certificates.registry,
            vct_values=self._vct_values,
            **kwargs,
        )
        self.responses = ResponseChecker(store, certificates, clock=clock)

    _VCT_SECONDS = 30.0
    """A new trust-list import reaches the vct values of new requests within this (one query saved a request)."""

    def _vct_values(self, code: str) -> list[str]:
        import time as _time

        now = _time.monotonic()
        cached = self._vct_cache.get(code)
        if cached is not None and now - cached[0] < self._VCT_SECONDS:
            return list(cached[1])
        values = vct_values(self.certificates, code)
        self._vct_cache[code] = (now, tuple(values))
        return values

    def create(self, **kw: Any) -> Created:
        return self.requests.create(**kw)

    def request_object(self, request_id: str) -> str:
        return self.requests.request_object(request_id)

    def respond(self, request_id: str, form: Any) -> dict[str, Any]:
        return self.responses.respond(request_id, form)

    def result(self, request_id: str, view_key: str) -> dict[str, Any] | None:
        return self.responses.result(request_id, view_key)
