"""The Catalogue page's preview reads a CSV manifest as the server does: the same rows, with
the same numbers and values (web/js/manifest-preview.js run in Chromium, against
gateway.catalogue.manifest.parse_manifest), whatever the separator, quoting, line breaks
in values, blank lines or BOM."""

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Page, Route, sync_playwright

from gateway.catalogue.manifest import ManifestLimits, parse_manifest
from tests.support.browser import chromium_executable

ORIGIN = "http://client.test"
MODULE = Path(__file__).parents[1] / "src/gateway/web/js/manifest-preview.js"
LIMITS = ManifestLimits(
    max_rows=500,
    max_bytes=4 * 1024 * 1024,
    lengths={
        "sku": 100,
        "title": 120,
        "description": 2000,
        "style": 60,
        "cta": 40,
        "price": 20,
        "image": 2048,
    },
)
COLUMNS = ["sku", "title", "description", "image", "price"]


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    def serve(route: Route) -> None:
        if route.request.url.endswith("/js/manifest-preview.js"):
            route.fulfill(body=MODULE.read_text(), content_type="text/javascript")
        else:
            route.fulfill(body="<!doctype html><title>preview</title>", content_type="text/html")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable(), args=["--no-sandbox"]
        )
        page = browser.new_page()
        page.route(f"{ORIGIN}/**", serve)
        page.goto(f"{ORIGIN}/")
        yield page
        browser.close()


def preview(page: Page, text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = page.evaluate(
        "async (text) => (await import('/js/manifest-preview.js')).manifestRows(text, 'p.csv')",
        text,
    )
    return rows


# Values with what makes CSV hard: separators, quotes, line breaks, spaces around, any script.
value = st.text(
    alphabet=st.one_of(
        st.sampled_from([",", ";", "\t", '"', "\n", "\r", " ", "€"]),
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    ),
    max_size=12,
)
row = st.fixed_dictionaries({name: value for name in COLUMNS})


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(row, st.booleans()), min_size=1, max_size=6),
    delimiter=st.sampled_from([",", ";", "\t"]),
    bom=st.booleans(),
)
def test_the_preview_reads_the_rows_the_server_reads(
    page: Page, rows: list[tuple[dict[str, str], bool]], delimiter: str, bom: bool
) -> None:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerow(COLUMNS)
    for values, blank_line_before in rows:
        if blank_line_before:
            out.write("\r\n")
        csv.writer(out, delimiter=delimiter).writerow([values[name] for name in COLUMNS])
    text = ("\ufeff" if bom else "") + out.getvalue()

    server = parse_manifest(text.encode(), LIMITS, filename="p.csv")
    shown = preview(page, text)
    assert len(shown) == server.row_count
    assert [r["number"] for r in shown] == list(range(1, len(shown) + 1))
    for good in server.rows:  # the rows the server takes, value for value
        values = shown[good.number - 1]["values"]
        assert values["sku"] == good.sku and values["title"] == good.title
        assert values["image"] == good.image and values.get("price", "") == (good.price or "")
