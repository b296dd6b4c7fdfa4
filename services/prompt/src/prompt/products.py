"""One prompt and brief per product (gateway/products.py), whatever its number of variants,
even when the variants' jobs are prompted at the same time by several workers.

The first variant job to get here takes a lease on the product (one conditional update:
no prompt yet and no live lease), writes the prompt (the prompt cache first, else one
provider call) and stores it with its brief on the product, releasing the lease in the same
write. Every other variant job uses what the product holds: source `product`, cost 0 (the
job that paid shows the cost). A job that finds another job's live lease hands its own job
back and comes back in a moment (`ProductBusy` → `RetryLater`). The lease is renewed while
the provider writes and ends on its own when its holder dies, so a crash never blocks a
product: the next variant job takes over after `LEASE_SECONDS` at most (the prompt cache
then answers it if the first call had finished).

The prompt is written for the product's first variant (its framing and length are in the
text and in the prompt cache's key), so the same product always asks the same question;
each job's video is still made at its own ratio and length.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from common.errors import JobError
from common.jobs import Job, now
from common.lease import renewing

PRODUCTS = "products"
# How soon a job that waits for another job's prompt looks again (the provider call takes
# seconds; a lease left by a crash ends on its own).
WAIT_SECONDS = 2.0

PromptAndBrief = tuple[dict[str, Any], dict[str, Any] | None]
Write = Callable[[Job], Awaitable[PromptAndBrief]]


class ProductBusy(Exception):
    """Another variant's job is writing the product's prompt: look again in `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the product's prompt is being written; again in {seconds:.0f}s")
        self.seconds = seconds


class ProductPrompts:
    def __init__(self, db: AsyncDatabase, lease_seconds: float) -> None:
        self.products = db[PRODUCTS]
        self.lease_seconds = lease_seconds

    async def prompt_for(self, job: Job, write: Write) -> PromptAndBrief:
        """The job's prompt and (unpersonalised) brief, from its product: written by
        `write` once for the whole product."""
        product = await self.products.find_one({"_id": job["product_id"]})
        if product is None:
            raise JobError("product_missing", "The product this job is a variant of is missing.")
        if product.get("prompt") is None:
            product = await self._write_once(job, product, write)
        return self._shared(job, product)

    async def _write_once(self, job: Job, product: dict[str, Any], write: Write) -> dict[str, Any]:
        product_id, job_id = product["_id"], job["_id"]
        if not await self._take_lease(product_id, job_id):
            return await self._written_or_busy(product_id)
        try:
            prompt, brief = await renewing(
                lambda: self._renew(product_id, job_id),
                seconds=self.lease_seconds,
                work=write(self._writer(job, product)),
                lost=ProductBusy(1.0),
            )
        except BaseException:
            # Failed or stopped: the next variant job may try at once.
            await self.products.update_one(
                {"_id": product_id, "lease.holder": job_id}, {"$unset": {"lease": ""}}
            )
            raise
        stored = await self.products.find_one_and_update(
            {"_id": product_id, "lease.holder": job_id, "prompt": {"$exists": False}},
            {
                "$set": {"prompt": {**prompt, "job_id": job_id}, "brief": brief},
                "$unset": {"lease": ""},
            },
            return_document=ReturnDocument.AFTER,
        )
        return stored or await self._written_or_busy(product_id)

    async def _take_lease(self, product_id: str, job_id: str) -> bool:
        stamp = now()
        taken = await self.products.find_one_and_update(
            {
                "_id": product_id,
                "prompt": {"$exists": False},
                "$or": [
                    {"lease": {"$exists": False}},
                    {"lease.until": {"$lt": stamp}},
                    {"lease.holder": job_id},  # our own, from before a redelivery
                ],
            },
            {"$set": {"lease": {"holder": job_id, "until": self._until()}}},
            projection={"_id": 1},
        )
        return taken is not None

    async def _renew(self, product_id: str, job_id: str) -> bool:
        renewed = await self.products.update_one(
            {"_id": product_id, "lease.holder": job_id}, {"$set": {"lease.until": self._until()}}
        )
        return renewed.modified_count == 1

    def _until(self) -> Any:
        return now() + timedelta(seconds=self.lease_seconds)

    async def _written_or_busy(self, product_id: str) -> dict[str, Any]:
        product = await self.products.find_one({"_id": product_id})
        if product is None:
            raise JobError("product_missing", "The product this job is a variant of is missing.")
        if product.get("prompt") is not None:
            return product
        lease = product.get("lease")
        left = (lease["until"] - now()).total_seconds() if lease else 0.0
        raise ProductBusy(min(max(left, 1.0), WAIT_SECONDS))

    @staticmethod
    def _writer(job: Job, product: dict[str, Any]) -> Job:
        """The job as the product's prompt is written for: with its first variant's ratio
        and length (see the module's docstring)."""
        variants = product.get("variants") or []
        if not variants:
            return job
        first = {k: variants[0][k] for k in ("aspect_ratio", "duration")}
        return {**job, "options": {**job["options"], **first}}

    @staticmethod
    def _shared(job: Job, product: dict[str, Any]) -> PromptAndBrief:
        stored = dict(product["prompt"])
        writer = stored.pop("job_id", None)
        if writer == job["_id"]:
            return stored, product.get("brief")
        return {
            **stored,
            "source": "product",
            "cost": 0.0,  # paid (if at all) by the job that wrote it
            "details": {
                **(stored.get("details") or {}),
                "product_id": product["_id"],
                "written_by": writer,
            },
        }, product.get("brief")
