"""Dependency audit of the installed environment (`make audit`; .ci/run calls it after the tests).

Never a silent pass: the last line says how many installed packages were checked
against an advisory database and which were not, and why.

1. pip-audit against OSV (its default and most complete database).
2. If OSV cannot be reached: pip-audit against PyPI's per-release JSON API.
3. Packages still unaudited (PyPI's per-release endpoint unreachable or refusing):
   PyPI's project JSON, whose ``vulnerabilities`` are those of the project's newest
   release; they apply when that is the installed version. Otherwise the package
   is listed as NOT audited.

Exit status: 1 when a known vulnerability is found (locally and in CI); 0 otherwise,
also when the advisory databases cannot be reached — then a line says loudly
"advisory database unreachable (…): NOT audited", or lists each unaudited package. Set
``YIWANG_AUDIT_REQUIRED=1`` to make an unreachable database (or any unaudited
package) fail the run: for a pipeline that does reach the internet.
Policy and reasons: docs/operators.md, "Dependency audit".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import requests

PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"
TIMEOUT = 15
DEADLINE = 180  # seconds for all of PyPI's project JSON look-ups together: CI must not hang on a slow mirror
OWN_PROJECT = "yiwang"  # installed editable from this tree: nothing to look up


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


@dataclass
class Report:
    total: int = 0
    audited: dict[str, str] = field(default_factory=dict)  # name -> source
    not_audited: dict[str, str] = field(default_factory=dict)  # name -> reason
    vulnerable: list[tuple[str, str, str, str]] = field(default_factory=list)  # name, version, id, fixed in
    notes: list[str] = field(default_factory=list)


def _say(line: str) -> None:
    print(f"dependency audit: {line}", flush=True)


def _pip_audit(service: str, out: Path) -> tuple[int, dict | None, str]:
    cmd = [
        str(Path(sys.executable).with_name("pip-audit")), "-s", service, "-l", "--skip-editable",
        "--progress-spinner", "off", "--timeout", str(TIMEOUT), "-f", "json", "-o", str(out),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        return -1, None, "ReadTimeout: pip-audit took more than 300 s"
    data = json.loads(out.read_text()) if out.exists() and out.stat().st_size else None
    return proc.returncode, data, (proc.stderr or "").strip()


def _unreachable(stderr: str) -> str | None:
    for marker in ("NameResolutionError", "ConnectionError", "Max retries exceeded", "ConnectTimeout", "ReadTimeout",
                   "Failed to resolve", "ServiceError"):
        if marker in stderr:
            last = stderr.splitlines()[-1] if stderr else marker
            return last[-200:]
    return None


def _from_pip_audit(report: Report, data: dict, source: str) -> None:
    for dep in data.get("dependencies", []):
        name = _norm(dep["name"])
        if name == OWN_PROJECT:
            continue
        if "skip_reason" in dep:
            report.not_audited[name] = dep["skip_reason"]
            continue
        report.audited[name] = source
        report.not_audited.pop(name, None)
        for v in dep.get("vulns", []):
            report.vulnerable.append((name, dep.get("version", "?"), v.get("id", "?"), ", ".join(v.get("fix_versions", []))))


def _installed() -> dict[str, str]:
    return {_norm(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def _project_json_fallback(report: Report) -> None:
    installed = _installed()
    session = requests.Session()
    started = time.monotonic()
    for name in sorted(report.not_audited):
        version = installed.get(name)
        if version is None:
            continue
        if time.monotonic() - started > DEADLINE:
            report.not_audited[name] = f"no time left ({DEADLINE} s for all PyPI look-ups)"
            continue
        try:
            resp = session.get(PYPI_PROJECT_JSON.format(name=name), timeout=TIMEOUT)
        except requests.RequestException as e:
            report.not_audited[name] = f"PyPI unreachable ({type(e).__name__})"
            continue
        if resp.status_code != 200:
            report.not_audited[name] = f"PyPI project JSON answered HTTP {resp.status_code}"
            continue
        doc = resp.json()
        newest = doc.get("info", {}).get("version")
        if "vulnerabilities" not in doc:
            report.not_audited[name] = "PyPI project JSON carries no vulnerability data"
        elif newest != version:
            report.not_audited[name] = f"installed {version}, newest {newest}: advisories only for the newest release reachable"
        else:
            report.audited[name] = "PyPI project JSON (installed = newest release)"
            del report.not_audited[name]
            for v in doc["vulnerabilities"]:
                if v.get("withdrawn"):
                    continue
                report.vulnerable.append((name, version, v.get("id", "?"), ", ".join(v.get("fixed_in") or [])))


def audit() -> Report:
    report = Report()
    with tempfile.TemporaryDirectory() as tmp:
        rc, data, err = _pip_audit("osv", Path(tmp) / "osv.json")
        if data is not None:
            _from_pip_audit(report, data, "OSV")
        else:
            reason = _unreachable(err) or f"pip-audit exited {rc}"
            report.notes.append(f"OSV advisory database unreachable ({reason})")
            rc, data, err = _pip_audit("pypi", Path(tmp) / "pypi.json")
            if data is not None:
                _from_pip_audit(report, data, "PyPI per-release JSON")
                if report.not_audited and not report.audited:
                    report.notes.append("PyPI's per-release JSON API answered for no installed package")
            else:
                report.notes.append(f"PyPI advisory service unreachable ({_unreachable(err) or f'pip-audit exited {rc}'})")
    if data is not None:
        report.total = len([d for d in data.get("dependencies", []) if _norm(d["name"]) != OWN_PROJECT])
    if report.not_audited:
        _project_json_fallback(report)
    return report


def main() -> int:
    required = os.environ.get("YIWANG_AUDIT_REQUIRED") == "1"
    report = audit()
    for note in report.notes:
        _say(note)
    for name, version, vid, fixed in sorted(report.vulnerable):
        _say(f"VULNERABLE {name} {version}: {vid}" + (f" (fixed in {fixed})" if fixed else ""))
    sources = sorted(set(report.audited.values()))
    _say("npm: shared/oidc-bench not audited (a benchmark tool outside this repository, no lockfile; "
         "the npm advisory endpoint refuses POST from this network)")
    if not report.audited:
        _say("advisory database unreachable (" + "; ".join(report.notes or ["no answer"]) + "): NOT audited")
        return 2 if required else 0
    if report.not_audited:
        _say(f"{len(report.not_audited)} of {report.total} packages NOT audited:")
        for name, reason in sorted(report.not_audited.items()):
            print(f"  {name}: {reason}", flush=True)
    summary = (f"{len(report.audited)} of {report.total} installed packages audited ({', '.join(sources) or 'none'}), "
               f"{len(report.not_audited)} NOT audited, {len(report.vulnerable)} known vulnerabilities")
    _say(summary)
    if report.vulnerable:
        return 1
    return 2 if required and report.not_audited else 0


if __name__ == "__main__":
    sys.exit(main())
