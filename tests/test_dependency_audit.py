"""The dependency audit's policy (.ci/audit.py): never a silent pass.

No network here: pip-audit and PyPI are stood in for.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

_PATH = Path(__file__).resolve().parents[1] / ".ci" / "audit.py"


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location("yiwang_ci_audit", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "yiwang_ci_audit", module)
    spec.loader.exec_module(module)
    monkeypatch.delenv("YIWANG_AUDIT_REQUIRED", raising=False)
    return module


_DNS = 'requests.exceptions.ConnectionError: Failed to resolve \'api.osv.dev\' (NameResolutionError)'


def _services(monkeypatch: pytest.MonkeyPatch, audit: Any, answers: dict[str, Any]) -> None:
    def fake(service: str, out: Path) -> tuple[int, Any, str]:
        return answers[service]

    monkeypatch.setattr(audit, "_pip_audit", fake)


class _NoPyPI:
    def get(self, url: str, timeout: float) -> Any:
        raise requests.ConnectionError("unreachable")


def test_unreachable_database_says_not_audited_and_passes(audit: Any, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _services(monkeypatch, audit, {"osv": (1, None, _DNS), "pypi": (1, None, _DNS)})
    assert audit.main() == 0
    out = capsys.readouterr().out
    assert "dependency audit: advisory database unreachable (" in out and "): NOT audited" in out
    assert "known vulnerabilities" not in out  # no summary that could read as a pass


def test_unreachable_database_fails_when_required(audit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _services(monkeypatch, audit, {"osv": (1, None, _DNS), "pypi": (1, None, _DNS)})
    monkeypatch.setenv("YIWANG_AUDIT_REQUIRED", "1")
    assert audit.main() == 2


def test_every_package_skipped_is_not_a_pass(audit: Any, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # What pip-audit -s pypi does on this network: every package skipped, exit 0, "No known vulnerabilities".
    skipped = {"dependencies": [{"name": "flask", "skip_reason": "Dependency not found on PyPI"}], "fixes": []}
    _services(monkeypatch, audit, {"osv": (1, None, _DNS), "pypi": (0, skipped, "")})
    monkeypatch.setattr(audit.requests, "Session", lambda: _NoPyPI())
    assert audit.main() == 0
    out = capsys.readouterr().out
    assert "advisory database unreachable" in out and "NOT audited" in out


def test_a_known_vulnerability_fails(audit: Any, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    found = {"dependencies": [
        {"name": "flask", "version": "3.1.3", "vulns": []},
        {"name": "jinja2", "version": "2.10", "vulns": [{"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"]}]},
    ]}
    _services(monkeypatch, audit, {"osv": (1, found, "")})
    assert audit.main() == 1
    out = capsys.readouterr().out
    assert "VULNERABLE jinja2 2.10: PYSEC-2019-217 (fixed in 2.10.1)" in out
    assert "2 of 2 installed packages audited (OSV)" in out


def test_newest_release_advisories_apply_only_to_the_newest_release(audit: Any, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    skipped = {"dependencies": [{"name": "pycrypto", "skip_reason": "404"}, {"name": "flask", "skip_reason": "404"}]}
    _services(monkeypatch, audit, {"osv": (1, None, _DNS), "pypi": (0, skipped, "")})
    monkeypatch.setattr(audit, "_installed", lambda: {"pycrypto": "2.6.1", "flask": "3.0.0"})

    class _Resp:
        status_code = 200

        def __init__(self, doc: dict[str, Any]) -> None:
            self.doc = doc

        def json(self) -> dict[str, Any]:
            return self.doc

    docs = {
        "pycrypto": {"info": {"version": "2.6.1"}, "vulnerabilities": [{"id": "PYSEC-2017-94", "fixed_in": []}]},
        "flask": {"info": {"version": "3.1.3"}, "vulnerabilities": []},
    }

    class _PyPI:
        def get(self, url: str, timeout: float) -> _Resp:
            return _Resp(docs[url.split("/")[-2]])

    monkeypatch.setattr(audit.requests, "Session", lambda: _PyPI())
    assert audit.main() == 1
    out = capsys.readouterr().out
    assert "VULNERABLE pycrypto 2.6.1: PYSEC-2017-94" in out
    assert "flask: installed 3.0.0, newest 3.1.3" in out and "1 NOT audited" in out
