"""A catalogue request checked whole: the manifest, the photos zip and the variants, every
problem found (never only the first), nothing stored. The batch endpoints call `check_batch`
and answer 422 with `problems` when there are any.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO

from common.errors import ApiError
from gateway.catalogue.manifest import Manifest, ManifestLimits, Problem, Row, parse_manifest
from gateway.catalogue.photos_zip import PhotoRefused, PhotosZip, ZipLimits, ZipRefused
from gateway.catalogue.variants import ResolvedVariant, parse_variants
from gateway.core.config import GatewaySettings
from gateway.images import Decoder, NormalizedImage

PHOTOS = "photos"
# What a batch endpoint does with each photo of the zip once it passed the checks (store
# it, say); the quote keeps none.
PhotoSink = Callable[[str, NormalizedImage], Awaitable[None]]


@dataclass
class Intake:
    manifest: Manifest
    variants: list[ResolvedVariant]
    problems: list[Problem] = field(default_factory=list)
    photos_checked: int = 0  # distinct photos of the zip read and checked

    @property
    def rows(self) -> list[Row]:
        """The rows without any problem (all of them when `problems` is empty)."""
        refused = {p.row for p in self.problems}
        return [row for row in self.manifest.rows if row.number not in refused]

    def error(self) -> ApiError:
        return ApiError(
            422,
            "validation_error",
            f"The batch is not valid: {len(self.problems)} problem(s), every one in details; "
            "nothing was stored.",
            details=[p.public() for p in self.problems],
        )


def _variants(text: str | None, problems: list[Problem]) -> list[ResolvedVariant]:
    try:
        return parse_variants(text)
    except ApiError as e:
        problems.extend(Problem(d["row"], d["field"], d["message"]) for d in e.details)
        return []


async def _check_photos(
    rows: list[Row],
    photos: PhotosZip | None,
    zip_refused: bool,
    decoder: Decoder,
    sink: PhotoSink | None,
    problems: list[Problem],
) -> int:
    """Each file the manifest names read once from the zip and checked like an upload; a
    problem for every row naming one that is missing or refused."""
    by_name: dict[str, list[Row]] = {}
    for row in rows:
        if row.image_url is None:
            by_name.setdefault(row.image, []).append(row)
    if not by_name or zip_refused:
        return 0
    if photos is None:
        problems.extend(
            Problem(row.number, "image", "Names a file, but no photos zip was sent.")
            for named in by_name.values()
            for row in named
        )
        return 0
    checked = 0
    for name, named in by_name.items():
        try:
            data = await asyncio.to_thread(photos.read, name)
            image = await decoder.normalize_bytes(data)
            del data
            checked += 1
            if sink is not None:
                await sink(name, image)
            continue
        except PhotoRefused as e:
            message = e.message
        except ApiError as e:
            if e.status == 503:  # the gateway is busy: the request, not the photo
                raise
            message = f"{name!r}: {e.message}"
        problems.extend(Problem(row.number, "image", message) for row in named)
    return checked


async def check_batch(
    settings: GatewaySettings,
    decoder: Decoder,
    *,
    manifest: bytes,
    manifest_name: str | None,
    photos: IO[bytes] | None,
    variants: str | None,
    sink: PhotoSink | None = None,
) -> Intake:
    """Everything about a batch request that can be known without fetching a link: see
    the module's docstring. Raises only when the gateway cannot check (503 busy)."""
    problems: list[Problem] = []
    resolved = _variants(variants, problems)
    parsed = await asyncio.to_thread(
        parse_manifest, manifest, ManifestLimits.from_settings(settings), filename=manifest_name
    )
    problems.extend(parsed.problems)
    opened: PhotosZip | None = None
    zip_refused = False
    if photos is not None:
        try:
            opened = await asyncio.to_thread(PhotosZip, photos, ZipLimits.from_settings(settings))
        except ZipRefused as e:
            zip_refused = True
            problems.extend(Problem(None, PHOTOS, message) for message in e.problems)
    intake = Intake(parsed, resolved, problems)
    try:
        intake.photos_checked = await _check_photos(
            intake.rows, opened, zip_refused, decoder, sink, problems
        )
    finally:
        if opened is not None:
            opened.close()
    problems.sort(key=_order)
    return intake


def _order(problem: Problem) -> tuple[bool, int]:
    return (problem.row is not None, problem.row or 0)
