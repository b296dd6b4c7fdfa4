"""A batch as a CSV file, one line per job, for a spreadsheet or a shop's import.

Cells come from users (sku, error messages naming their text), and a spreadsheet runs a
cell starting with `=`, `+`, `-` or `@` (or a tab or carriage return before one) as a
formula: such a cell gets a leading `'`, which spreadsheets show as text.
"""

import csv
import io
from collections.abc import Awaitable, Callable

from common.batches import Batch
from common.jobs import Job

COLUMNS = [
    "row",
    "sku",
    "variant",
    "preset",
    "aspect_ratio",
    "duration",
    "status",
    "video_url",
    "poster_url",
    "error_code",
    "error_message",
]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# Makes the signed link of a stored object (the job routes' own links).
LinkMaker = Callable[[str], Awaitable[str]]


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


async def export_csv(
    batch: Batch, jobs: dict[str, Job], variants: list[dict[str, object]], link: LinkMaker
) -> str:
    """The CSV text: a header, then the jobs row by row, variant by variant."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in batch.get("rows", []):
        for index, job_id in enumerate(row["job_ids"]):
            job = jobs.get(job_id, {})
            number = job.get("variant", index)
            variant = variants[number] if number < len(variants) else {}
            video = job.get("video") if job.get("status") == "completed" else None
            error = job.get("error") or {}
            cells = [
                row["row"],
                row["sku"],
                number,
                variant.get("preset") or "",
                variant.get("aspect_ratio", ""),
                variant.get("duration", ""),
                job.get("status", ""),
                await link(video["key"]) if video else "",
                await link(video["poster_key"]) if video else "",
                error.get("code", ""),
                error.get("message", ""),
            ]
            writer.writerow([safe_cell(cell) for cell in cells])
    return out.getvalue()
