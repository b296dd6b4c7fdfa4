"""The catalogue manifest: CSV (any of its separators, with or without a BOM) and JSON rows
read into products, every problem named by its row and field, and no input that crashes it."""

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.catalogue.manifest import (
    FIELDS,
    ManifestLimits,
    Problem,
    image_problem,
    parse_manifest,
    sniff_delimiter,
)

LIMITS = ManifestLimits(
    max_rows=20,
    max_bytes=64 * 1024,
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
HEADER = ["sku", "title", "description", "image", "cta", "price", "style"]


def to_csv(rows: list[dict[str, str]], delimiter: str = ",", bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, HEADER, delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


def product(n: int, **fields: str) -> dict[str, str]:
    return {
        "sku": f"SKU-{n}",
        "title": f"Mug {n}",
        "description": "A sturdy mug.",
        "image": f"mug-{n}.jpg",
        **fields,
    }


def problems(data: bytes, **kwargs: Any) -> list[tuple[int | None, str]]:
    return [(p.row, p.field) for p in parse_manifest(data, LIMITS, **kwargs).problems]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
@pytest.mark.parametrize("bom", [False, True])
def test_a_csv_with_any_separator_and_bom_gives_its_products(delimiter: str, bom: bool) -> None:
    rows = [
        product(1, price="9,99 €", cta="Jetzt kaufen"),
        product(2, description='Holds 350 ml; "dishwasher safe", hot or cold\nSecond line.'),
        product(3, title="Tasse à café ☕", style="warm, cosy"),
    ]
    manifest = parse_manifest(to_csv(rows, delimiter, bom), LIMITS)
    assert manifest.problems == []
    assert manifest.format == "csv"
    assert [r.number for r in manifest.rows] == [1, 2, 3]
    assert manifest.rows[0].price == "9,99 €"
    assert manifest.rows[0].cta == "Jetzt kaufen"
    assert manifest.rows[1].description.endswith("hot or cold\nSecond line.")
    assert manifest.rows[2].title == "Tasse à café ☕"
    assert manifest.rows[2].style == "warm, cosy"
    assert manifest.rows[1].style is None


def test_columns_in_any_order_and_case_unknown_ones_ignored_blank_lines_skipped() -> None:
    data = (
        b"Image , SKU,Notes,TITLE,Description\n"
        b"a.jpg,A1,internal,Mug,Red mug\n"
        b"\n"
        b",,,,\n"
        b"https://shop.example/b.png,B2,,Bowl,Blue bowl\n"
    )
    manifest = parse_manifest(data, LIMITS)
    assert manifest.problems == []
    assert [(r.sku, r.image) for r in manifest.rows] == [
        ("A1", "a.jpg"),
        ("B2", "https://shop.example/b.png"),
    ]
    assert manifest.rows[1].number == 2
    assert manifest.rows[1].image_url == "https://shop.example/b.png"
    assert manifest.rows[0].image_url is None


def test_json_list_or_rows_object_with_numbers_as_text() -> None:
    items = [
        {"sku": 1001, "title": "Mug", "description": "Red", "image": "a.jpg", "price": 19.5},
        {"sku": "B", "title": "Bowl", "description": "Blue", "image": "b.jpg", "extra": [1]},
    ]
    for data in (json.dumps(items), json.dumps({"rows": items})):
        manifest = parse_manifest(data.encode(), LIMITS)
        assert manifest.problems == []
        assert manifest.format == "json"
        assert [(r.sku, r.price) for r in manifest.rows] == [("1001", "19.5"), ("B", None)]


def test_every_bad_row_is_reported_with_its_row_and_field() -> None:
    rows = [
        product(1),
        product(2, title="", description="   "),
        product(1),  # the same sku as row 1
        product(4, image="../etc/passwd"),
        product(5, image="photos/a.jpg"),
        product(6, image="http://shop.example/a.jpg"),
        product(7, image="ftp://shop.example/a.jpg"),
        product(8, image="https://user:pw@shop.example/a.jpg"),
        product(9, cta="x" * 41, price="y" * 21),
        product(10, title="t" * 121, style="s" * 61),
        product(11, description="bell\x07"),
        product(12, image="C:a.jpg"),
        product(13, image="a\\b.jpg"),
    ]
    found = problems(to_csv(rows))
    assert found == [
        (2, "title"),
        (2, "description"),
        (3, "sku"),
        (4, "image"),
        (5, "image"),
        (6, "image"),
        (7, "image"),
        (8, "image"),
        (9, "cta"),
        (9, "price"),
        (10, "title"),
        (10, "style"),
        (11, "description"),
        (12, "image"),
        (13, "image"),
    ]
    manifest = parse_manifest(to_csv(rows), LIMITS)
    assert [r.number for r in manifest.rows] == [1]
    by_row = {p.row: p.message for p in manifest.problems}
    assert by_row[3] == "The same sku as row 1."
    assert "https" in by_row[6]
    assert "40" in next(p.message for p in manifest.problems if p.field == "cta")


def test_missing_columns_and_bad_structure_are_manifest_problems() -> None:
    assert problems(b"sku,title,image\nA,B,c.jpg\n") == [(None, "description")]
    assert problems(b"sku,title,description,image,sku\n") == [(None, "sku")]
    assert problems(b"") == [(None, "manifest")]
    assert problems(b"sku,title,description,image\n") == [(None, "manifest")]
    assert problems(b"sku,title,description,image\nA,T,D,a.jpg,extra\n") == [(1, "row")]
    assert problems(b'[{"sku": "A"}, 3]')[-1] == (2, "row")
    assert problems(b'{"products": []}') == [(None, "manifest")]
    assert problems(b"[1, 2") == [(None, "manifest")]
    assert problems(b'[{"sku": NaN}]') == [(None, "manifest")]
    assert problems(b"[" * 100_000) == [(None, "manifest")]
    assert problems("sku\n\udcff".encode("utf-8", "surrogateescape")) == [(None, "manifest")]
    assert problems("sku,title".encode("utf-16")) == [(None, "manifest")]
    assert problems(b'sku,title,description,image\n"A,T,D,a.jpg\n') == [(None, "manifest")]


def test_too_many_rows_or_bytes() -> None:
    manifest = parse_manifest(to_csv([product(n) for n in range(25)]), LIMITS)
    assert [p.public() for p in manifest.problems] == [
        {
            "row": None,
            "field": "manifest",
            "message": "At most 20 rows per batch (this manifest has 25).",
        }
    ]
    big = to_csv([product(1, description="d" * 2000) for _ in range(40)])
    assert len(big) > LIMITS.max_bytes
    assert problems(big) == [(None, "manifest")]


def test_sniffing_the_separator() -> None:
    assert sniff_delimiter("sku;title;description;image\na,b") == ";"
    assert sniff_delimiter("sku\ttitle\tdescription") == "\t"
    assert sniff_delimiter("sku") == ","
    assert sniff_delimiter('"a;b",c,d') == ","


@pytest.mark.parametrize(
    "value",
    ["mug.jpg", "Tasse à café.PNG", "a b.webp", "https://cdn.example/p/1.jpg?v=2"],
)
def test_accepted_images(value: str) -> None:
    assert image_problem(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "..",
        "a..b.jpg",
        "/etc/passwd",
        "dir/a.jpg",
        "dir\\a.jpg",
        "http://cdn.example/a.jpg",
        "file:///etc/passwd",
        "https://",
        "https://cdn.example:port/a.jpg",
        "https://cdn.example/a b.jpg",
        "javascript:alert(1)",
    ],
)
def test_refused_images(value: str) -> None:
    assert image_problem(value) is not None


def test_http_links_only_where_private_targets_are_allowed() -> None:
    """OUTBOUND_ALLOW_PRIVATE (development, tests) lets the guard fetch http; nothing else
    that is refused becomes accepted."""
    assert image_problem("http://127.0.0.1:8080/a.jpg", allow_http=True) is None
    assert image_problem("http://127.0.0.1:8080/a.jpg") is not None
    for value in ("file:///etc/passwd", "ftp://cdn.example/a.jpg", "http://u:p@cdn.example/a"):
        assert image_problem(value, allow_http=True) is not None
    limits = ManifestLimits(LIMITS.max_rows, LIMITS.max_bytes, LIMITS.lengths, allow_http=True)
    link = product(1, image="http://127.0.0.1:8080/a.jpg")
    assert parse_manifest(to_csv([link]), LIMITS).problems != []
    assert parse_manifest(to_csv([link]), limits).problems == []


# ----- properties -----

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Text a user could type in a cell: any script, emoji, separators and quotes, no control
# characters (those are refused, see below) and no surrogates (not encodable as UTF-8).
cell = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from(",;\t\"'\n"),
    min_size=1,
    max_size=30,
).filter(lambda t: t.strip() == t and t.strip())
file_name = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\:."),
    min_size=1,
    max_size=20,
).map(lambda t: t.strip() + ".jpg")


@st.composite
def good_rows(draw: st.DrawFn) -> list[dict[str, str]]:
    count = draw(st.integers(1, LIMITS.max_rows))
    skus = draw(st.lists(cell, min_size=count, max_size=count, unique=True))
    return [
        {
            "sku": sku,
            "title": draw(cell),
            "description": draw(cell),
            "image": draw(file_name),
            "price": draw(st.sampled_from(["", "9,99 €", "$5"])),
        }
        for sku in skus
    ]


@PROPERTY
@given(good_rows(), st.sampled_from([",", ";", "\t"]), st.booleans())
def test_any_good_csv_reads_back_exactly(
    rows: list[dict[str, str]], delimiter: str, bom: bool
) -> None:
    manifest = parse_manifest(to_csv(rows, delimiter, bom), LIMITS)
    assert manifest.problems == []
    assert [(r.sku, r.title, r.description, r.image, r.price or "") for r in manifest.rows] == [
        (row["sku"], row["title"], row["description"], row["image"], row["price"]) for row in rows
    ]


@PROPERTY
@given(good_rows())
def test_any_good_json_reads_back_exactly(rows: list[dict[str, str]]) -> None:
    manifest = parse_manifest(json.dumps(rows, ensure_ascii=False).encode(), LIMITS)
    assert manifest.problems == []
    assert [r.sku for r in manifest.rows] == [row["sku"] for row in rows]


@PROPERTY
@given(good_rows(), st.data())
def test_a_bad_cell_is_reported_at_its_row_and_column(
    rows: list[dict[str, str]], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.sampled_from(["title", "description", "image"]))
    bad = {"title": "x" * 121, "description": "", "image": "../" + rows[index]["image"]}
    rows[index][column] = bad[column]
    manifest = parse_manifest(to_csv(rows), LIMITS)
    assert [(p.row, p.field) for p in manifest.problems] == [(index + 1, column)]
    assert len(manifest.rows) == len(rows) - 1


@PROPERTY
@given(st.integers(0, 3 * LIMITS.max_rows))
def test_the_row_limit_holds_for_any_count(count: int) -> None:
    manifest = parse_manifest(to_csv([product(n) for n in range(count)]), LIMITS)
    assert manifest.row_count == count
    over = [p for p in manifest.problems if p.row is None]
    assert bool(over) == (count == 0 or count > LIMITS.max_rows)
    assert len(manifest.rows) == min(count, LIMITS.max_rows)


def _sane(found: list[Problem], row_count: int) -> None:
    for problem in found:
        assert problem.row is None or 1 <= problem.row <= row_count
        assert problem.field in (*FIELDS, "manifest", "row")
        assert problem.message


@PROPERTY
@given(st.binary(max_size=2000))
def test_any_bytes_never_crash(data: bytes) -> None:
    manifest = parse_manifest(data, LIMITS)
    _sane(manifest.problems, manifest.row_count)


@PROPERTY
@given(
    st.lists(
        st.lists(st.text(max_size=12), max_size=8),
        max_size=12,
    ),
    st.sampled_from([",", ";", "\t", "|"]),
    st.booleans(),
)
def test_any_table_of_text_never_crashes(cells: list[list[str]], delimiter: str, bom: bool) -> None:
    text = "\n".join(delimiter.join(row) for row in [HEADER[:4], *cells])
    manifest = parse_manifest((b"\xef\xbb\xbf" if bom else b"") + text.encode(), LIMITS)
    _sane(manifest.problems, manifest.row_count)
    good = {r.number for r in manifest.rows}
    bad = {p.row for p in manifest.problems if p.row is not None}
    assert not good & bad
    assert len(good | bad) <= manifest.row_count


@PROPERTY
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from([*FIELDS, "rows", "x"]), inner, max_size=5)
        ),
        max_leaves=30,
    )
)
def test_any_json_never_crashes(value: Any) -> None:
    data = json.dumps(value).encode()
    manifest = parse_manifest(data, LIMITS, filename="rows.json")
    _sane(manifest.problems, manifest.row_count)
