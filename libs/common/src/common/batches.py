"""The `batches` collection: one document per batch, its rows and their jobs' ids
(docs/catalogues.md). What the jobs did (counts by status, cost so far, errors) is read
from the jobs themselves (found by their `batch_id`), never copied onto the batch.

The end of a batch (`claim_end`): when its last job becomes final, one conditional update
moves it from `running` to `completed` (a canceled batch keeps `canceled`) and sets
`announced: false`; whoever made that update publishes `batch.completed` and then sets
`announced: true` (common.pipeline). A batch left `announced: false` by a crash in
between is announced by the reconciler.
"""

from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.batch_progress import job_cost
from common.events import JobStatus
from common.jobs import Job
from common.views import API_PREFIX

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
        # The reconciler's look for batches whose end was missed or not announced.
        await self.batches.create_index([("announced", 1), ("status", 1)], name="announced")

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

    async def claim_end(self, batch_id: str) -> Batch | None:
        """When every job of the batch is final and its end is not claimed yet: claim it
        (running → completed; canceled stays canceled) and return the batch. Of callers
        racing on one batch (its last two jobs ending on two workers) exactly one gets it
        back: the one that must announce it. None for everyone else, and while jobs run."""
        batch: Batch | None = await self.batches.find_one(
            {"_id": batch_id}, {"status": 1, "jobs_total": 1, "announced": 1}
        )
        # No jobs_total yet: the gateway is still adding rows (and checks once it has).
        if batch is None or "announced" in batch or not batch.get("jobs_total"):
            return None
        unfinished = await self.jobs.find_one(
            {"batch_id": batch_id, "status": {"$nin": list(FINAL)}}, {"_id": 1}
        )
        if unfinished is not None:
            return None
        stamp = datetime.now(UTC)
        unclaimed = {"_id": batch_id, "announced": {"$exists": False}}
        if batch["status"] == RUNNING:
            claimed: Batch | None = await self.batches.find_one_and_update(
                {**unclaimed, "status": RUNNING},
                {
                    "$set": {
                        "status": COMPLETED,
                        "finished_at": stamp,
                        "ended_at": stamp,
                        "announced": False,
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
            if claimed is not None:
                return claimed
        # Canceled (now, or between the read and the update above): it keeps its status.
        claimed = await self.batches.find_one_and_update(
            {**unclaimed, "status": CANCELED},
            {"$set": {"ended_at": stamp, "announced": False}},
            return_document=ReturnDocument.AFTER,
        )
        return claimed

    async def mark_announced(self, batch_id: str) -> None:
        await self.batches.update_one(
            {"_id": batch_id}, {"$set": {"announced": True, "announced_at": datetime.now(UTC)}}
        )

    def unannounced(self, ended_before: datetime) -> AsyncCursor[Batch]:
        """Batches claimed as ended before then and never announced (a crash in between)."""
        return self.batches.find(
            {"announced": False, "ended_at": {"$lt": ended_before}}, {"_id": 1, "status": 1}
        )

    def maybe_ended(self) -> AsyncCursor[Batch]:
        """Batches whose end is not claimed yet (their last job's worker may have died
        between the job's end and the batch's check)."""
        return self.batches.find(
            {
                "announced": {"$exists": False},
                "status": {"$in": [RUNNING, CANCELED]},
                "jobs_total": {"$gt": 0},
            },
            {"_id": 1, "status": 1},
        )

    async def jobs_of(self, batch: Batch) -> dict[str, Job]:
        """The batch's jobs by id."""
        found = self.jobs.find({"batch_id": batch["_id"]}, projection=JOB_FIELDS)
        return {job["_id"]: job async for job in found}


def cost_so_far(jobs: dict[str, Job]) -> float:
    """What the jobs have cost so far: their prompts and their provider jobs. A product's
    one prompt is paid by the job that wrote it; its other variants' jobs show cost 0."""
    return round(sum(job_cost(job) for job in jobs.values()), 6)


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


def export_path(batch_id: str) -> str:
    return f"{API_PREFIX}/batches/{batch_id}/export.csv"


def batch_summary(batch: Batch, jobs: dict[str, Job]) -> dict[str, Any]:
    """What a `batch.completed` webhook says of the batch: the view without its rows,
    when it ended, and where its CSV export is (read with `batches:write`)."""
    view = batch_view(batch, jobs)
    del view["rows"]
    ended = batch.get("ended_at") or batch.get("finished_at")
    view["finished_at"] = ended.isoformat() if ended else None
    view["export_url"] = export_path(batch["_id"])
    return view
