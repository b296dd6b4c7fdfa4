"""The manifest of a catalogue: one row per product, as CSV or JSON, read and checked whole.

CSV has a header row naming the columns (in any order, any case; unknown columns are ignored),
is UTF-8 with or without a BOM, and is separated by commas, semicolons or tabs (whichever the
header uses most). JSON is a list of objects, or `{"rows": [...]}`. Each row gives `sku`,
`title`, `description` and `image` (a file name inside the photos zip, or an `https` link),
and optionally `cta`, `price` and `style`.

`parse_manifest` never raises on any input: it returns the rows that are fine and every
problem found, each naming its row (1 is the first product: the line after the header, or the
first object) and field, or row None for the manifest as a whole.
"""

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from common.brief import CTA_MAX_CHARS, PRICE_MAX_CHARS
from gateway.core.config import GatewaySettings
from gateway.submission import _text_field

REQUIRED = ("sku", "title", "description", "image")
OPTIONAL = ("cta", "price", "style")
FIELDS = REQUIRED + OPTIONAL
DELIMITERS = (",", ";", "\t")
URL_MAX_LENGTH = 2048
FILE_NAME_MAX_LENGTH = 255
# Before the manifest's rows: a whole manifest problem.
MANIFEST = "manifest"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

Format = Literal["csv", "json"]


@dataclass(frozen=True)
class ManifestLimits:
    max_rows: int
    max_bytes: int
    lengths: dict[str, int]  # the longest each text field may be
    # `http` links too (OUTBOUND_ALLOW_PRIVATE: development and tests only).
    allow_http: bool = False

    @classmethod
    def from_settings(cls, s: GatewaySettings) -> "ManifestLimits":
        return cls(
            max_rows=s.batch_max_rows,
            max_bytes=s.batch_manifest_max_bytes,
            lengths={
                "sku": s.sku_max_length,
                "title": s.title_max_length,
                "description": s.description_max_length,
                "style": s.style_max_length,
                "cta": CTA_MAX_CHARS,
                "price": PRICE_MAX_CHARS,
                "image": URL_MAX_LENGTH,
            },
            allow_http=s.outbound_allow_private,
        )


@dataclass(frozen=True)
class Problem:
    row: int | None  # None: the manifest (or request) as a whole
    field: str
    message: str

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Row:
    number: int
    sku: str
    title: str
    description: str
    image: str
    cta: str | None = None
    price: str | None = None
    style: str | None = None

    @property
    def image_url(self) -> str | None:
        """The `https` link, when the photo is not a file of the zip."""
        return self.image if _SCHEME.match(self.image) else None


@dataclass
class Manifest:
    format: Format | None = None
    row_count: int = 0  # products listed, good or not
    rows: list[Row] = field(default_factory=list)  # those without a problem
    problems: list[Problem] = field(default_factory=list)

    def refuse(self, message: str, row: int | None = None, name: str = MANIFEST) -> None:
        self.problems.append(Problem(row, name, message))


def image_problem(value: str, *, allow_http: bool = False) -> str | None:
    """Why `value` is neither a plain file name nor an `https` link (None: it is one).
    Links are checked as text only: they are fetched later, through the SSRF guard."""
    if _SCHEME.match(value):
        if any(c.isspace() for c in value):
            return "A link may not contain spaces."
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            return "This link is not valid."
        if parts.scheme.lower() not in (("https", "http") if allow_http else ("https",)):
            return f"Only https links are accepted, not {parts.scheme}."
        if not parts.hostname:
            return "The link names no host."
        if parts.username is not None or parts.password is not None:
            return "The link may not contain a user name or password."
        return None
    if len(value) > FILE_NAME_MAX_LENGTH:
        return f"A file name has at most {FILE_NAME_MAX_LENGTH} characters."
    if "/" in value or "\\" in value:
        return "A file name in the photos zip, without folders (no / or \\)."
    if ".." in value:
        return "A file name may not contain '..'."
    if ":" in value:
        return "Neither a file name (no ':') nor an https link."
    return None


def _decode(data: bytes, manifest: Manifest) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        manifest.refuse("The manifest is UTF-16 text; save it as UTF-8.")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        manifest.refuse(f"The manifest is not UTF-8 text (byte {e.start + 1} is not).")
        return None


def _format(text: str, filename: str | None) -> Format:
    name = (filename or "").lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    return "json" if text.lstrip()[:1] in ("[", "{") else "csv"


def sniff_delimiter(text: str) -> str:
    """The separator the header line uses most (commas on a tie or when none is used)."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # the first of the most used
    return best if counts[best] else ","


def _csv_rows(text: str, manifest: Manifest) -> Iterator[tuple[int, dict[str, Any]]]:
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number = 0
    try:
        header = next(reader, None)
        if header is None:
            manifest.refuse("The manifest is empty.")
            return
        names = [name.strip().lower() for name in header]
        for name in FIELDS:
            if names.count(name) > 1:
                manifest.refuse(f"The header names the {name} column twice.", name=name)
        missing = [name for name in REQUIRED if name not in names]
        for name in missing:
            manifest.refuse(
                f"The header has no {name} column (it needs {', '.join(REQUIRED)}).",
                name=name,
            )
        if len(manifest.problems):
            return
        columns = {name: names.index(name) for name in FIELDS if name in names}
        for values in reader:
            if not any(value.strip() for value in values):
                continue  # blank lines, and the empty rows spreadsheets leave at the end
            number += 1
            if len(values) > len(names) and any(v.strip() for v in values[len(names) :]):
                manifest.refuse(
                    f"This row has {len(values)} values; the header names {len(names)} "
                    "columns (a value with the separator in it needs quotes).",
                    row=number,
                    name="row",
                )
                yield number, {}
                continue
            yield (
                number,
                {
                    name: values[index] if index < len(values) else None
                    for name, index in columns.items()
                },
            )
    except csv.Error as e:
        manifest.refuse(f"The CSV cannot be read after row {number} (line {reader.line_num}): {e}.")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _json_rows(text: str, manifest: Manifest) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        manifest.refuse(f"The manifest is not valid JSON: {e.msg} (line {e.lineno}).")
        return
    except (ValueError, RecursionError) as e:
        why = "it is nested too deeply" if isinstance(e, RecursionError) else str(e)
        manifest.refuse(f"The manifest is not valid JSON: {why}.")
        return
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        data = data["rows"]
    if not isinstance(data, list):
        manifest.refuse('A JSON manifest is a list of objects, or {"rows": [...]}.')
        return
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            manifest.refuse(
                "Each row is an object with sku, title, description, image.", number, "row"
            )
            yield number, {}
            continue
        values: dict[str, Any] = {}
        for key, value in item.items():
            name = str(key).strip().lower()
            if name in FIELDS:
                values[name] = value
        yield number, values


def _text(value: Any) -> str | None:
    """A JSON value as text: strings as they are, numbers as written (an sku or a price)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError


def _check_row(
    number: int,
    values: dict[str, Any],
    limits: ManifestLimits,
    manifest: Manifest,
    first_row: dict[str, int],
) -> Row | None:
    checked: dict[str, str | None] = {}
    problems = []
    for name in FIELDS:
        try:
            raw = _text(values.get(name))
        except TypeError:
            problems.append(Problem(number, name, "Must be text."))
            continue
        text, problem = _text_field(name, raw, limits.lengths[name], required=name in REQUIRED)
        if problem is not None:
            problems.append(Problem(number, name, problem["message"]))
        checked[name] = text
    image = checked.get("image")
    if image is not None and (why := image_problem(image, allow_http=limits.allow_http)):
        problems.append(Problem(number, "image", why))
    sku = checked.get("sku")
    if sku is not None:
        if sku in first_row:
            problems.insert(0, Problem(number, "sku", f"The same sku as row {first_row[sku]}."))
        else:
            first_row[sku] = number
    if problems:
        manifest.problems.extend(problems)
        return None
    return Row(
        number=number,
        sku=checked["sku"] or "",
        title=checked["title"] or "",
        description=checked["description"] or "",
        image=checked["image"] or "",
        cta=checked["cta"],
        price=checked["price"],
        style=checked["style"],
    )


def parse_manifest(data: bytes, limits: ManifestLimits, *, filename: str | None = None) -> Manifest:
    """Every row of the manifest checked; see the module's docstring."""
    manifest = Manifest()
    if len(data) > limits.max_bytes:
        manifest.refuse(f"The manifest is larger than {limits.max_bytes:,} bytes.")
        return manifest
    text = _decode(data, manifest)
    if text is None:
        return manifest
    if "\x00" in text:
        manifest.refuse("The manifest contains NUL characters: it is not a text file.")
        return manifest
    manifest.format = _format(text, filename)
    rows = _json_rows(text, manifest) if manifest.format == "json" else _csv_rows(text, manifest)
    first_row: dict[str, int] = {}
    for number, values in rows:
        manifest.row_count = number
        if number > limits.max_rows or not values:
            continue  # past the limit (reported below), or already refused
        row = _check_row(number, values, limits, manifest, first_row)
        if row is not None:
            manifest.rows.append(row)
    if manifest.row_count > limits.max_rows:
        manifest.refuse(
            f"At most {limits.max_rows} rows per batch (this manifest has {manifest.row_count})."
        )
    elif manifest.row_count == 0 and not manifest.problems:
        manifest.refuse("The manifest lists no products.")
    manifest.problems.sort(key=lambda p: (p.row is not None, p.row or 0))
    return manifest
