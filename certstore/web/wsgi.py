"""WSGI entry point for servers (granian, gunicorn): ``certstore.web.wsgi:app``."""

from __future__ import annotations

from . import create_app

app = create_app()
