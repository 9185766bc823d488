"""WSGI entry point for ``idp serve`` (granian) and any other WSGI server: ``idp.web.wsgi:app``.

Settings come from the environment here, once, as at every entry point.
"""

from __future__ import annotations

from . import create_app

app = create_app()
