"""Keeps credentials that travel in URLs out of the access log: job tokens
(`?token=`), the signatures of download links (`/api/v1/files/<signature>`), and API
keys and webhook secrets wherever they appear (only their recognisable prefix stays)."""

import logging
import re

_PATTERNS = (
    (re.compile(r"([?&]token=)[^&\s\"]+"), r"\1[redacted]"),
    (re.compile(r"(/api/v1/files/)[^?\s\"]+"), r"\1[redacted]"),
    (re.compile(r"\b(pv_live_|whsec_)[A-Za-z0-9+/=_-]+"), r"\1[redacted]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """On uvicorn's access logger (it logs every request's path and query)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactUrls) for f in access.filters):
        access.addFilter(RedactUrls())
