"""Products: one photo, one prompt and brief, one job per variant (docs/catalogues.md).

`submit_product` is the one way a product is made, by `POST /api/v1/jobs` with `variants`
and by the batch endpoints (one product per manifest row). It stores the photo once
(`uploads/{product_id}/source.{ext}`, named by every variant's job), the product document
(collection `products`) and a job per variant (`product_id`, `variant`: its index), and
announces each job. The prompt stage writes the product's prompt and brief once for all
of its jobs (services/prompt, `products.py`).

Every variant is a video for the free tier: a unit of each limit and a running-jobs entry
per job, all taken before anything is stored, all given back if one does not fit (429
saying how many videos the request asked for): a product is made whole or not at all.
"""

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from fastapi import UploadFile
from pymongo.errors import DuplicateKeyError

from common.errors import ApiError
from common.events import JobSubmitted
from common.jobs import Job, new_job_id, now
from common.logs import job_id_var
from common.metrics import JOBS_SUBMITTED
from common.storage import upload_key
from gateway.catalogue.variants import ResolvedVariant, parse_variants
from gateway.core.config import GatewaySettings
from gateway.core.services import Services
from gateway.images import NormalizedImage, read_upload
from gateway.limits import Taken
from gateway.models import JobCreate, JobOptions
from gateway.submission import (
    OptionFields,
    fail_unqueued,
    free_tier_limits,
    request_fingerprint,
    validate_fields,
)

log = logging.getLogger(__name__)

PRODUCTS = "products"  # its indexes: common.db.ensure_indexes
# The options a variant sets; every other option is the product's, shared by its jobs.
VARIANT_OPTIONS = ("aspect_ratio", "duration", "preset")


@dataclass(frozen=True)
class ProductSubmission:
    product: dict[str, Any]
    jobs: list[Job]  # in the order of the variants
    created: bool  # False: a replay of an earlier Idempotency-Key


def variant_options(options: JobOptions, variant: ResolvedVariant) -> JobOptions:
    return options.model_copy(
        update={
            "aspect_ratio": variant.aspect_ratio,
            "duration": variant.duration,
            "preset": variant.preset,
        }
    )


def product_fingerprint(
    create: JobCreate, image_sha256: str, variants: Sequence[ResolvedVariant]
) -> str:
    """What makes two product submissions the same request (for an Idempotency-Key)."""
    canonical = json.dumps(
        {
            "product": request_fingerprint(create, image_sha256),
            "variants": [v.public() for v in variants],
        },
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _earlier(services: Services, owner: str, key: str) -> dict[str, Any] | None:
    return await services.db[PRODUCTS].find_one({"owner": owner, "idempotency_key": key})


async def _jobs_of(services: Services, product: dict[str, Any]) -> list[Job]:
    found = {
        job["_id"]: job async for job in services.repo.jobs.find({"product_id": product["_id"]})
    }
    return [found[job_id] for job_id in product["job_ids"] if job_id in found]


async def _replay(
    services: Services, product: dict[str, Any], fingerprint: str
) -> ProductSubmission:
    if product.get("request_fingerprint") != fingerprint:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request.",
        )
    return ProductSubmission(product, await _jobs_of(services, product), created=False)


async def replay_product(
    services: Services,
    *,
    owner: str,
    idempotency_key: str | None,
    create: JobCreate,
    variants: Sequence[ResolvedVariant],
    upload: UploadFile,
) -> ProductSubmission | None:
    """The answer to a replay of an earlier Idempotency-Key, from the stored product (the
    photo hashed, never decoded); None when the key is new or absent."""
    if idempotency_key is None:
        return None
    product = await _earlier(services, owner, idempotency_key)
    if product is None:
        return None
    data = await read_upload(upload, services.settings.max_upload_bytes)
    sha256 = hashlib.sha256(data).hexdigest()
    return await _replay(services, product, product_fingerprint(create, sha256, variants))


async def refuse_key_of_other_kind(
    services: Services, *, owner: str, idempotency_key: str | None, product: bool
) -> None:
    """409 when the key was used for the other kind of request (a single job for a product
    request, or the other way round): a key names one request."""
    if idempotency_key is None:
        return
    other = services.db[PRODUCTS] if not product else services.repo.jobs
    if await other.find_one({"owner": owner, "idempotency_key": idempotency_key}, {"_id": 1}):
        raise ApiError(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request.",
        )


@asynccontextmanager
async def _reserve_all(
    services: Services, owner: str, client_ip: str, job_ids: list[str]
) -> AsyncIterator[list[Taken]]:
    """Room for every variant's video, or for none (see the module's docstring)."""
    s = services.settings
    async with AsyncExitStack() as stack:
        taken: list[Taken] = []
        try:
            for job_id in job_ids:
                reserve = services.limiter.reserve(
                    owner,
                    s.free_running_jobs_per_email,
                    free_tier_limits(s, owner, client_ip),
                    job_id=job_id,
                )
                taken.append(await stack.enter_async_context(reserve))
        except ApiError as e:
            if e.status != 429 or len(job_ids) == 1:
                raise
            raise ApiError(
                429,
                e.code,
                f"This product has {len(job_ids)} variants, each one video, and they do not "
                f"all fit: nothing was made. {e.message}",
                details={**(e.details or {}), "videos_asked": len(job_ids)},
                headers=e.headers,
            ) from e
        yield taken


async def submit_product(
    services: Services,
    *,
    owner: str,
    client_ip: str,
    create: JobCreate,
    image: NormalizedImage,
    variants: Sequence[ResolvedVariant],
    idempotency_key: str | None = None,
    batch_id: str | None = None,
    sku: str | None = None,
    row: int | None = None,
    free_tier: bool = True,
) -> ProductSubmission:
    """Store the photo once, the product and one job per variant, and announce the jobs.

    `create` holds the shared fields (its ratio, length and preset are replaced by each
    variant's); `batch_id`, `sku` and `row` go on the product and its jobs.
    `free_tier=False`: the caller has counted these videos already."""
    if not variants:
        raise ValueError("a product needs at least one variant")
    fingerprint = product_fingerprint(create, image.sha256, variants)
    if idempotency_key is not None:
        earlier = await _earlier(services, owner, idempotency_key)
        if earlier is not None:
            return await _replay(services, earlier, fingerprint)
    product_id = new_job_id()
    job_ids = [new_job_id() for _ in variants]
    made = _Product(
        services,
        product_id=product_id,
        job_ids=job_ids,
        owner=owner,
        client_ip=client_ip,
        create=create,
        image=image,
        variants=variants,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        extra={
            k: v for k, v in (("batch_id", batch_id), ("sku", sku), ("row", row)) if v is not None
        },
    )
    if not free_tier:
        return await made.store_and_announce(running=[False] * len(job_ids))
    async with _reserve_all(services, owner, client_ip, job_ids) as taken:
        submission = await made.store_and_announce(running=[t.running is not None for t in taken])
    if not submission.created:
        for t in taken:
            await services.limiter.give_back(t)
    return submission


@dataclass
class _Product:
    services: Services
    product_id: str
    job_ids: list[str]
    owner: str
    client_ip: str
    create: JobCreate
    image: NormalizedImage
    variants: Sequence[ResolvedVariant]
    idempotency_key: str | None
    fingerprint: str
    extra: dict[str, Any]  # batch_id, sku, row when given

    def _image(self, key: str) -> dict[str, Any]:
        image = self.image
        return {
            "key": key,
            "sha256": image.sha256,
            "width": image.width,
            "height": image.height,
            "content_type": image.content_type,
        }

    def _product(self, key: str) -> dict[str, Any]:
        shared = self.create.options.model_dump(mode="json")
        for name in VARIANT_OPTIONS:
            shared.pop(name, None)
        document: dict[str, Any] = {
            "_id": self.product_id,
            "owner": self.owner,
            "created_at": now(),
            "image": self._image(key),
            "title": self.create.title,
            "description": self.create.description,
            "options": shared,
            "variants": [v.public() for v in self.variants],
            "job_ids": self.job_ids,
            "request_fingerprint": self.fingerprint,
            **self.extra,
        }
        if self.create.regenerate:
            document["regenerate"] = True
        if self.idempotency_key is not None:
            document["idempotency_key"] = self.idempotency_key
        return document

    def _job(self, index: int, key: str, running_slot: bool) -> dict[str, Any]:
        variant = self.variants[index]
        options = variant_options(self.create.options, variant)
        document: dict[str, Any] = {
            "_id": self.job_ids[index],
            "owner": self.owner,
            "client_ip": self.client_ip,
            "title": self.create.title,
            "description": self.create.description,
            "options": options.model_dump(mode="json"),
            "image": self._image(key),
            "request_fingerprint": request_fingerprint(
                self.create.model_copy(update={"options": options}), self.image.sha256
            ),
            "notes": [variant.note] if variant.note else [],
            "product_id": self.product_id,
            "variant": index,
            **self.extra,
        }
        if self.create.regenerate:
            document["regenerate"] = True
        if running_slot:
            document["running_slot"] = True
        return document

    async def store_and_announce(self, *, running: list[bool]) -> ProductSubmission:
        services = self.services
        key = upload_key(self.product_id, self.image.ext)
        await services.storage.put_bytes(key, self.image.data, self.image.content_type)
        product = self._product(key)
        try:
            await services.db[PRODUCTS].insert_one(product)
        except DuplicateKeyError:  # a concurrent request with the same key won the insert
            await services.storage.delete(key)
            assert self.idempotency_key is not None
            earlier = await _earlier(services, self.owner, self.idempotency_key)
            if earlier is None:
                raise
            return await _replay(services, earlier, self.fingerprint)
        except BaseException:
            await services.storage.delete(key)
            raise
        jobs: list[Job] = []
        try:
            for index, running_slot in enumerate(running):
                job, _ = await services.repo.create(self._job(index, key, running_slot))
                jobs.append(job)
        except BaseException:  # nothing half-made: no product with some of its jobs
            await services.repo.jobs.delete_many({"_id": {"$in": self.job_ids}})
            await services.db[PRODUCTS].delete_one({"_id": self.product_id})
            await services.storage.delete(key)
            raise
        await self._announce()
        log.info("product submitted with %d variants", len(jobs), extra={"job_id": jobs[0]["_id"]})
        return ProductSubmission(product, jobs, created=True)

    async def _announce(self) -> None:
        services = self.services
        timeout = services.settings.publish_timeout_seconds
        for index, job_id in enumerate(self.job_ids):
            job_id_var.set(job_id)
            try:
                await asyncio.wait_for(
                    services.publishers.job_submitted.publish(JobSubmitted(job_id=job_id)),
                    timeout,
                )
            except Exception as e:  # the jobs not announced cannot run: they fail, retryable
                log.exception("could not publish job.submitted", extra={"job_id": job_id})
                for unannounced in self.job_ids[index:]:
                    await fail_unqueued(services, unannounced, e)
                raise ApiError(
                    503,
                    "queue_unavailable",
                    "The product's jobs could not all be queued; retry the ones that failed "
                    "in a moment.",
                    details={"product_id": self.product_id, "job_ids": self.job_ids[index:]},
                ) from e
            JOBS_SUBMITTED.inc()


def validate_product_request(
    settings: GatewaySettings,
    *,
    variants: str,
    title: str,
    description: str,
    style: str | None,
    options: OptionFields,
    regenerate: bool = False,
) -> tuple[JobCreate, list[ResolvedVariant]]:
    """The fields of a request with `variants`, and the variants resolved; 422 listing
    every problem of both. The ratio, length and preset belong in each variant."""
    problems: list[dict[str, Any]] = [
        {"field": name, "message": "Give it in each of the variants, not beside them."}
        for name in VARIANT_OPTIONS
        if getattr(options, name) is not None
    ]
    resolved: list[ResolvedVariant] = []
    try:
        resolved = parse_variants(variants)
    except ApiError as e:
        problems += [{"field": d["field"], "message": d["message"]} for d in e.details]
    create: JobCreate | None = None
    try:
        create = validate_fields(
            settings,
            title=title,
            description=description,
            style=style,
            options=replace(options, aspect_ratio=None, duration=None, preset=None),
            regenerate=regenerate,
        )
    except ApiError as e:
        problems = [*e.details, *problems]
    if problems or create is None:
        raise ApiError(422, "validation_error", "The request is not valid.", details=problems)
    return create, resolved
