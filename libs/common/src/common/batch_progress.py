"""A batch's progress, derived from its jobs (never counted by hand beside them): counts
by status, cost so far and the batch's `seq`, in one aggregation over `jobs.batch_id`.

The batch's `seq` is the sum of its jobs' `seq`: every stored transition of any of its
jobs adds one (a job's `seq` counts its `history` entries), every replica computes the
same number from the same jobs, and it never goes back. It plays for a batch the part a
job's `seq` plays for a job (the notifier's `after_seq`).

Cost: the plain sum of the jobs' `JOB_COSTS` (prompt and provider), the one rule the
gateway's batch view (`common.batches.cost_so_far`) counts by too: a product's one prompt
is paid by the job that wrote it, its other variants' jobs show 0.
"""

from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from common.events import FINAL_STATUSES, JobStatus

BATCHES = "batches"
_FINAL = frozenset(s.value for s in FINAL_STATUSES)
# What a job has cost: each field in US dollars, missing or null counting 0.
JOB_COSTS = ("prompt.cost", "provider_job.cost")


def job_cost(job: dict[str, Any]) -> float:
    """A loaded job's `JOB_COSTS`, summed as `_pipeline` sums them in the database."""
    total = 0.0
    for path in JOB_COSTS:
        value: Any = job
        for name in path.split("."):
            value = (value or {}).get(name)
        total += float(value or 0.0)
    return total


@dataclass(frozen=True)
class BatchProgress:
    counts: dict[str, int] = field(default_factory=dict)  # every status, zeros included
    seq: int = 0
    cost_usd: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ended(self) -> int:
        """Jobs in a final status (completed, failed, canceled)."""
        return sum(n for status, n in self.counts.items() if status in _FINAL)

    @property
    def finished(self) -> bool:
        """Every job of the batch is final (a failed one may still be retried)."""
        return self.ended == self.total


def _pipeline(batch_id: str) -> list[dict[str, Any]]:
    cost = {"$add": [{"$ifNull": [f"${path}", 0]} for path in JOB_COSTS]}
    group = {"_id": "$status", "n": {"$sum": 1}, "seq": {"$sum": "$seq"}, "usd": {"$sum": cost}}
    return [{"$match": {"batch_id": batch_id}}, {"$group": group}]


async def batch_progress(jobs: AsyncCollection, batch_id: str) -> BatchProgress:
    """One aggregation over the batch's jobs (index `batch_id`)."""
    cursor = await jobs.aggregate(_pipeline(batch_id))
    counts = {status.value: 0 for status in JobStatus}
    seq, cost = 0, 0.0
    async for group in cursor:
        counts[group["_id"]] = counts.get(group["_id"], 0) + int(group["n"])
        seq += int(group["seq"])
        cost += float(group["usd"])
    return BatchProgress(counts=counts, seq=seq, cost_usd=round(cost, 6))
