"""Making a batch: the whole request checked (the manifest, the zip's photos, every photo
link fetched through the SSRF guard), then the batch document and one product per row
(`gateway.products.submit_product`: one photo, one prompt, one job per variant).

Nothing is stored unless every row is good: the photos wait in a temporary file
(`PhotoSpool`) until then.
The same Idempotency-Key from the same owner answers the batch it made, never a second
one (409 when the request differs).
"""

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import IO, Any

from common.batches import Batch
from common.errors import ApiError
from common.jobs import new_job_id
from gateway.catalogue.intake import Intake, check_batch
from gateway.catalogue.manifest import Row
from gateway.catalogue.photo_links import fetch_photos
from gateway.catalogue.photo_spool import PhotoSpool
from gateway.core.services import Services
from gateway.images import NormalizedImage
from gateway.models import JobCreate
from gateway.products import PRODUCTS, submit_product
from gateway.submission import OptionFields, validate_fields

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BatchRequest:
    manifest: bytes
    manifest_name: str | None
    photos: IO[bytes] | None
    variants: str | None
    max_cost_usd: float | None
    regenerate: bool
    idempotency_key: str | None


def _sha256(file: IO[bytes] | None) -> str | None:
    if file is None:
        return None
    digest = hashlib.sha256()
    file.seek(0)
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def _canonical_variants(text: str | None) -> Any:
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def fingerprint(request: BatchRequest) -> str:
    """What makes two batch requests the same request (for an Idempotency-Key)."""
    canonical = json.dumps(
        {
            "manifest": hashlib.sha256(request.manifest).hexdigest(),
            "photos": _sha256(request.photos),
            "variants": _canonical_variants(request.variants),
            "max_cost_usd": request.max_cost_usd,
            "regenerate": request.regenerate,
        },
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(batch: Batch, fingerprint: str) -> Batch:
    if batch.get("request_fingerprint") != fingerprint:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request.",
        )
    return batch


async def _checked(services: Services, request: BatchRequest, spool: PhotoSpool) -> Intake:
    """The intake, its photos (by zip name or link) in `spool`; raises the 422 with every
    problem (the links' too) when there is any."""
    s = services.settings

    async def keep(name: str, image: NormalizedImage) -> None:
        await asyncio.to_thread(spool.put, name, image)

    intake = await check_batch(
        s,
        services.decoder,
        manifest=request.manifest,
        manifest_name=request.manifest_name,
        photos=request.photos,
        variants=request.variants,
        sink=keep,
    )
    problems = await fetch_photos(
        intake.rows,
        services.outbound,
        services.decoder,
        keep,
        concurrency=s.batch_links_concurrency,
        deadline=s.batch_link_timeout_seconds,
    )
    if problems:
        intake.problems.extend(problems)
        intake.problems.sort(key=lambda p: (p.row is not None, p.row or 0))
    if intake.problems:
        raise intake.error()
    return intake


def _row(row: Row, product: dict[str, Any], job_ids: list[str]) -> dict[str, Any]:
    return {
        "row": row.number,
        "sku": row.sku,
        "title": row.title,
        "product_id": product["_id"],
        "job_ids": job_ids,
    }


def _shared_fields(services: Services, row: Row, regenerate: bool) -> JobCreate:
    """The row's text and ad options, shared by its variants' jobs."""
    return validate_fields(
        services.settings,
        title=row.title,
        description=row.description,
        style=row.style,
        options=OptionFields(cta=row.cta, price=row.price),
        regenerate=regenerate,
    )


async def make_batch(
    services: Services, *, owner: str, client_ip: str, request: BatchRequest
) -> tuple[Batch, bool]:
    """The batch (new, or the one an earlier request with the Idempotency-Key made) and
    whether it was made now."""
    request_print = await asyncio.to_thread(fingerprint, request)  # reads the whole zip
    earlier = await services.batches.earlier(owner, request.idempotency_key)
    if earlier is not None:
        return _replay(earlier, request_print), False
    with PhotoSpool() as spool:
        intake = await _checked(services, request, spool)
        return await _make(services, owner, client_ip, request, request_print, intake, spool)


async def _make(
    services: Services,
    owner: str,
    client_ip: str,
    request: BatchRequest,
    request_print: str,
    intake: Intake,
    spool: PhotoSpool,
) -> tuple[Batch, bool]:
    """The batch document, then one product per row (whatever was made is kept)."""
    document: Batch = {
        "_id": new_job_id(),
        "owner": owner,
        "rows": [],
        "jobs_total": 0,
        "variants": [v.public() for v in intake.variants],
        "max_cost_usd": request.max_cost_usd,
        "request_fingerprint": request_print,
    }
    if request.regenerate:
        document["regenerate"] = True
    if request.idempotency_key is not None:
        document["idempotency_key"] = request.idempotency_key
    batch, created = await services.batches.create(document)
    if not created:  # a concurrent request with the same key won the insert
        return _replay(batch, request_print), False

    rows: list[dict[str, Any]] = []
    updated: Batch | None = None
    try:
        for row in intake.rows:
            try:
                made = await submit_product(
                    services,
                    owner=owner,
                    client_ip=client_ip,
                    create=_shared_fields(services, row, request.regenerate),
                    image=await asyncio.to_thread(spool.get, row.image_url or row.image),
                    variants=intake.variants,
                    batch_id=batch["_id"],
                    sku=row.sku,
                    row=row.number,
                    free_tier=False,
                )
            except ApiError as e:
                # Made, but its jobs could not all be queued (they failed, retryable): the
                # batch lists them, so that its owner sees them and can retry them.
                if isinstance(e.details, dict) and "product_id" in e.details:
                    product = await services.db[PRODUCTS].find_one({"_id": e.details["product_id"]})
                    if product is not None:
                        rows.append(_row(row, product, product["job_ids"]))
                raise
            rows.append(_row(row, made.product, [job["_id"] for job in made.jobs]))
    finally:
        # What was made is kept (its jobs are queued); a batch with nothing made is not.
        if rows:
            updated = await services.batches.set_rows(batch["_id"], rows)
        else:
            await services.batches.delete(batch["_id"])
    return updated or batch, True
