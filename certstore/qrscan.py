"""Reading QR codes out of images with zbar's ``zbarimg`` (a separate process).

A subprocess rather than an in-process binding: image decoders are a classic
place for memory-safety bugs, and a hostile upload should at worst kill a
short-lived child, which also runs under a timeout.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import InvalidInput, ServiceUnavailable

__all__ = ["decode_qr_image", "image_kind"]

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


_MAX_PIXELS = 40_000_000  # a 40-megapixel phone photo; beyond that, an image bomb


def _check_dimensions(data: bytes) -> None:
    """Refuse images whose header promises more pixels than a photo has (reads the header only)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise InvalidInput("the image has far too many pixels", field="file", code="image_too_large") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidInput("the image cannot be read", field="file", code="unreadable_image") from None
    if width * height > _MAX_PIXELS:
        raise InvalidInput(
            f"the image is {width}x{height} pixels; at most {_MAX_PIXELS // 1_000_000} megapixels are accepted",
            field="file",
            code="image_too_large",
        )


def decode_qr_image(data: bytes, *, timeout: float = 15.0) -> list[str]:
    """The texts of the QR codes in an image (payloads in ``YW1:`` form first).

    Raises :class:`InvalidInput` (field ``file``) when the image holds no
    readable QR code or cannot be read as an image.
    """
    kind = image_kind(data)
    if kind is None:
        raise InvalidInput("the upload is neither a PDF nor a PNG/JPEG/GIF/WebP image", field="file", code="unsupported_upload")
    _check_dimensions(data)
    exe = shutil.which("zbarimg")
    if exe is None:
        raise ServiceUnavailable("QR images cannot be read here: zbarimg (zbar-tools) is not installed")
    with tempfile.TemporaryDirectory(prefix="cs-qr-") as tmp:
        path = Path(tmp) / f"upload.{kind}"
        path.write_bytes(data)
        try:
            proc = subprocess.run(  # noqa: S603 (fixed program, our own temp file)
                [exe, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(path)],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise InvalidInput("reading the QR code from the image took too long", field="file") from None
    # zbarimg: 0 found, 4 nothing found, other codes: unreadable image.
    if proc.returncode == 4 or (proc.returncode == 0 and not proc.stdout.strip()):
        raise InvalidInput("no QR code was found in the image", field="file", code="no_qr_code")
    if proc.returncode != 0:
        logger.info("zbarimg exit status %d", proc.returncode)
        raise InvalidInput("the image cannot be read", field="file", code="unreadable_image")
    texts = [t for t in proc.stdout.decode("utf-8", "replace").splitlines() if t.strip()]
    texts.sort(key=lambda t: not t.startswith("YW1:"))
    return texts
