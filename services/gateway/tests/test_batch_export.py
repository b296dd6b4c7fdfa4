"""The batch CSV export's cells: whatever a user typed, a spreadsheet never reads a cell
as a formula, and the text is kept (a leading `'` is all that is added)."""

import csv
import io
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.catalogue.export import COLUMNS, export_csv, safe_cell

FORMULA = ("=", "+", "-", "@", "\t", "\r")


@given(st.text())
def test_no_cell_starts_a_formula_and_the_text_is_kept(text: str) -> None:
    cell = safe_cell(text)
    assert not cell.startswith(FORMULA)
    assert cell == text or (cell == "'" + text and text.startswith(FORMULA))


@given(sku=st.text(min_size=1), message=st.text())
async def test_a_line_reads_back_as_written(sku: str, message: str) -> None:
    batch = {
        "_id": "b1",
        "created_at": datetime.now(UTC),
        "rows": [{"row": 1, "sku": sku, "title": "t", "job_ids": ["j1"]}],
    }
    error = {"code": "x", "message": message}
    jobs = {"j1": {"_id": "j1", "status": "failed", "variant": 0, "error": error}}
    variants: list[dict[str, object]] = [{"preset": None, "aspect_ratio": "1:1", "duration": 5}]

    async def link(key: str) -> str:
        raise AssertionError("a failed job has no links")

    text = await export_csv(batch, jobs, variants, link)
    header, line = list(csv.reader(io.StringIO(text, newline="")))
    assert header == COLUMNS
    cells = dict(zip(COLUMNS, line, strict=True))
    assert cells["sku"] == safe_cell(sku)
    assert cells["error_message"] == safe_cell(message)
    assert (cells["aspect_ratio"], cells["duration"], cells["status"]) == ("1:1", "5", "failed")
