"""Which Chromium the browser tests drive: CHROMIUM if set, else one on PATH (Debian's
`chromium` package, which .ci/run installs), else the one `playwright install` fetched."""

import os
import shutil

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_executable() -> str | None:
    """A path, or None to let Playwright use its own download (and say so if it is missing)."""
    if path := os.environ.get("CHROMIUM"):
        return path
    for name in NAMES:
        if found := shutil.which(name):
            return found
    return None
