"""certstore finds its home the same way from any directory, and never makes one outside init (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _certstore(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_") or k.startswith("YIWANG_TEST_")}
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import sys; from certstore.cli import main; main(sys.argv[1:])", *args],
        cwd=cwd, env={**clean, "PYTHONPATH": str(REPO), **env}, capture_output=True, text=True, timeout=120,
    )


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("args", [("verify", "--text", "YW1:ABC"), ("types", "list"), ("ca", "show"),
                                  ("serve", "--port", "1")])
def test_a_command_outside_a_home_refuses_in_one_line_and_creates_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _certstore(elsewhere, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "no Yiwang home at" in done.stderr and "certstore init" in done.stderr
    assert _tree(tmp_path) == ["elsewhere"]  # no instance/, no keys, nothing


def test_an_explicit_home_without_keys_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    done = _certstore(tmp_path, "verify", "--text", "YW1:ABC", YIWANG_HOME=str(home))
    assert done.returncode == 2 and "no keys in the Yiwang home" in done.stderr
    assert list(home.iterdir()) == []


def test_the_home_is_found_from_any_directory_below_it(tmp_path: Path) -> None:
    project = tmp_path / "project"
    deep = project / "docs" / "drafts"
    deep.mkdir(parents=True)
    init = _certstore(project, "init")
    assert init.returncode == 0, init.stderr
    assert (project / "instance" / "keys").is_dir()
    before = _tree(project / "instance")
    for where in (project, project / "docs", deep):
        done = _certstore(where, "types", "list")
        assert done.returncode == 0, (where, done.stderr)
    assert not (deep / "instance").exists() and not (project / "docs" / "instance").exists()
    assert _tree(project / "instance") == before  # the same home, no new keys
