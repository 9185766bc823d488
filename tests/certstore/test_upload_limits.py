"""Anonymous uploads are bounded (issue 11 finding 9, issue 19 findings 3 and 4).

The hostile inputs are made here: a 6300 x 6300 blank PNG (52 KB; it cost
zbarimg 2 s and 321 MB), a 12-frame GIF of 4000 x 4000 frames (164 KB;
zbarimg tried to hold every frame and used 636 MB), and certificate PDFs with
2,000 chained incremental updates (~300 KB; 14 s of CPU in pyHanko). A fresh
Python process (so that the measurement is of the service alone, not of
pytest) builds the service, warms it up, and then fires eight copies of each
at ``POST /api/v1/verify`` from parallel threads while its main thread keeps
verifying a genuine certificate (QR text, PDF, QR image). It reports the
status and wall time of every request, its own peak RSS (``VmHWM``) above
the warmed-up RSS, and the peak RSS of every ``zbarimg`` it ran (through
``/usr/bin/time``).

Bounds asserted: every hostile upload is refused (413/422) within
:data:`HOSTILE_SECONDS`; the service grows by at most :data:`GROWTH_MB`;
no child exceeds :data:`CHILD_MB`; every genuine verification meanwhile is
valid and answered within :data:`NORMAL_SECONDS`.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from certstore.service import IssueRequest

from .conftest import DEMO_REQUESTS, PSB

HOSTILE_SECONDS = 2.0
GROWTH_MB = 100
CHILD_MB = 160
NORMAL_SECONDS = 10.0
ROOT = Path(__file__).resolve().parents[2]


def blank_png(side: int = 6300) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (side, side), 1).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def animated_gif(frames: int = 12, side: int = 4000) -> bytes:
    """Every frame within the old 40-megapixel check; alternating colours so none is merged away."""
    from PIL import Image

    images = [Image.new("L", (side, side), (i % 2) * 255) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], optimize=False)
    return buf.getvalue()


def chained_pdf(pdf: bytes, sections: int) -> bytes:
    """``pdf`` plus ``sections`` incremental updates, each a new object and a cross-reference
    section chained to the one before by ``/Prev`` (ISO 32000-1 §7.5.6)."""
    out = bytearray(pdf)
    prev = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    root = int(re.findall(rb"/Root (\d+) 0 R", pdf)[-1])
    size = int(re.findall(rb"/Size (\d+)", pdf)[-1])
    for i in range(sections):
        num, at = size + i, len(out)
        out += b"%d 0 obj\n<</K %d>>\nendobj\n" % (num, i)
        xref = len(out)
        out += (
            b"xref\n%d 1\n%010d 00000 n \ntrailer\n<</Size %d /Root %d 0 R /Prev %d>>\nstartxref\n%d\n%%%%EOF\n"
            % (num, at, num + 1, root, prev, xref)
        )
        prev = xref
    return bytes(out)


_HARNESS = r"""
import io, json, resource, sys, threading, time
from pathlib import Path

sys.path.insert(0, sys.argv[3])
from tests.certstore.conftest import DEMO_REQUESTS, PSB, make_settings, populate
from certstore.service import IssueRequest
from certstore.tokens import StaticJwksSource
from certstore.web import create_app
from certstore.wiring import build_services
import signing.qr

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)

tmp, db = Path(sys.argv[1]), sys.argv[2]
svc = build_services(make_settings(tmp, db), jwks_source=StaticJwksSource({"keys": []}))
populate(svc)
cert = svc.certificates.issue(IssueRequest.from_json(DEMO_REQUESTS["JZZM"]["body"]), agency_uscc=PSB).certificate
pdf = svc.certificates.pdf(cert.identifier)
png = signing.qr.qr_png(cert.qr_text)
app = create_app(services=svc)
client = app.test_client()

# Each zbarimg's own peak RSS, from /usr/bin/time (a fork of this process would count
# this process's pages in RUSAGE_CHILDREN before its exec).
import certstore.qrscan as qrscan
peaks = tmp / "zbarimg-peaks"
if hasattr(qrscan, "_zbar_command"):
    plain = qrscan._zbar_command
    qrscan._zbar_command = lambda exe, path: ["/usr/bin/time", "-a", "-o", str(peaks), "-f", "%M", *plain(exe, path)]

def verify(name, data):
    t = time.monotonic()
    if name == "text":
        resp = client.post("/api/v1/verify", json={"text": data})
    else:
        resp = app.test_client().post("/api/v1/verify", data={"file": (io.BytesIO(data), name)})
    body = resp.get_json(silent=True) or {}
    return {"status": resp.status_code, "seconds": time.monotonic() - t,
            "valid": body.get("valid"), "code": body.get("code")}

normal = [("text", cert.qr_text), ("c.pdf", pdf), ("qr.png", png)]
for name, data in normal * 2:  # warm-up: every library loaded, every cache filled
    assert verify(name, data)["valid"], name
baseline = rss("VmRSS")
hwm_before = rss("VmHWM")

hostile = {name: (tmp / name).read_bytes() for name in json.loads(sys.argv[4])}
results = {name: [] for name in hostile}
def attack(name):
    results[name].append(verify(name, hostile[name]))
threads = [threading.Thread(target=attack, args=(n,)) for n in hostile for _ in range(8)]
for th in threads:
    th.start()
meanwhile = []
while any(th.is_alive() for th in threads) or not meanwhile:
    for name, data in normal:
        meanwhile.append(dict(verify(name, data), name=name))
for th in threads:
    th.join()
print(json.dumps({
    "hostile": results, "normal": meanwhile,
    "baseline_mb": baseline, "hwm_before_mb": hwm_before, "hwm_mb": rss("VmHWM"),
    "children_mb": max([int(x) for x in peaks.read_text().split()] if peaks.exists() else [0]) / 1024,
    "zbarimg_runs": len(peaks.read_text().split()) if peaks.exists() else 0,
}))
"""


@pytest.fixture
def hostile_files(tmp_path: Path, services: Any) -> list[str]:
    cert = services.certificates.issue(
        IssueRequest.from_json(DEMO_REQUESTS["JZZM"]["body"]), agency_uscc=PSB
    ).certificate
    pdf = services.certificates.pdf(cert.identifier)
    files = {
        "blank.png": blank_png(),
        "frames.gif": animated_gif(),
        "chain.pdf": chained_pdf(pdf, 2000),
        "big.pdf": chained_pdf(pdf, 2000) + b"%" + b"x" * (5 * 1024 * 1024) + b"\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return list(files)


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs /usr/bin/time to measure zbarimg")
def test_hostile_uploads_are_refused_within_bounds_while_genuine_ones_verify(
    tmp_path: Path, database_url: str, hostile_files: list[str]
) -> None:
    child_tmp = tmp_path / "service"
    for name in hostile_files:
        (child_tmp).mkdir(exist_ok=True)
        (child_tmp / name).write_bytes((tmp_path / name).read_bytes())
    started = time.monotonic()
    proc = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", _HARNESS, str(child_tmp), database_url, str(ROOT), json.dumps(hostile_files)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = {
        "blank.png": (422, "image_too_large"),
        "frames.gif": (422, "animated_image"),
        "chain.pdf": (422, "pdf_too_complex"),
        "big.pdf": (413, "pdf_too_large"),
    }
    for name, answers in report["hostile"].items():
        assert len(answers) == 8
        for a in answers:
            assert (a["status"], a["code"]) == expected[name], (name, a)
            assert a["seconds"] < HOSTILE_SECONDS, (name, a)
    growth = report["hwm_mb"] - report["baseline_mb"]
    assert growth < GROWTH_MB, report
    assert report["zbarimg_runs"] > 0 and report["children_mb"] < CHILD_MB, report
    assert report["normal"], "no genuine verification ran while the hostile uploads were in flight"
    for a in report["normal"]:
        assert a["status"] == 200 and a["valid"] is True, a
        assert a["seconds"] < NORMAL_SECONDS, a
    print(
        f"hostile uploads refused; service +{growth:.0f} MB, zbarimg peak {report['children_mb']:.0f} MB, "
        f"{len(report['normal'])} genuine verifications meanwhile, {time.monotonic() - started:.1f} s in all"
    )


# -- over the concurrency cap: 503 with Retry-After ------------------------------------------------


def _genuine(services: Any) -> tuple[Any, bytes]:
    cert = services.certificates.issue(
        IssueRequest.from_json(DEMO_REQUESTS["JZZM"]["body"]), agency_uscc=PSB
    ).certificate
    return cert, services.certificates.pdf(cert.identifier)


def test_over_the_cap_uploads_get_503_with_retry_after(services: Any, client: Any) -> None:
    import signing.qr

    cert, pdf = _genuine(services)
    png = signing.qr.qr_png(cert.qr_text)
    svc = services.certificates
    slots = services.settings.verify_concurrency
    held = [svc.verifier.pdf_slots() for _ in range(slots)] + [svc.verifier.image_slots() for _ in range(slots)]
    for h in held:
        h.__enter__()
    try:
        for name, data in (("c.pdf", pdf), ("qr.png", png)):
            resp = client.post("/api/v1/verify", data={"file": (io.BytesIO(data), name)})
            assert resp.status_code == 503 and resp.mimetype == "application/problem+json", name
            assert resp.headers["Retry-After"] == "5"
            assert resp.get_json()["code"] == "busy"
        # QR text needs no slot: verifiers keep being answered.
        assert client.post("/api/v1/verify", json={"text": cert.qr_text}).get_json()["valid"] is True
        page = client.get("/verify")
        token = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
        assert token is not None
        resp = client.post(
            "/verify",
            data={"file": (io.BytesIO(pdf), "c.pdf"), "csrf": token.group(1), "lang": "en"},
            content_type="multipart/form-data",
        )
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
        assert "try again in a few seconds" in resp.get_data(as_text=True)
        assert "Traceback" not in resp.get_data(as_text=True)
    finally:
        for h in held:
            h.__exit__(None, None, None)
    ok = client.post("/api/v1/verify", data={"file": (io.BytesIO(pdf), "c.pdf")}).get_json()
    assert ok["valid"] is True


def test_a_phone_photo_is_downscaled_not_refused(services: Any, client: Any) -> None:
    """12 megapixels (4000 x 3000) with the QR in it: read after downscaling, as PNG and as JPEG."""
    from PIL import Image

    import signing.qr

    cert, _ = _genuine(services)
    code = Image.open(io.BytesIO(signing.qr.qr_png(cert.qr_text, box_size=16))).convert("L")
    photo = Image.new("L", (4000, 3000), 230)
    photo.paste(code, (1400, 700))
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        photo.save(buf, format=fmt)
        res = client.post("/api/v1/verify", data={"file": (io.BytesIO(buf.getvalue()), f"photo.{fmt}")})
        assert res.status_code == 200 and res.get_json()["valid"] is True, (fmt, res.get_json())


def test_a_jpeg_with_a_second_picture_uses_the_first(services: Any, client: Any) -> None:
    """Phones store depth maps and HDR gain maps as further pictures (MPO); only the first is read."""
    from PIL import Image

    import signing.qr

    cert, _ = _genuine(services)
    first = Image.open(io.BytesIO(signing.qr.qr_png(cert.qr_text))).convert("RGB")
    buf = io.BytesIO()
    first.save(buf, format="MPO", save_all=True, append_images=[Image.new("RGB", (4000, 4000), "black")])
    res = client.post("/api/v1/verify", data={"file": (io.BytesIO(buf.getvalue()), "photo.jpg")})
    assert res.status_code == 200 and res.get_json()["valid"] is True, res.get_json()


def test_the_limits_are_settings(services: Any) -> None:
    from certstore.settings import CertstoreSettings

    s = CertstoreSettings.from_env(
        {"YIWANG_CERTSTORE_VERIFY_PDF_MAX_BYTES": "100000", "YIWANG_CERTSTORE_VERIFY_CONCURRENCY": "3"}
    )
    assert (s.verify_pdf_max_bytes, s.verify_concurrency) == (100000, 3)


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs /usr/bin/time to measure zbarimg")
def test_zbarimg_itself_runs_under_a_memory_and_time_limit(tmp_path: Path) -> None:
    """Should a hostile image ever reach zbarimg, the child is cut at its address-space limit:
    the 12-frame GIF cost it 636 MB without one."""
    import shutil

    from certstore import qrscan

    exe = shutil.which("zbarimg")
    if exe is None:
        pytest.skip("zbarimg is not installed")
    path = tmp_path / "frames.gif"
    path.write_bytes(animated_gif())
    peak = tmp_path / "peak"
    started = time.monotonic()
    proc = subprocess.run(  # noqa: S603 - fixed programs, our own file
        ["/usr/bin/time", "-o", str(peak), "-f", "%M", *qrscan._zbar_command(exe, path)],
        capture_output=True,
        timeout=60,
        check=False,
        env=qrscan._zbar_env(str(tmp_path)),
    )
    elapsed = time.monotonic() - started
    peak_mb = int(peak.read_text().split()[-1]) / 1024
    assert proc.returncode != 0  # refused or killed, never a result
    assert peak_mb < qrscan._ZBAR_ADDRESS_SPACE_KIB / 1024, peak_mb
    assert elapsed < qrscan._ZBAR_CPU_SECONDS + 5, elapsed
