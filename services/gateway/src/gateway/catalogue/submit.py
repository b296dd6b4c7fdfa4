"""Making a batch: the whole request checked (the manifest, the zip's photos, every photo
link fetched through the SSRF guard), then the batch document and one product per row
(`gateway.products.submit_product`: one photo, one prompt, one job per variant).

Nothing is stored unless every row is good: the photos are held in memory until then.
The same Idempotency-Key from the same owner answers the batch it made, never a second
one (409 when the request differs).
"""

import hashlib
import json
from dataclasses import dataclass
from typing import IO, Any

from common.errors import ApiError
from common.jobs import new_job_id
from gateway.catalogue.batches import Batch
from gateway.catalogue.intake import Intake, check_batch
from gateway.catalogue.manifest import Row
from gateway.catalogue.photo_links import fetch_photos
from gateway.core.services import Services
from gateway.images import NormalizedImage
from gateway.models import JobCreate
from gateway.products import submit_product
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


async def _checked(
    services: Services, request: BatchRequest
) -> tuple[Intake, dict[str, NormalizedImage]]:
    """The intake with every problem (links included), and the photos by zip name or
    link; raises the 422 when there is any problem."""
    s = services.settings
    photos: dict[str, NormalizedImage] = {}

    async def keep(name: str, image: NormalizedImage) -> None:
        photos[name] = image

    intake = await check_batch(
        s,
        services.decoder,
        manifest=request.manifest,
        manifest_name=request.manifest_name,
        photos=request.photos,
        variants=request.variants,
        sink=keep,
    )
    fetched, problems = await fetch_photos(
        intake.rows,
        services.outbound,
        services.decoder,
        concurrency=s.batch_links_concurrency,
        deadline=s.batch_link_timeout_seconds,
    )
    photos.update(fetched)
    if problems:
        intake.problems.extend(problems)
        intake.problems.sort(key=lambda p: (p.row is not None, p.row or 0))
    if intake.problems:
        raise intake.error()
    return intake, photos


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
    request_print = fingerprint(request)
    earlier = await services.batches.earlier(owner, request.idempotency_key)
    if earlier is not None:
        return _replay(earlier, request_print), False
    intake, photos = await _checked(services, request)

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
            made = await submit_product(
                services,
                owner=owner,
                client_ip=client_ip,
                create=_shared_fields(services, row, request.regenerate),
                image=photos[row.image_url or row.image],
                variants=intake.variants,
                batch_id=batch["_id"],
                sku=row.sku,
                row=row.number,
                free_tier=False,
            )
            rows.append(
                {
                    "row": row.number,
                    "sku": row.sku,
                    "title": row.title,
                    "product_id": made.product["_id"],
                    "job_ids": [job["_id"] for job in made.jobs],
                }
            )
    finally:
        # What was made is kept (its jobs are queued); a batch with nothing made is not.
        if rows:
            updated = await services.batches.set_rows(batch["_id"], rows)
        else:
            await services.batches.delete(batch["_id"])
    return updated or batch, True
