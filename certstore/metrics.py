"""certstore's Prometheus metrics, with no web framework.

* ``yiwang_certstore_certificates_issued_total{type,result}`` — each issuance
  through :class:`certstore.service.CertificateService` (``issued``, or
  ``replayed`` for a repeated ``Idempotency-Key``); ``type`` is the certificate
  type code (a small, registered set).
* ``yiwang_certstore_verifications_total{kind,result}`` — ``qr`` / ``pdf``,
  ``valid`` / ``invalid``.
* ``yiwang_certstore_status_list_fetches_total{result}`` — ``GET
  /status-lists/<id>`` answers (``ok``, ``not_modified``, ``not_found``, ``error``).
* ``yiwang_certstore_request_duration_seconds{endpoint}`` — by Flask endpoint
  name, never the raw path (paths carry certificate identifiers).

No label carries an ID number, a token, a secret or a certificate identifier.
The exposition and who may read it: :mod:`keys.metrics`; the endpoint:
:mod:`certstore.web.metrics`.
"""

from __future__ import annotations

import re

from prometheus_client import Counter, Histogram

__all__ = ["ISSUED", "VERIFIED", "STATUS_LIST_FETCHES", "LATENCY", "issued", "verified", "status_list_fetched",
           "observe_request"]

ISSUED = Counter("yiwang_certstore_certificates_issued", "Certificates issued, by type", ["type", "result"])
VERIFIED = Counter("yiwang_certstore_verifications", "Verifications, by what was verified and the verdict",
                   ["kind", "result"])
STATUS_LIST_FETCHES = Counter("yiwang_certstore_status_list_fetches", "Status list fetches, by answer", ["result"])
LATENCY = Histogram("yiwang_certstore_request_duration_seconds", "Time to answer a request, by route", ["endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

_TYPE_CODE = re.compile(r"[A-Z0-9]{2,8}")


def issued(type_code: str, *, replayed: bool) -> None:
    label = type_code if _TYPE_CODE.fullmatch(type_code or "") else "other"
    ISSUED.labels(label, "replayed" if replayed else "issued").inc()


def verified(kind: str, *, valid: bool) -> None:
    VERIFIED.labels(kind if kind in ("qr", "pdf") else "other", "valid" if valid else "invalid").inc()


def status_list_fetched(status: int) -> None:
    result = {200: "ok", 304: "not_modified", 404: "not_found"}.get(status, "error")
    STATUS_LIST_FETCHES.labels(result).inc()


def observe_request(endpoint: str | None, seconds: float) -> None:
    LATENCY.labels(endpoint or "unmatched").observe(seconds)
