"""Reading QR codes out of images with zbar's ``zbarimg`` (a separate process).

A subprocess rather than an in-process binding: image decoders are a classic
place for memory-safety bugs, and a hostile upload should at worst kill a
short-lived child. The upload is anonymous, so everything it can cost is
bounded (issue 11 finding 9, issue 19 finding 4):

* the header is read first and absurd dimensions are refused before any pixel
  is decoded; animated GIF, PNG and WebP images are refused (zbarimg would
  decode every frame of a GIF, and each frame can be as large as the first);
  of a JPEG with further pictures (MPO) only the first is decoded;
* Pillow decodes the one frame, a JPEG already scaled down in the decoder
  (``draft``), and the picture is reduced to at most :data:`DECODE_PIXELS`
  (a 12-megapixel phone photo of a QR code still has several pixels per
  module at 3 megapixels);
* zbarimg only ever sees that small grey PGM, and runs under an address-space
  and CPU limit (``ulimit``, set by ``/bin/sh`` before ``exec``: unlike
  ``preexec_fn`` this is safe in a threaded server) and a timeout;
* how many decodes run at once is capped by the caller
  (:class:`certstore.service.CertificateService`).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .errors import InvalidInput, ServiceUnavailable

__all__ = ["check_image", "decode_qr_image", "image_kind", "HEADER_PIXELS", "DECODE_PIXELS"]

logger = logging.getLogger(__name__)

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)


def image_kind(data: bytes) -> str | None:
    """``png``, ``jpeg``, ``gif``, ``bmp``, ``webp`` or ``None``, from the magic bytes."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


HEADER_PIXELS = {"jpeg": 50_000_000, "other": 16_000_000}
"""Largest picture a header may announce. A JPEG decodes at 1/2–1/8 scale in
the decoder itself (a 48-megapixel phone photo costs little); other formats
decode whole, so a screenshot or a scan is the most they need to be."""
DECODE_PIXELS = 3_000_000
"""What zbarimg is given at most, after downscaling."""
_MAX_SIDE = 16_384
_ZBAR_ADDRESS_SPACE_KIB = 256 * 1024
"""zbarimg's address space (ImageMagick maps ~70 MB of libraries; a 3 MP grey
image needs ~30 MB as 16-bit RGBA)."""
_ZBAR_CPU_SECONDS = 5


def _too_large(message: str) -> InvalidInput:
    return InvalidInput(message, field="file", code="image_too_large")


def _unreadable() -> InvalidInput:
    return InvalidInput("the image cannot be read", field="file", code="unreadable_image")


def _open(data: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise _too_large("the image has far too many pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise _unreadable() from None


def _check_header(img: Any, kind: str) -> None:
    width, height = img.size
    limit = HEADER_PIXELS["jpeg" if kind == "jpeg" else "other"]
    if width <= 0 or height <= 0 or width > _MAX_SIDE or height > _MAX_SIDE or width * height > limit:
        raise _too_large(
            f"the image is {width}x{height} pixels; at most {limit // 1_000_000} megapixels "
            f"and {_MAX_SIDE} pixels a side are accepted"
        )
    if kind == "jpeg":
        # A JPEG with further pictures (MPO: a phone's depth or HDR gain map) is not an
        # animation: only its first picture is ever decoded, and zbarimg never sees the file.
        return
    try:
        # is_animated reads at most the second frame's header (n_frames could walk them all).
        animated = bool(getattr(img, "is_animated", False))
    except (OSError, ValueError, SyntaxError, EOFError):
        raise _unreadable() from None
    if animated:
        raise InvalidInput(
            "the image has several frames (an animation); upload a single still picture",
            field="file",
            code="animated_image",
        )


def check_image(data: bytes) -> str:
    """The image's kind, once its header passed every bound; no pixel is decoded (milliseconds).

    Callers run this before waiting for a decode slot, so that hostile
    uploads are refused without taking one.
    """
    kind = image_kind(data)
    if kind is None:
        raise InvalidInput("the upload is neither a PDF nor a PNG/JPEG/GIF/WebP image", field="file", code="unsupported_upload")
    with _open(data) as img:
        _check_header(img, kind)
    return kind


def _single_frame(data: bytes, kind: str) -> Any:
    """The image's one frame, decoded and reduced to at most :data:`DECODE_PIXELS`, in grey."""
    from PIL import Image

    img = _open(data)
    with img:
        width, height = img.size
        _check_header(img, kind)
        try:
            if kind == "jpeg":
                # Scale 1/2..1/8 inside the JPEG decoder: the full picture is never in memory.
                scale = max(1.0, (width * height / DECODE_PIXELS) ** 0.5)
                img.draft("L", (int(width / scale), int(height / scale)))
            img.seek(0)
            img.load()
            grey = img.convert("L")
        except InvalidInput:
            raise
        except Image.DecompressionBombError:
            raise _too_large("the image has far too many pixels") from None
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError):
            raise _unreadable() from None
    pixels = grey.width * grey.height
    if pixels > DECODE_PIXELS:
        factor = int(-(-((pixels / DECODE_PIXELS) ** 0.5) // 1))  # ceiling of the side ratio
        grey = grey.reduce(factor)
    return grey


def _zbar_command(exe: str, path: Path) -> list[str]:
    # dash's ulimit takes one resource per call; "$0" "$@" keep the arguments out of the shell text.
    script = f'ulimit -v {_ZBAR_ADDRESS_SPACE_KIB} && ulimit -t {_ZBAR_CPU_SECONDS} && exec "$0" "$@"'
    return ["/bin/sh", "-c", script, exe, "--nodbus", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(path)]


def _zbar_env(tmp: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # ImageMagick inside zbarimg: one thread, no spill of its pixel cache to disk
        "MAGICK_THREAD_LIMIT": "1",
        "MAGICK_DISK_LIMIT": "0",
        "MAGICK_TMPDIR": tmp,
        "OMP_NUM_THREADS": "1",
    }


def decode_qr_image(data: bytes, *, timeout: float = 10.0) -> list[str]:
    """The texts of the QR codes in an image (payloads in ``YW1:`` form first).

    Raises :class:`InvalidInput` (field ``file``) when the image holds no
    readable QR code, cannot be read, is animated or too large.
    """
    kind = check_image(data)
    exe = shutil.which("zbarimg")
    if exe is None:
        raise ServiceUnavailable("QR images cannot be read here: zbarimg (zbar-tools) is not installed")
    grey = _single_frame(data, kind)
    with tempfile.TemporaryDirectory(prefix="cs-qr-") as tmp:
        path = Path(tmp) / "upload.pgm"
        grey.save(path, format="PPM")
        try:
            proc = subprocess.run(  # noqa: S603 (fixed programs, our own temp file)
                _zbar_command(exe, path),
                capture_output=True,
                timeout=timeout,
                check=False,
                env=_zbar_env(tmp),
            )
        except subprocess.TimeoutExpired:
            raise InvalidInput("reading the QR code from the image took too long", field="file") from None
    # zbarimg: 0 found, 4 nothing found, other codes: unreadable image (or killed at a limit).
    if proc.returncode == 4 or (proc.returncode == 0 and not proc.stdout.strip()):
        raise InvalidInput("no QR code was found in the image", field="file", code="no_qr_code")
    if proc.returncode != 0:
        logger.info("zbarimg exit status %d", proc.returncode)
        raise _unreadable()
    texts = [t for t in proc.stdout.decode("utf-8", "replace").splitlines() if t.strip()]
    texts.sort(key=lambda t: not t.startswith("YW1:"))
    return texts
