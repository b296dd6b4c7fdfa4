"""The `batches` collection: one document per batch, its rows and their jobs' ids
(docs/catalogues.md). What the jobs did (counts by status, cost so far, errors) is read
from the jobs themselves (found by their `batch_id`), never copied onto the batch.
"""

from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.events import JobStatus
from common.jobs import Job

FINAL = frozenset({JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELED.value})
RUNNING, COMPLETED, CANCELED = "running", "completed", "canceled"
# What the batch routes read of each job.
JOB_FIELDS = {
    "status": 1,
    "error": 1,
    "variant": 1,
    "sku": 1,
    "row": 1,
    "title": 1,
    "options": 1,
    "video": 1,
    "prompt.cost": 1,
    "provider_job.cost": 1,
}

Batch = dict[str, Any]


class BatchRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.batches = db["batches"]
        self.jobs = db["jobs"]

    async def ensure_indexes(self) -> None:
        await self.batches.create_index(
            [("owner", 1), ("idempotency_key", 1)],
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
            name="owner_idempotency_key",
        )
        await self.batches.create_index([("owner", 1), ("created_at", -1)], name="owner_created")
        await self.jobs.create_index([("batch_id", 1)], name="batch_id", sparse=True)

    async def create(self, batch: Batch) -> tuple[Batch, bool]:
        """Insert the batch; with an Idempotency-Key the owner used already, that batch
        instead. Returns (batch, created)."""
        document = {"created_at": datetime.now(UTC), "status": RUNNING, **batch}
        try:
            await self.batches.insert_one(document)
        except DuplicateKeyError:
            existing = await self.earlier(document["owner"], document.get("idempotency_key"))
            if existing is None:  # the clash was on _id, not on the key
                raise
            return existing, False
        return document, True

    async def earlier(self, owner: str, idempotency_key: str | None) -> Batch | None:
        if idempotency_key is None:
            return None
        found: Batch | None = await self.batches.find_one(
            {"owner": owner, "idempotency_key": idempotency_key}
        )
        return found

    async def get(self, batch_id: str, owner: str) -> Batch | None:
        """The batch, if `owner` made it."""
        found: Batch | None = await self.batches.find_one({"_id": batch_id, "owner": owner})
        return found

    async def set_rows(self, batch_id: str, rows: list[dict[str, Any]]) -> Batch | None:
        updated: Batch | None = await self.batches.find_one_and_update(
            {"_id": batch_id},
            {"$set": {"rows": rows, "jobs_total": sum(len(r["job_ids"]) for r in rows)}},
            return_document=ReturnDocument.AFTER,
        )
        return updated

    async def delete(self, batch_id: str) -> None:
        await self.batches.delete_one({"_id": batch_id})

    async def finish(self, batch: Batch, status: str) -> Batch:
        """Move a running batch to `status` (completed, canceled); a batch that is no
        longer running keeps what it has."""
        updated: Batch | None = await self.batches.find_one_and_update(
            {"_id": batch["_id"], "status": RUNNING},
            {"$set": {"status": status, "finished_at": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )
        return updated or await self.get(batch["_id"], batch["owner"]) or batch

    async def jobs_of(self, batch: Batch) -> dict[str, Job]:
        """The batch's jobs by id."""
        found = self.jobs.find({"batch_id": batch["_id"]}, projection=JOB_FIELDS)
        return {job["_id"]: job async for job in found}


def cost_so_far(jobs: dict[str, Job]) -> float:
    """What the jobs have cost so far: their prompts and their provider jobs. A product's
    one prompt is paid by the job that wrote it; its other variants' jobs show cost 0."""
    total = 0.0
    for job in jobs.values():
        total += float((job.get("prompt") or {}).get("cost") or 0.0)
        total += float((job.get("provider_job") or {}).get("cost") or 0.0)
    return round(total, 6)


def all_final(batch: Batch, jobs: dict[str, Job]) -> bool:
    ids = [job_id for row in batch.get("rows", []) for job_id in row["job_ids"]]
    return bool(ids) and all(jobs.get(i, {}).get("status") in FINAL for i in ids)


def batch_view(batch: Batch, jobs: dict[str, Job]) -> dict[str, Any]:
    """The batch as the API shows it: counts by status, cost so far, each row's jobs."""
    counts = {status.value: 0 for status in JobStatus}
    rows = []
    for row in batch.get("rows", []):
        row_jobs = []
        for index, job_id in enumerate(row["job_ids"]):
            job = jobs.get(job_id, {})
            status = job.get("status", JobStatus.QUEUED.value)
            counts[status] = counts.get(status, 0) + 1
            error = job.get("error")
            row_jobs.append(
                {
                    "id": job_id,
                    "variant": job.get("variant", index),
                    "status": status,
                    "error": {"code": error["code"], "message": error["message"]}
                    if error
                    else None,
                }
            )
        rows.append(
            {
                "row": row["row"],
                "sku": row["sku"],
                "title": row["title"],
                "product_id": row.get("product_id"),
                "jobs": row_jobs,
            }
        )
    return {
        "id": batch["_id"],
        "status": batch["status"],
        "created_at": batch["created_at"].isoformat(),
        "variants": batch["variants"],
        "max_cost_usd": batch.get("max_cost_usd"),
        "jobs_total": batch.get("jobs_total", 0),
        "counts": counts,
        "cost_usd": cost_so_far(jobs),
        "rows": rows,
    }
