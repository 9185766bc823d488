"""``certstore verify`` of a PDF changed after signing prints a verdict, never a traceback (issue 11, finding 12).

pyHanko logs what its difference analysis found as a warning with a
traceback; the command runs in a real process here (pytest's own log capture
would otherwise swallow what the command's logging writes to stderr).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..signing.test_pades import _overwrite_holder_name
from .conftest import issue_args


def test_verify_of_an_incrementally_updated_pdf_prints_a_verdict_without_traceback(
    demo: Any, yiwang_env: dict[str, str], tmp_path: Path
) -> None:
    signed = tmp_path / "c.pdf"
    code, _out, err = demo(*issue_args("JZZM", signed))
    assert code == 0, err
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(_overwrite_holder_name(signed.read_bytes(), "Li Si"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_") or k.startswith("YIWANG_TEST_")}
    env.update(yiwang_env, YIWANG_ISSUER="http://idp.test", PYTHONWARNINGS="ignore")
    certstore = Path(sys.executable).with_name("certstore")
    proc = subprocess.run(  # noqa: S603 - our own command, our own file
        [str(certstore), "verify", str(tampered)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert proc.returncode == 1, proc.stderr
    assert "FAIL no_changes_after_signing: the document was changed after signing" in proc.stdout
    assert proc.stdout.rstrip().endswith("NOT VALID")
    assert "Traceback" not in proc.stderr and "SuspiciousModification" not in proc.stderr, proc.stderr
    # The untouched PDF still verifies, through the same command.
    ok = subprocess.run(  # noqa: S603
        [str(certstore), "verify", str(signed)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("VALID"), ok.stdout + ok.stderr
