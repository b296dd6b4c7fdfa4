"""Text clean-up shared by the reuse key and the template."""

import unicodedata


def tidy(text: str) -> str:
    """Collapse runs of whitespace (newlines, tabs, doubled spaces) into one space."""
    return " ".join(text.split())


def normalise(text: str) -> str:
    """The form two texts share when only case, whitespace or Unicode composition differ."""
    composed = unicodedata.normalize("NFC", text)
    return unicodedata.normalize("NFC", tidy(composed).casefold())
