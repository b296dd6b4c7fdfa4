"""What a batch shows from its jobs: every status counted, and the cost so far (the
prompt paid by one variant's job, the others showing 0, as the prompt worker writes)."""

from datetime import UTC, datetime
from typing import Any

from common.batches import all_final, batch_view, cost_so_far


def job(job_id: str, status: str, product: str, prompt: float, video: float) -> dict[str, Any]:
    return {
        "_id": job_id,
        "status": status,
        "product_id": product,
        "variant": int(job_id[-1]),
        "prompt": {"cost": prompt},
        "provider_job": {"cost": video},
    }


def test_counts_and_cost_come_from_the_jobs() -> None:
    jobs = {
        "a0": job("a0", "completed", "A", 0.003, 0.35),
        "a1": job("a1", "generating", "A", 0.0, 0.0),  # the product's prompt, paid by a0
        "b0": {**job("b0", "failed", "B", 0.002, 0.0), "error": {"code": "x", "message": "m"}},
    }
    batch: dict[str, Any] = {
        "_id": "batch",
        "status": "running",
        "created_at": datetime.now(UTC),
        "variants": [],
        "jobs_total": 3,
        "rows": [
            {"row": 1, "sku": "A", "title": "a", "product_id": "A", "job_ids": ["a0", "a1"]},
            {"row": 2, "sku": "B", "title": "b", "product_id": "B", "job_ids": ["b0"]},
        ],
    }
    assert cost_so_far(jobs) == 0.355
    view = batch_view(batch, jobs)
    assert view["cost_usd"] == 0.355
    assert sum(view["counts"].values()) == 3
    assert (view["counts"]["completed"], view["counts"]["generating"]) == (1, 1)
    assert view["rows"][1]["jobs"] == [
        {"id": "b0", "variant": 0, "status": "failed", "error": {"code": "x", "message": "m"}}
    ]
    assert not all_final(batch, jobs)
    jobs["a1"]["status"] = "canceled"
    assert all_final(batch, jobs)
