"""Upload validation and normalisation of product photos (Pillow).

The type is decided from the bytes alone; the file's structure (every PNG chunk's
CRC, the JPEG's segments) and its end are checked, and then its size from the header,
before any pixel is decoded; a file must end where its image ends (anything
appended — a ZIP, HTML, a script — makes it a polyglot, refused, apart from what
phones append to a JPEG: more JPEGs and a motion photo's clip); what is stored
is a re-encoded, upright, metadata-free RGB JPEG (or an RGBA PNG when the photo
has transparency), so nothing hidden inside the original is ever served.
"""

import asyncio
import hashlib
import io
import warnings
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import UploadFile
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from common.errors import ApiError

READ_CHUNK = 1024 * 1024
JPEG_QUALITY = 92

# The formats we accept, by their leading bytes, and the Pillow decoder for each.
_SIGNATURES = {
    "JPEG": lambda b: b.startswith(b"\xff\xd8\xff"),
    "PNG": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "WEBP": lambda b: len(b) >= 12 and b[:4] == b"RIFF" and b[8:12] == b"WEBP",
}
ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp")

# Pillow warns (instead of refusing) between its pixel limit and twice that; make the
# warning an error so an oversized header never reaches the decoder.
warnings.simplefilter("error", Image.DecompressionBombWarning)


def set_pixel_limit(max_pixels: int) -> None:
    """Pillow's own guard, process-wide; `normalize_image` also checks explicitly."""
    Image.MAX_IMAGE_PIXELS = max_pixels


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    min_side: int


@dataclass(frozen=True)
class NormalizedImage:
    data: bytes
    ext: str
    content_type: str
    width: int
    height: int
    sha256: str  # of the bytes as uploaded
    source_format: str


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "upload_too_large",
        f"The upload is larger than {limit // (1024 * 1024)} MiB.",
        details={"max_upload_bytes": limit},
    )


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes, refusing (413) as soon as more than `limit` arrive."""
    chunks: list[bytes] = []
    total = 0
    while chunk := await upload.read(READ_CHUNK):
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class Decoder:
    """Reads and normalises uploads, at most `concurrency` at a time in this process.

    A photo within the limits can still take up to ~8 bytes per pixel while it is
    decoded, converted and re-encoded (~310 MB at 40 M pixels): the bound keeps the
    process's memory at about `concurrency` times that, however many uploads arrive at
    once. The others wait their turn with their bytes still in the spooled upload."""

    def __init__(self, concurrency: int, limits: ImageLimits, wait: float = 20.0) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.limits = limits
        self.wait = wait

    async def normalize(self, upload: UploadFile) -> NormalizedImage:
        async with self._slot():
            data = await read_upload(upload, self.limits.max_bytes)
            return await asyncio.to_thread(normalize_image, data, self.limits)

    async def normalize_bytes(self, data: bytes) -> NormalizedImage:
        """A photo already in memory (from a catalogue's zip), checked like an upload."""
        async with self._slot():
            return await asyncio.to_thread(normalize_image, data, self.limits)

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self.wait)
        except TimeoutError:
            # A queue that long means the gateway is overloaded: say so rather than hold
            # the request (and its spooled upload) open for minutes.
            raise ApiError(
                503,
                "busy",
                "Too many photos are being processed right now; try again shortly.",
                headers={"Retry-After": "5"},
            ) from None
        try:
            yield
        finally:
            self._slots.release()


def sniff_format(data: bytes) -> str:
    """JPEG, PNG or WEBP from the leading bytes; 415 for anything else."""
    for fmt, matches in _SIGNATURES.items():
        if matches(data):
            return fmt
    raise ApiError(
        415,
        "unsupported_image_type",
        "The photo must be a JPEG, PNG or WebP image.",
        details={"accepted": list(ACCEPTED_TYPES)},
    )


def _invalid(reason: str) -> ApiError:
    return ApiError(400, "invalid_image", f"The photo could not be read: {reason}.")


def _bomb(width: int, height: int, limits: ImageLimits) -> ApiError:
    return ApiError(
        413,
        "image_too_large",
        f"The photo has too many pixels ({width}×{height}); "
        f"the limit is {limits.max_pixels:,} pixels.",
        details={"width": width, "height": height, "max_pixels": limits.max_pixels},
    )


def _open(data: bytes, fmt: str, limits: ImageLimits) -> Image.Image:
    """Open (header only) and check the declared size, then decode fully."""
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ApiError(
            413,
            "image_too_large",
            f"The photo has too many pixels; the limit is {limits.max_pixels:,} pixels.",
            details={"max_pixels": limits.max_pixels},
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise _invalid("the file is damaged or not a real image") from e
    width, height = img.size
    if width * height > limits.max_pixels:
        raise _bomb(width, height, limits)
    try:
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(width, height, limits) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise _invalid("the file is truncated or damaged") from e
    return img


class _Malformed(Exception):
    pass


def _u16(data: bytes, at: int) -> int:
    if at + 2 > len(data):
        raise _Malformed
    return int.from_bytes(data[at : at + 2], "big")


def _jpeg_end(data: bytes, start: int = 0) -> int:
    """Where the JPEG starting at `start` (its SOI) ends, walking its segments and
    entropy-coded data to the EOI marker."""
    i, n = start + 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            raise _Malformed
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xD9:  # EOI
            return i + 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        i += 2 + _u16(data, i + 2)
        if marker == 0xDA:  # SOS: entropy-coded data up to the next real marker
            i = _next_marker(data, i)
    raise _Malformed


def _next_marker(data: bytes, i: int) -> int:
    """The position of the next marker at or after `i` in entropy-coded data (where
    0xFF00 is a stuffed byte and 0xFFD0-D7 are restart markers), or the end of data.
    Jumps from 0xFF to 0xFF: the scan runs at C speed, not a Python step per byte."""
    n = len(data)
    while (i := data.find(b"\xff", i)) != -1 and i + 1 < n:
        following = data[i + 1]
        if following not in (0x00, 0xFF) and not 0xD0 <= following <= 0xD7:
            return i
        i += 1
    return n


def _png_end(data: bytes) -> int:
    """Where the IEND chunk ends; every chunk's CRC must match (Pillow skips IDAT's)."""
    i = 8
    while i + 12 <= len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        end = i + 12 + length
        if end > len(data):
            raise _Malformed
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[i + 4 : end - 4]) != crc:
            raise _Malformed
        if data[i + 4 : i + 8] == b"IEND":
            return end
        i = end
    raise _Malformed


def _webp_end(data: bytes) -> int:
    size = int.from_bytes(data[4:8], "little")
    return 8 + size + (size & 1)


_ENDS = {"JPEG": _jpeg_end, "PNG": _png_end, "WEBP": _webp_end}

_JPEG_SOI = b"\xff\xd8\xff"
# Top-level boxes of the MP4 clip phones append to a "motion photo".
_MP4_BOXES = {b"ftyp", b"mdat", b"moov", b"free", b"skip", b"meta", b"uuid", b"wide"}


def _more_jpegs_end(data: bytes, start: int) -> int:
    """Past the complete JPEG streams that follow one another from `start`: the other
    images of an MPO (3D cameras) or the gain map of an Ultra HDR photo."""
    while data.startswith(_JPEG_SOI, start):
        start = _jpeg_end(data, start)
    return start


def _is_mp4(data: bytes, start: int) -> bool:
    """A chain of well-formed ISO-BMFF boxes from `start`, led by `ftyp` and ending
    exactly at the end of the file."""
    i, n = start, len(data)
    if data[i + 4 : i + 8] != b"ftyp":
        return False
    while i < n:
        if i + 8 > n:
            return False
        size = int.from_bytes(data[i : i + 4], "big")
        header = 8
        if size == 1:  # a 64-bit size follows the type
            if i + 16 > n:
                return False
            size, header = int.from_bytes(data[i + 8 : i + 16], "big"), 16
        elif size == 0:  # the last box, up to the end of the file
            size = n - i
        if data[i + 4 : i + 8] not in _MP4_BOXES or size < header or i + size > n:
            return False
        i += size
    return True


def _phone_trailer(data: bytes, end: int) -> bool:
    """What real phones write after a JPEG, and nothing else: more complete JPEGs
    (MPO, Ultra HDR), then optionally a motion photo's MP4 reaching the end of the file.
    Harmless either way: the re-encoding drops it, like everything else."""
    try:
        end = _more_jpegs_end(data, end)
    except _Malformed:
        return False
    return end == len(data) or _is_mp4(data, end)


def check_single_image(data: bytes, fmt: str) -> None:
    """400 unless the file ends where its image ends (polyglots, smuggled payloads)."""
    try:
        end = _ENDS[fmt](data)
    except _Malformed:
        raise _invalid("its structure is damaged") from None
    trailer = data[end:]
    if trailer.strip(b"\x00") and not (fmt == "JPEG" and _phone_trailer(data, end)):
        raise _invalid(
            f"it carries {len(trailer):,} bytes of other data after the image "
            "(only plain photos are accepted)"
        )


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )


def _to_srgb(img: Image.Image) -> Image.Image:
    """Convert from an embedded colour profile to sRGB: dropping the profile
    without converting would shift the colours of wide-gamut and CMYK photos."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, source, srgb, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img  # a broken profile: fall back to a plain conversion
    return converted if converted is not None else img


def normalize_image(data: bytes, limits: ImageLimits) -> NormalizedImage:
    """Validate an uploaded photo and re-encode it upright and without metadata.

    CPU-bound: call it in a thread."""
    if len(data) > limits.max_bytes:
        raise too_large(limits.max_bytes)
    fmt = sniff_format(data)
    # Cheap before costly: a damaged or padded file is refused before a pixel is decoded.
    check_single_image(data, fmt)
    img = _open(data, fmt, limits)
    if min(img.size) < limits.min_side:
        raise ApiError(
            422,
            "image_too_small",
            f"The photo is {img.width}×{img.height} pixels; "
            f"both sides must be at least {limits.min_side} pixels.",
            details={"width": img.width, "height": img.height, "min_side": limits.min_side},
        )
    try:
        # In place: without an orientation to apply there is no copy of the pixels.
        ImageOps.exif_transpose(img, in_place=True)
    except (OSError, ValueError, SyntaxError) as e:
        raise _invalid("its orientation data is damaged") from e
    alpha = _has_alpha(img)
    img = _to_srgb(img)
    mode = "RGBA" if alpha else "RGB"
    if img.mode != mode:  # convert() copies even when there is nothing to convert
        img = img.convert(mode)
    # Nothing of the original's metadata (EXIF with GPS, XMP, comments) is written back.
    img.info = {}
    out = io.BytesIO()
    if alpha:
        img.save(out, "PNG", optimize=True)
        ext, content_type = "png", "image/png"
    else:
        img.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
        ext, content_type = "jpg", "image/jpeg"
    return NormalizedImage(
        data=out.getvalue(),
        ext=ext,
        content_type=content_type,
        width=img.width,
        height=img.height,
        sha256=hashlib.sha256(data).hexdigest(),
        source_format=fmt,
    )
