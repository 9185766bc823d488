"""Issue 5, "Must show", for every demo type, with the real tools.

For each demo type: poppler's ``pdfsig`` with an NSS database trusting only
the region root says "Signature is Valid." and "Certificate is Trusted.";
``zbarimg`` reads the QR from a ``pdftoppm -r 150`` rendering; the text it
reads verifies with ``certstore verify --text``; the QR is version 11 or less
at level M.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import signing.qr
from certstore.settings import CertstoreSettings
from keys import pki
from keys.keyring import open_keyring

from .conftest import Cli, issue_args

pytestmark = [pytest.mark.external, pytest.mark.slow]

_TOOLS = ("pdfsig", "certutil", "pdftoppm", "zbarimg")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603


@pytest.fixture
def nssdb(demo: Cli, tmp_path: Path) -> Path:
    missing = [t for t in _TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    import os

    keyring = open_keyring(CertstoreSettings.from_env(os.environ).common.keys)
    root = tmp_path / "root.pem"
    root.write_bytes(pki.region_root(keyring).public_bytes(Encoding.PEM))
    db = tmp_path / "nssdb"
    db.mkdir()
    assert _run("certutil", "-N", "--empty-password", "-d", f"sql:{db}").returncode == 0
    added = _run("certutil", "-A", "-n", "region-root", "-t", "CT,C,C", "-i", str(root), "-d", f"sql:{db}")
    assert added.returncode == 0, added.stderr
    return db


@pytest.mark.parametrize("code", ["JZZM", "YYZZ", "BYZS"])
def test_demo_type_must_show(demo: Cli, nssdb: Path, tmp_path: Path, code: str) -> None:
    pdf = tmp_path / f"{code}.pdf"
    rc, out, err = demo(*issue_args(code, pdf))
    assert rc == 0, err

    # pdfsig exits 0 even for a broken signature (docs/design.md): read its text.
    sig = _run("pdfsig", "-nssdir", f"sql:{nssdb}", "-no-ocsp", str(pdf))
    assert "Signature is Valid." in sig.stdout, sig.stdout + sig.stderr
    assert "Certificate is Trusted." in sig.stdout, sig.stdout + sig.stderr

    fonts = _run("pdffonts", str(pdf))
    assert fonts.returncode == 0 and " yes " in fonts.stdout  # the CJK subset is embedded

    page = tmp_path / "page"
    assert _run("pdftoppm", "-r", "150", "-png", "-singlefile", str(pdf), str(page)).returncode == 0
    scan = _run("zbarimg", "--raw", "-q", f"{page}.png")
    assert scan.returncode == 0, scan.stderr
    text = scan.stdout.strip()
    assert text.startswith("YW1:")
    assert signing.qr.make_qr(text).version <= 11

    rc, out, _ = demo("verify", "--text", text)
    assert rc == 0, out
    assert out.strip().endswith("VALID") and "FAIL" not in out
    rc, out, _ = demo("verify", f"{page}.png")  # the rendered page as an image upload
    assert rc == 0, out

    # One character changed in the scanned text: caught.
    i = len(text) // 2
    changed = text[:i] + ("B" if text[i] != "B" else "C") + text[i + 1 :]
    rc, out, _ = demo("verify", "--text", changed)
    assert rc == 1 and "NOT VALID" in out
