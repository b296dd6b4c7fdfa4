"""Download names: a job's title as a safe file name."""

import re
import unicodedata
from pathlib import PurePosixPath

FALLBACK_NAME = "product-video"
MAX_STEM = 80


def slugify(text: str) -> str:
    """ASCII, lower case, words joined by '-' (accents dropped, other scripts omitted)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:MAX_STEM].rstrip("-") or FALLBACK_NAME


def download_name(title: str, key: str) -> str:
    """`<slugified title><the object's extension>`, e.g. `red-mug.mp4`."""
    return slugify(title) + PurePosixPath(key).suffix


def safe_download_name(requested: str, key: str) -> str:
    """A requested name made safe for a Content-Disposition header, with the key's extension."""
    suffix = PurePosixPath(key).suffix
    stem = requested.removesuffix(suffix) if suffix else requested
    return slugify(stem) + suffix
