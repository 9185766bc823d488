"""The one look of every citizen page: ``yiwang.css`` and ``yiwang_base.html`` (issue 18 "The citizen").

idp and certstore may not import each other, so the canonical files live
here, in the shared base package, as plain package data. Each service's
``static/yiwang.css`` and ``templates/yiwang_base.html`` are symbolic links
to these files (a wheel copies the target), and
``tests/test_page_tour.py`` checks that what each service serves is byte for
byte this copy. Nothing here imports Flask: :data:`ASSETS` is a path.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS", "STYLESHEET", "BASE_TEMPLATE"]

ASSETS = Path(__file__).resolve().parent
STYLESHEET = ASSETS / "yiwang.css"
BASE_TEMPLATE = ASSETS / "yiwang_base.html"
