"""What both services' ``/metrics`` share: who may scrape, the exposition, the multi-process directory.

The counters themselves live with each service (``idp/metrics.py``,
``certstore/metrics.py``); this module knows no web framework either: the
web layers pass it the caller's address and headers.

Who may scrape (:func:`may_scrape`): with ``YIWANG_METRICS_TOKEN`` set, a
caller presenting it as a Bearer token, from anywhere; without it, a loopback
caller whose request no proxy relayed (no ``Forwarded`` / ``X-Forwarded-For``):
a reverse proxy on the same host would otherwise make every Internet request
look local. The metrics hold no personal data, but they tell an outsider the
load, the error rates and the lockouts.

Request timing (:func:`request_started`, :func:`request_finished`) works on
the WSGI environ, so each web layer's before/after-request hooks are one call
each.
"""

from __future__ import annotations

import hmac
import os
import shutil
import time
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from .config import is_loopback_host
from .logs import ENDPOINT_KEY

__all__ = [
    "CONTENT_TYPE",
    "may_scrape",
    "scrape",
    "prepare_multiprocess_dir",
    "request_started",
    "request_finished",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_STARTED_KEY = "yiwang.request_started"


def may_scrape(remote_addr: str | None, headers: Mapping[str, str], token: str | None) -> bool:
    """Whether this caller may read ``/metrics`` (see the module docstring)."""
    if token is not None:
        scheme, _, given = (headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    if headers.get("Forwarded") or headers.get("X-Forwarded-For"):
        return False
    return is_loopback_host(remote_addr or "")


def scrape(extra: Collector | None = None) -> bytes:
    """The exposition text: this process's registry, or every worker's under ``PROMETHEUS_MULTIPROC_DIR``.

    ``extra`` is computed at scrape time (the idp's logout backlog from SQL),
    so it is asked once per scrape, by the worker that answers it.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        if extra is not None:
            registry.register(extra)
        return generate_latest(registry)
    text = generate_latest(REGISTRY)
    if extra is not None:
        single = CollectorRegistry()
        single.register(extra)
        text += generate_latest(single)
    return text


def prepare_multiprocess_dir(home: Path, service: str, port: int) -> Path:
    """A fresh, empty directory for the workers' metric files of this start (``PROMETHEUS_MULTIPROC_DIR``).

    ``serve`` calls it before granian starts the workers, which inherit the
    variable. Under ``$PROMETHEUS_MULTIPROC_DIR`` when the operator set one,
    else under the home's ``run/``; one per service and port, emptied at every
    start so a previous run's counters are not added to this one's.
    """
    base = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or home / "run")
    directory = base / f"metrics-{service}-{port}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    # prometheus_client picks its value class when first imported; a worker forked from this
    # process (certstore serve) would keep a choice made before the variable was set.
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


def request_started(environ: MutableMapping[str, Any]) -> None:
    """Note when the web layer began this request (its before-request hook)."""
    environ[_STARTED_KEY] = time.perf_counter()


def request_finished(
    environ: MutableMapping[str, Any],
    endpoint: str | None,
    observe: Callable[[str | None, float], None],
) -> None:
    """Observe the request's duration under ``endpoint`` and name it for the access log line.

    ``observe`` is the service's own latency histogram; a request whose start
    was never noted (an earlier hook answered it) is not timed.
    """
    started = environ.get(_STARTED_KEY)
    if started is not None:
        observe(endpoint, time.perf_counter() - started)
    if endpoint:
        environ[ENDPOINT_KEY] = endpoint
