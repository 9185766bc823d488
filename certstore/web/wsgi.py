"""WSGI entry point for servers (granian, gunicorn): ``certstore.web.wsgi:app``."""

from __future__ import annotations

import os

from keys.logs import configure as configure_logging

from ..settings import CertstoreSettings
from . import create_app

_settings = CertstoreSettings.from_env(os.environ)
configure_logging(_settings.common.log_level, _settings.common.log_format)  # text or JSON (issue 18)
app = create_app(_settings)
