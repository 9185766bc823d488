"""No module in the service packages grows past 500 lines (issue 12): past that, a module
owns more than one thing. A module that must be longer is named here with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 500
EXCEPTIONS: dict[str, str] = {}


@pytest.mark.parametrize("package", ["idp", "certstore", "signing"])
def test_no_module_is_over_500_lines(package: str) -> None:
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / package).rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > LIMIT
        and str(path.relative_to(ROOT)) not in EXCEPTIONS
    }
    assert not too_long, f"split these by what they own, or say why in EXCEPTIONS: {too_long}"
