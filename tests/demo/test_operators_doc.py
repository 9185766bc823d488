"""docs/operators.md names every ``YIWANG_*`` variable the services accept, with a default and a meaning.

The env readers refuse unknown ``YIWANG_*`` names, so the declared variables
(``keys/config.py``, ``idp/settings.py``, ``certstore/settings.py``) are the whole
configuration surface; an operator should find each one in the guide's tables.
"""

from __future__ import annotations

import re
from pathlib import Path

from certstore.settings import CERTSTORE_VARIABLES
from idp.settings import IDP_VARIABLES

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operators.md"


def _table_rows(text: str) -> dict[str, list[str]]:
    """Each variable named in the first cell of a table row → that row's cells."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("| `YIWANG_"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for name in re.findall(r"`(YIWANG_[A-Z0-9_]+)`", cells[0]):
            rows[name] = cells
    return rows


def test_every_declared_variable_has_a_row_with_a_default_and_a_meaning() -> None:
    rows = _table_rows(GUIDE.read_text(encoding="utf-8"))
    declared = {"YIWANG_" + v.name for v in (*IDP_VARIABLES, *CERTSTORE_VARIABLES)}
    assert declared, "no variables declared?"
    missing = sorted(declared - set(rows))
    assert not missing, f"docs/operators.md has no table row for {missing}"
    for name in declared:
        cells = rows[name]
        assert len(cells) >= 3 and cells[1] and len(cells[2]) > 10, (name, cells)


def test_the_guide_names_no_variable_the_services_would_refuse() -> None:
    declared = {"YIWANG_" + v.name for v in (*IDP_VARIABLES, *CERTSTORE_VARIABLES)}
    named = set(_table_rows(GUIDE.read_text(encoding="utf-8")))
    assert not sorted(named - declared)
