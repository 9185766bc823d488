"""``GET /metrics`` (Prometheus text) and the Flask side of the idp's request metrics.

:func:`install_metrics` times every request Flask answers under its endpoint
name, counts the token endpoint's answers when Flask (not the hot path) gave
them, and puts the endpoint name where the access log line finds it
(:data:`keys.logs.ENDPOINT_KEY`). Who may scrape: :func:`keys.metrics.may_scrape`
(``YIWANG_METRICS_TOKEN``, else loopback callers no proxy relayed).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, current_app, request

from keys.metrics import CONTENT_TYPE, may_scrape, request_finished, request_started, scrape

from ..metrics import HOT_ENDPOINTS, LogoutCollector, observe_request, observe_token

__all__ = ["bp", "install_metrics", "HOT_ROUTES"]

HOT_ROUTES = HOT_ENDPOINTS
"""The route names of the paths :mod:`.hotpaths` answers without Flask (for the access log line)."""

bp = Blueprint("metrics", __name__)

_TOKEN_ROUTE = "oauth.token"  # noqa: S105 - a route name


@bp.get("/metrics")
def metrics() -> Response:
    runtime = current_app.extensions["yiwang"]
    if not may_scrape(request.remote_addr, request.headers, runtime.settings.common.metrics_token):
        abort(404)  # nothing here for anyone else: not even that it exists
    collector = current_app.extensions.get("yiwang.logout_metrics")
    if collector is None:
        collector = current_app.extensions["yiwang.logout_metrics"] = LogoutCollector(runtime.services.db)
    resp = Response(scrape(collector), mimetype=None, content_type=CONTENT_TYPE)
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
        if endpoint == _TOKEN_ROUTE and request.method == "POST":
            # Only a form the view already read: parsing one here could raise (a body over the limit).
            params = request.__dict__.get("values") or request.__dict__.get("form")
            grant_type = params.get("grant_type") if params is not None else None
            observe_token(grant_type, resp.status_code, resp.get_data() if resp.status_code != 200 else b"")
        return resp
