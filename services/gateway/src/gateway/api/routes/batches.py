"""Catalogues: many products from one manifest (docs/catalogues.md)."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from common.views import API_PREFIX
from gateway.api.deps import BatchesWriteDep, ServicesDep, SettingsDep
from gateway.catalogue.intake import check_batch
from gateway.catalogue.models import BatchQuote
from gateway.catalogue.quote import current_pricing, quote
from gateway.catalogue.variants import MAX_VARIANTS
from gateway.images import read_upload, too_large
from gateway.models import error_responses

router = APIRouter(prefix=f"{API_PREFIX}/batches", tags=["batches"])

ManifestFile = Annotated[
    UploadFile,
    File(
        description="CSV (header row; `,` `;` or tab) or JSON: sku, title, description, "
        "image (a file name in `photos`, or an https link), and optional cta, price, style."
    ),
]
PhotosFile = Annotated[
    UploadFile | None, File(description="A zip of the photos the manifest names by file name.")
]
VariantsField = Annotated[
    str | None,
    Form(
        description=f"A JSON list of 1-{MAX_VARIANTS} "
        '`{"preset"|"aspect_ratio", "duration"}`, made for every row; default: one 9:16 '
        "clip of 5 s."
    ),
]
MaxCostField = Annotated[
    float | None, Form(gt=0, description="The most the batch may spend, in US dollars.")
]


@router.post(
    "/quote",
    response_model=BatchQuote,
    summary="What a batch would cost, and what would be refused",
    responses=error_responses(401, 403, 413, 422, 503),
    description="Needs a session or an API key with `batches:write`. Checks the manifest, "
    "the photos zip and the variants as `POST "
    "/api/v1/batches` would, and stores and queues nothing. Any bad row: 422 with every "
    "problem in `details` as `{row, field, message}`. Photo links are checked as text "
    "(https only); they are fetched when the batch is made.",
)
async def quote_batch(
    services: ServicesDep,
    owner: BatchesWriteDep,
    settings: SettingsDep,
    manifest: ManifestFile,
    photos: PhotosFile = None,
    variants: VariantsField = None,
    max_cost_usd: MaxCostField = None,
) -> dict[str, Any]:
    data = await read_upload(manifest, settings.batch_manifest_max_bytes)
    if photos is not None and not photos.filename and not photos.size:
        photos = None  # a form's file input left empty
    if photos is not None and (photos.size or 0) > settings.batch_photos_max_bytes:
        raise too_large(settings.batch_photos_max_bytes)
    intake = await check_batch(
        settings,
        services.decoder,
        manifest=data,
        manifest_name=manifest.filename,
        photos=photos.file if photos is not None else None,
        variants=variants,
    )
    if intake.problems:
        raise intake.error()
    pricing = await current_pricing(settings, services.video_models)
    return quote(intake.rows, intake.variants, pricing, max_cost_usd)
