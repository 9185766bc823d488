"""The browsable API reference at ``/api/docs``: Swagger UI over ``/openapi.json``, every asset local.

Swagger UI's files come from the ``swagger-ui-bundle`` package (the one
connexion maintains) and are served from here, never from a CDN: an agency's
network may not reach one, and a page that loads code from a third party runs
what that party serves. The page has no inline script (its initialiser is
:func:`init_js`, a file of its own), so its Content-Security-Policy stays
strict: scripts and styles from this origin only; ``connect-src`` adds the
identity provider's origin, where the "Authorize" dialog asks for a
client-credentials token (the idp must allow this origin for CORS).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, send_from_directory

from .context import services

__all__ = ["bp", "install", "ASSETS", "page_csp"]

bp = Blueprint("apidocs", __name__, url_prefix="/api/docs")

ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"})
"""The files of the bundle the page uses; nothing else of the package is served."""


def _asset_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_csp() -> str:
    """The reference page's own policy: this origin's scripts and styles, the idp for the token request."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {_origin(services().settings.common.issuer)}; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Yiwang certificate store — API reference</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/docs/assets/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>
"""


@bp.get("")
def page() -> Response:
    resp = Response(_PAGE, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = page_csp()
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/init.js")
def init_js() -> Response:
    options = {
        "url": "/openapi.json",
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "validatorUrl": None,  # Swagger UI would otherwise send the document to swagger.io
        "tryItOutEnabled": False,
        "persistAuthorization": False,
    }
    script = f"window.ui = SwaggerUIBundle({json.dumps(options)});\n"
    resp = Response(script, mimetype="text/javascript")
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404)
    resp = send_from_directory(_asset_dir(), name, max_age=86400)
    return resp


def install(app: Flask) -> None:
    app.register_blueprint(bp)
