"""``GET /metrics`` (Prometheus text) and the Flask side of certstore's request metrics.

:func:`install_metrics` times every request under its endpoint name, counts
status-list fetches, and puts the endpoint name where the access log line
finds it (:data:`keys.logs.ENDPOINT_KEY`). Who may scrape:
:func:`keys.metrics.may_scrape` (``YIWANG_METRICS_TOKEN``, else loopback
callers no proxy relayed); anyone else gets the ordinary 404.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, request

from keys.metrics import CONTENT_TYPE, may_scrape, request_finished, request_started, scrape

from ..metrics import observe_request, status_list_fetched
from .context import services

__all__ = ["bp", "install_metrics"]

bp = Blueprint("metrics", __name__)

_STATUS_LIST = "lifecycle.status_list"


@bp.get("/metrics")
def metrics() -> Response:
    if not may_scrape(request.remote_addr, request.headers, services().settings.common.metrics_token):
        abort(404)
    resp = Response(scrape(), content_type=CONTENT_TYPE)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def install_metrics(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.before_request
    def _started() -> None:
        request_started(request.environ)

    @app.after_request
    def _observed(resp: Response) -> Response:
        endpoint = request.endpoint
        request_finished(request.environ, endpoint, observe_request)
        if endpoint == _STATUS_LIST:
            status_list_fetched(resp.status_code)
        return resp
