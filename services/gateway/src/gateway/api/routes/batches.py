"""Catalogues: many products from one manifest (docs/catalogues.md)."""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Path, Request, Response, UploadFile

from common.batches import (
    CANCELED,
    COMPLETED,
    FINAL,
    RUNNING,
    Batch,
    all_final,
    batch_view,
)
from common.errors import ApiError
from common.views import API_PREFIX, download_url
from gateway.api.deps import BatchesWriteDep, ClientIpDep, ServicesDep, SettingsDep
from gateway.catalogue.export import export_csv
from gateway.catalogue.intake import check_batch
from gateway.catalogue.models import BatchPublic, BatchQuote
from gateway.catalogue.quote import current_pricing, quote
from gateway.catalogue.submit import BatchRequest, make_batch
from gateway.catalogue.variants import MAX_VARIANTS
from gateway.core.config import GatewaySettings
from gateway.core.services import Services
from gateway.images import read_upload, too_large
from gateway.models import error_responses
from gateway.submission import validate_idempotency_key

log = logging.getLogger(__name__)

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
RegenerateField = Annotated[
    bool,
    Form(
        description="true: make every clip anew, even those an earlier job of yours made "
        "from exactly the same photo, text and options (reused by default)."
    ),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retrying with the same key answers the same batch, never a second one.",
    ),
]
BatchIdPath = Annotated[str, Path(max_length=64, description="The batch id.")]
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
    photos = _photos_or_none(settings, photos)
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


def _photos_or_none(settings: GatewaySettings, photos: UploadFile | None) -> UploadFile | None:
    if photos is not None and not photos.filename and not photos.size:
        return None  # a form's file input left empty
    if photos is not None and (photos.size or 0) > settings.batch_photos_max_bytes:
        raise too_large(settings.batch_photos_max_bytes)
    return photos


async def _view(services: Services, batch: Batch) -> dict[str, Any]:
    jobs = await services.batches.jobs_of(batch)
    if "announced" not in batch and batch["status"] != COMPLETED and all_final(batch, jobs):
        # The workers end a batch as its last job ends; this catches one whose jobs all
        # ended while this gateway was still storing its rows (and a cancel's own end).
        await services.pipeline.end_batch_if_done(batch["_id"])
        batch = await services.batches.get(batch["_id"], batch["owner"]) or batch
    return batch_view(batch, jobs)


@router.post(
    "",
    status_code=202,
    response_model=BatchPublic,
    summary="Make a batch: one product per manifest row, one job per variant",
    responses={
        200: {"model": BatchPublic, "description": "A replay of an earlier Idempotency-Key."},
        **error_responses(401, 403, 409, 413, 422, 503),
    },
    description="Needs a session or an API key with `batches:write`. The same input as "
    "the quote. Every row is checked first (photo links fetched through the SSRF guard and "
    "checked like uploads): any problem is a 422 listing every one as `{row, field, "
    "message}`, and nothing is stored or queued. Otherwise the batch is made and its jobs "
    "queued: 202 with the batch.",
)
async def create_batch(
    services: ServicesDep,
    owner: BatchesWriteDep,
    settings: SettingsDep,
    client_ip: ClientIpDep,
    response: Response,
    manifest: ManifestFile,
    photos: PhotosFile = None,
    variants: VariantsField = None,
    max_cost_usd: MaxCostField = None,
    regenerate: RegenerateField = False,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    key = validate_idempotency_key(settings, idempotency_key)
    data = await read_upload(manifest, settings.batch_manifest_max_bytes)
    photos = _photos_or_none(settings, photos)
    batch, created = await make_batch(
        services,
        owner=str(owner.email),
        client_ip=client_ip,
        request=BatchRequest(
            manifest=data,
            manifest_name=manifest.filename,
            photos=photos.file if photos is not None else None,
            variants=variants,
            max_cost_usd=max_cost_usd,
            regenerate=regenerate,
            idempotency_key=key,
        ),
    )
    if created:
        log.info("batch made: %d jobs", batch.get("jobs_total", 0))
    else:
        response.status_code = 200
    return await _view(services, batch)


async def get_owned_batch(
    batch_id: BatchIdPath, owner: BatchesWriteDep, services: ServicesDep
) -> Batch:
    """The batch, if the caller made it; 404 alike for other people's and missing ones."""
    batch = await services.batches.get(batch_id, str(owner.email))
    if batch is None:
        raise ApiError(404, "batch_not_found", "No such batch.")
    return batch


OwnedBatchDep = Annotated[Batch, Depends(get_owned_batch)]


@router.get(
    "/{batch_id}",
    response_model=BatchPublic,
    summary="A batch: its jobs counted by status, its cost so far, each row's jobs",
    responses=error_responses(401, 403, 404),
    description="Only the batch's owner (a session, or an API key with `batches:write`).",
)
async def get_batch(batch: OwnedBatchDep, services: ServicesDep) -> dict[str, Any]:
    return await _view(services, batch)


@router.get(
    "/{batch_id}/export.csv",
    summary="A batch as CSV: one line per job",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The CSV file."},
        **error_responses(401, 403, 404),
    },
    description="Columns: row, sku, variant, preset, aspect_ratio, duration, status, "
    "video_url, poster_url (signed links, valid for minutes, as the job routes give), "
    "error_code, error_message. A cell starting with `=`, `+`, `-` or `@` is prefixed with "
    "`'` so that spreadsheets show it as text.",
)
async def export_batch(batch: OwnedBatchDep, services: ServicesDep, request: Request) -> Response:
    jobs = await services.batches.jobs_of(batch)
    base = str(request.base_url).rstrip("/")

    async def link(key: str) -> str:
        url = await download_url(key, services.storage, services.signer)
        return url if "://" in url else base + url  # a spreadsheet needs the whole address

    text = await export_csv(batch, jobs, batch["variants"], link)
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="batch-{batch["_id"]}.csv"',
            "Cache-Control": "no-store",  # the links in it are signed
        },
    )


@router.post(
    "/{batch_id}/cancel",
    response_model=BatchPublic,
    summary="Cancel what has not finished",
    responses=error_responses(401, 403, 404),
    description="Every job of the batch that is not final is canceled (as `POST "
    "/api/v1/jobs/{id}/cancel` does); finished jobs keep their result. Answers the batch.",
)
async def cancel_batch(batch: OwnedBatchDep, services: ServicesDep) -> dict[str, Any]:
    if batch["status"] == RUNNING:
        # First, so that the end of its last job (canceled below) leaves it canceled.
        batch = await services.batches.finish(batch, CANCELED)
    jobs = await services.batches.jobs_of(batch)
    for job_id, job in jobs.items():
        if job["status"] not in FINAL:
            await services.pipeline.cancel(job_id)  # None: it ended meanwhile
    return await _view(services, batch)
