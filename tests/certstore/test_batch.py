"""``certstore issue-batch``: the file checked first, bad rows reported, reruns issue nothing twice."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from .conftest import DEMO_REQUESTS, PSB, Cli

FIELDS = DEMO_REQUESTS["JZZM"]["body"]["fields"]
GOOD_IDS = ["11010519491231002X", "110101199003071233", "440106198001010012"]


def _ids() -> list[str]:
    from keys.identifiers import resident_id_check_character

    out = []
    for n in range(6):
        first17 = f"11010119900101{n:03d}"
        out.append(first17 + resident_id_check_character(first17))
    return out


def _write(path: Path, rows: list[dict[str, str]], *, encoding: str = "utf-8") -> Path:
    cols = ["external_ref", "holder_code", "holder_name", "paper_serial", *FIELDS]
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def _rows(n: int) -> list[dict[str, str]]:
    return [
        {"external_ref": f"REF-{i}", "holder_code": hid, "holder_name": f"王{'一二三四五六'[i]}", "paper_serial": f"P{i}", **FIELDS}
        for i, hid in enumerate(_ids()[:n])
    ]


def _count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(sa.text("SELECT count(*) FROM certificates")).scalar_one())
    finally:
        engine.dispose()


def _results(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_file_checked_before_anything_is_issued(demo: Cli, tmp_path: Path, database_url: str) -> None:
    gbk = _write(tmp_path / "gbk.csv", _rows(2), encoding="gb18030")
    code, out, err = demo("issue-batch", str(gbk), "--type", "JZZM", "--issuer", PSB)
    assert code == 2 and err.count("\n") == 1
    assert "not UTF-8" in err and "GB 18030" in err

    bad = tmp_path / "cols.csv"
    bad.write_text("external_ref,holder_code,holder_name,colour\nR1,11010519491231002X,张三,red\n", encoding="utf-8")
    code, out, err = demo("issue-batch", str(bad), "--type", "JZZM", "--issuer", PSB)
    assert code == 2 and "unknown column 'colour'" in err

    missing = tmp_path / "missing.csv"
    missing.write_text("external_ref,holder_name\nR1,张三\n", encoding="utf-8")
    code, out, err = demo("issue-batch", str(missing), "--type", "JZZM", "--issuer", PSB)
    assert code == 2 and "lacks the column 'holder_code'" in err

    ragged = tmp_path / "ragged.csv"
    header = ",".join(["external_ref", "holder_code", "holder_name", *FIELDS])
    ragged.write_text(f"{header}\nR1,11010519491231002X\n", encoding="utf-8")
    code, out, err = demo("issue-batch", str(ragged), "--type", "JZZM", "--issuer", PSB)
    assert code == 2 and "line 2 has 2 cells" in err

    code, out, err = demo("issue-batch", str(tmp_path / "nope.csv"), "--type", "JZZM", "--issuer", PSB)
    assert code == 2 and "cannot read" in err
    assert _count(database_url) == 0


@pytest.mark.slow
def test_bad_row_reported_and_rerun_is_idempotent(demo: Cli, tmp_path: Path, database_url: str) -> None:
    rows = _rows(4)
    rows[2]["holder_code"] = "110101199001010010"  # wrong check character
    rows[3]["address"] = ""  # a required field left empty
    path = _write(tmp_path / "batch.csv", rows)
    results = tmp_path / "out.csv"
    code, out, err = demo("issue-batch", str(path), "--type", "JZZM", "--issuer", PSB, "--results", str(results))
    assert code == 0, err
    assert "2 failed, 2 issued" in out
    got = _results(results)
    assert [r["state"] for r in got] == ["issued", "issued", "failed", "failed"]
    assert [r["row"] for r in got] == ["2", "3", "4", "5"]
    assert "check character" in got[2]["error"] and "110101199001010010" not in got[2]["error"]
    assert "address" in got[3]["error"]
    assert got[0]["identifier"].startswith("1.2.156.3005.2.JZZM.")
    assert _count(database_url) == 2

    # the same file again (say after a crash): nothing is issued twice
    code, out, err = demo("issue-batch", str(path), "--type", "JZZM", "--issuer", PSB, "--results", str(results))
    assert code == 0, err
    again = _results(results)
    assert [r["state"] for r in again] == ["existing", "existing", "failed", "failed"]
    assert [r["identifier"] for r in again[:2]] == [r["identifier"] for r in got[:2]]
    assert _count(database_url) == 2

    # the results never carry the ID numbers
    assert all(hid not in results.read_text() for hid in _ids())


def test_issuer_not_allowed_for_type(demo: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path / "b.csv", _rows(1))
    code, out, err = demo("issue-batch", str(path), "--type", "JZZM", "--issuer", "11110105000000002A")
    assert code == 2 and "may not issue" in err


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("YIWANG_TEST_REDIS_URL"), reason="needs Redis for the job queue")
def test_two_workers_on_the_redis_queue(demo: Cli, tmp_path: Path, database_url: str) -> None:
    path = _write(tmp_path / "q.csv", _rows(6))
    results = tmp_path / "q.out.csv"
    code, out, err = demo("issue-batch", str(path), "--type", "JZZM", "--issuer", PSB, "--workers", "2", "--results", str(results))
    assert code == 0, err
    assert "6 issued" in out and "2 workers" in err
    got = _results(results)
    assert sorted(r["state"] for r in got) == ["issued"] * 6
    assert len({r["identifier"] for r in got}) == 6
    assert _count(database_url) == 6
