"""The certstore command line, run in-process through ``certstore.cli.main``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import PSB, UNI, Cli, issue_args


def test_init_demo_is_idempotent_and_lists_types_and_issuers(demo: Cli) -> None:
    code, out, err = demo("init", "--demo")
    assert code == 0, err
    assert "region CA 110000 present" in out
    code, out, _ = demo("types", "list")
    assert [line.split("\t")[0] for line in out.splitlines()] == ["BYZS", "JZZM", "YYZZ"]
    code, out, _ = demo("issuers", "list")
    assert PSB in out and "demo-psb" in out


def test_db_upgrade(cli: Cli) -> None:
    code, out, err = cli("db", "upgrade")
    assert code == 0, err
    assert re.search(r"certstore schema at revision \w+", out), out
    code, again, _ = cli("db", "current")
    assert code == 0 and again.strip() == out.split()[-1]


def test_issue_and_verify_pdf_and_text(demo: Cli, tmp_path: Path) -> None:
    pdf = tmp_path / "c.pdf"
    code, out, err = demo(*issue_args("BYZS", pdf))
    assert code == 0, err
    ident = out.strip()
    assert ident.startswith(f"1.2.156.3005.2.BYZS.{UNI}.")
    assert pdf.read_bytes().startswith(b"%PDF-")
    code, out, _ = demo("verify", str(pdf))
    assert code == 0 and out.strip().endswith("VALID")
    assert "ok   signature_intact" in out
    tampered = tmp_path / "t.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 3] ^= 0x01
    tampered.write_bytes(bytes(data))
    code, out, _ = demo("verify", str(tampered))
    assert code == 1 and "NOT VALID" in out and "FAIL" in out


def test_verify_text_of_another_format_fails(demo: Cli) -> None:
    code, out, _ = demo("verify", "--text", "HELLO WORLD")
    assert code == 1
    assert "FAIL format" in out


def test_bad_input_is_one_line_and_exit_2(demo: Cli, tmp_path: Path) -> None:
    args = issue_args("JZZM", tmp_path / "x.pdf")
    args[args.index("--holder-id") + 1] = "110105194912310021"
    code, out, err = demo(*args)
    assert code == 2
    assert err.count("\n") == 1 and "check character" in err
    assert "110105194912310021" not in err
    assert not (tmp_path / "x.pdf").exists()


def test_issuer_not_allowed_type(demo: Cli, tmp_path: Path) -> None:
    args = issue_args("JZZM", tmp_path / "x.pdf")
    args[args.index("--issuer") + 1] = UNI
    code, _, err = demo(*args)
    assert code == 2 and "may not issue" in err


def test_types_add_refuses_a_bad_file(demo: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"code": "XX01", "name_zh": "x", "name_en": "x", "holder_code_type": "111",
                               "fields": [{"name": "a", "label_zh": "a", "label_en": "a", "kind": "blob"}]}))
    code, _, err = demo("types", "add", str(bad))
    assert code == 2 and "fields[0].kind" in err


def test_issuers_add_with_client_and_types(demo: Cli) -> None:
    code, out, err = demo("issuers", "add", "--uscc", "91110108MA0000002G", "--name", "测试机关",
                          "--region", "110000", "--type", "JZZM", "--client-id", "portal-x")
    assert code == 0, err
    assert "client portal-x" in out and "signer certificate serial" in out
    code, _, err = demo("issuers", "add", "--uscc", "91110108MA0000002H", "--name", "x", "--region", "110000")
    assert code == 2 and "uscc" in err


def test_verify_needs_exactly_one_input(demo: Cli) -> None:
    code, _, err = demo("verify")
    assert code == 2


def test_an_uninitialised_database_says_what_to_run(cli: Cli) -> None:
    code, _, err = cli("verify", "--text", "YW1:ABC")
    assert code == 2
    assert "certstore init" in err


def test_serve_never_falls_back_to_werkzeug(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """werkzeug's server would log /wallet/callback?code=… ; without granian, serve fails instead."""
    import importlib.util
    import sys

    import werkzeug.serving

    started: list[Any] = []

    def _refuse(*args: Any, **kwargs: Any) -> None:
        started.append(args)

    monkeypatch.setattr(werkzeug.serving, "run_simple", _refuse)
    _no_metrics_dir(monkeypatch)
    monkeypatch.setitem(sys.modules, "granian", None)  # import granian -> ImportError
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "granian" else real_find_spec(name, *a))
    try:
        code, _out, _err = cli("serve", "--port", "1")
    except ImportError:
        code = 1
    assert code != 0
    assert started == []


def test_serve_has_granian_respawn_a_worker_that_died(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed web worker comes back without the service manager (issue 20 §7)."""
    import granian

    seen: dict[str, Any] = {}

    class _Recorder:
        def __init__(self, target: str, **kwargs: Any) -> None:
            seen.update(kwargs, target=target)

        def serve(self) -> None:
            seen["served"] = True

    monkeypatch.setattr(granian, "Granian", _Recorder)
    _no_metrics_dir(monkeypatch)
    code, _out, err = cli("init")  # serve refuses a home without keys (issue 18)
    assert code == 0, err
    code, _out, err = cli("serve", "--port", "5199", "--workers", "2")
    assert code == 0, err
    assert seen["served"] and seen["target"] == "certstore.web.wsgi:app"
    assert seen["respawn_failed_workers"] is True and seen["workers"] == 2


def _no_metrics_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` switches its process to multi-process metrics for the workers it starts; run
    in the test's process, that would switch every later test of this process too."""
    import certstore.cli.serve

    monkeypatch.setattr(certstore.cli.serve, "prepare_multiprocess_dir", lambda *a, **k: None)
