"""WSGI entry point for ``idp serve`` (granian) and any other WSGI server: ``idp.web.wsgi:app``.

Settings come from the environment here, once, as at every entry point.
With the in-process Redis stand-in (or ``YIWANG_IDP_INPROCESS_WORKER=true``)
the logout job worker runs inside this process too, since no separate
``idp worker`` could reach that Redis.
"""

from __future__ import annotations

import logging
import os
import sys

from keys.logs import configure as configure_logging

from ..redis import is_embedded
from ..settings import IdpSettings
from . import create_app

logger = logging.getLogger(__name__)

# A request thread whose Redis or SQL answer has arrived waits for the GIL
# until the running thread gives it up: by default after 5 ms, which on the
# SSO path (seven round trips) cost more than the work itself. 1 ms hands
# the GIL over sooner, at a small cost in switches.
sys.setswitchinterval(0.001)

_settings = IdpSettings.from_env(os.environ)
configure_logging(_settings.common.log_level, _settings.common.log_format)  # text or JSON (issue 18)
app = create_app(_settings)

_runtime = app.extensions["yiwang"]
_inprocess = _runtime.settings.inprocess_worker
if _inprocess is None:
    _inprocess = is_embedded(_runtime.services.redis)
if _inprocess and _runtime.logout is not None:
    try:
        _runtime.logout.start_worker(threads=1)
    except Exception:  # deliveries stay pending in SQL and are resent later
        logger.exception("the in-process logout worker did not start")
