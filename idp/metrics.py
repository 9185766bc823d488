"""The idp's Prometheus metrics, with no web framework: counters, the latency histogram, the scrape.

Where each series is counted:

* ``yiwang_idp_signins_total{result}`` — :func:`on_audit_event`, from the
  audit log's ``record`` (the events that already mark sign-ins): ``success``,
  ``bad_credentials``, ``locked``, ``second_factor_failed``. A failed sign-in
  and a lock are also logged there (masked ID number: the audit subject is
  already masked), not only written to the audit table.
* ``yiwang_idp_token_requests_total{grant_type,result}`` — :func:`observe_token`,
  from both front doors of ``POST /token`` (the Flask view's after-request
  hook in :mod:`idp.web.metrics`, and :mod:`idp.web.hotpaths`): ``result`` is
  ``issued`` or the OAuth error code.
* ``yiwang_idp_request_duration_seconds{endpoint}`` — the Flask endpoint name
  (``oauth.token``), never the raw path: paths carry identifiers.
* ``yiwang_idp_logout_deliveries{state}`` and
  ``yiwang_idp_logout_oldest_pending_seconds`` — computed at scrape time from
  SQL (:class:`LogoutCollector`), two indexed queries at most every few seconds.

No label carries an ID number, token, secret or certificate identifier: every
label value comes from a fixed set (:data:`GRANT_TYPES`, :data:`ERRORS`) or is
a route name. Under several granian workers ``idp serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
(:func:`keys.metrics.prepare_multiprocess_dir`) and the scrape adds the workers'
files up (:func:`keys.metrics.scrape`); without it, one process's registry.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "SIGNINS", "TOKEN_REQUESTS", "LATENCY", "GRANT_TYPES", "ERRORS", "HOT_ENDPOINTS",
    "on_audit_event", "observe_token", "observe_hot", "observe_request", "LogoutCollector",
]

logger = logging.getLogger(__name__)

SIGNINS = Counter("yiwang_idp_signins", "Sign-in attempts by result", ["result"])
TOKEN_REQUESTS = Counter("yiwang_idp_token_requests", "Token endpoint answers by grant type and result",
                         ["grant_type", "result"])
LATENCY = Histogram("yiwang_idp_request_duration_seconds", "Time to answer a request, by route", ["endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))

GRANT_TYPES = frozenset({
    "authorization_code", "refresh_token", "client_credentials", "password",
    "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:token-exchange", "urn:openid:params:grant-type:ciba",
})
ERRORS = frozenset({
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
    "invalid_scope", "authorization_pending", "slow_down", "access_denied", "expired_token",
    "invalid_dpop_proof", "use_dpop_nonce", "server_error", "temporarily_unavailable",
})

_SIGNIN_RESULT = {
    "login.success": "success",
    "login.failure": "bad_credentials",
    "login.locked": "locked",
    "login.second_factor_failure": "second_factor_failed",
}
_SIGNIN_LOG = logging.getLogger("idp.signin")
HOT_ENDPOINTS = {"/token": "oauth.token", "/introspect": "oauth.introspect", "/userinfo": "oauth.userinfo"}
_HOT_LATENCY = {path: LATENCY.labels(name) for path, name in HOT_ENDPOINTS.items()}
_ISSUED_CC = TOKEN_REQUESTS.labels("client_credentials", "issued")


def on_audit_event(kind: str, *, subject: str | None = None, client_id: str | None = None,
                   ip: str | None = None) -> None:
    """Count a sign-in event and log the failures (``subject`` is the masked ID number)."""
    result = _SIGNIN_RESULT.get(kind)
    if result is None:
        return
    SIGNINS.labels(result).inc()
    if result == "bad_credentials":
        _SIGNIN_LOG.warning("sign-in failed: wrong ID number or password for %s (client %s, from %s)",
                            subject or "-", client_id or "-", ip or "-")
    elif result == "locked":
        _SIGNIN_LOG.warning("sign-in refused: account %s is locked for now (client %s, from %s)",
                            subject or "-", client_id or "-", ip or "-")
    elif result == "second_factor_failed":
        _SIGNIN_LOG.warning("sign-in failed: wrong second factor (from %s)", ip or "-")


def _error_of(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return "other"
    return error if error in ERRORS else "other"


def observe_token(grant_type: str | None, status: int, body: bytes) -> None:
    """Count one answer of the token endpoint."""
    if status == 200:
        if grant_type == "client_credentials":
            _ISSUED_CC.inc()  # the hot path's common case: no label lookup
            return
        result = "issued"
    else:
        result = _error_of(body)
    TOKEN_REQUESTS.labels(grant_type if grant_type in GRANT_TYPES else "other", result).inc()


def observe_hot(path: str, form: Mapping[str, str], status: int, body: bytes, started: float) -> None:
    """What :mod:`idp.web.hotpaths` answered: its latency and, for ``/token``, the grant's result."""
    _HOT_LATENCY[path].observe(time.perf_counter() - started)
    if path == "/token":
        observe_token(form.get("grant_type"), status, body)


def observe_request(endpoint: str | None, seconds: float) -> None:
    LATENCY.labels(endpoint or "unmatched").observe(seconds)


class LogoutCollector(Collector):
    """Logout deliveries still owed, from SQL at scrape time; cached a few seconds, so scrapes stay cheap."""

    CAP = 10_000
    """Counts stop here (``status`` is indexed, but a backlog is a backlog: 10000 means "at least")."""

    def __init__(self, db: Any, *, ttl: float = 5.0) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, int], float | None] | None = None

    def _read(self) -> tuple[dict[str, int], float | None]:
        import sqlalchemy as sa

        from .models import LogoutDelivery

        counts: dict[str, int] = {}
        with self.db.session() as s:
            for state in ("pending", "failed"):
                capped = sa.select(LogoutDelivery.id).where(LogoutDelivery.status == state).limit(self.CAP).subquery()
                counts[state] = int(s.scalar(sa.select(sa.func.count()).select_from(capped)) or 0)
            oldest = s.scalar(sa.select(sa.func.min(LogoutDelivery.created_at))
                              .where(LogoutDelivery.status == "pending"))
        age = None
        if oldest is not None:
            import datetime as dt

            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=dt.UTC)
            age = max(0.0, (dt.datetime.now(dt.UTC) - oldest).total_seconds())
        return counts, age

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.monotonic()
        with self._lock:
            cached = self._cached
            if cached is None or now - cached[0] > self.ttl:
                try:
                    counts, age = self._read()
                except Exception as e:  # a scrape during a database outage: no gauge, no trace
                    logger.debug("logout metrics unavailable: %s", type(e).__name__)
                    return
                cached = self._cached = (now, counts, age)
        _, counts, age = cached
        states = GaugeMetricFamily("yiwang_idp_logout_deliveries", "Back-channel logout deliveries by state "
                                   f"(counted up to {self.CAP})", labels=["state"])
        for state, n in counts.items():
            states.add_metric([state], n)
        yield states
        yield GaugeMetricFamily("yiwang_idp_logout_oldest_pending_seconds",
                                "Age of the oldest pending back-channel logout delivery (0: none pending)",
                                value=age or 0.0)
