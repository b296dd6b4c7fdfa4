"""Prompt reuse is scoped to the owner by default: a shop owner cannot learn from a reused
prompt (source `reused`, cost 0) that someone else submitted the same photo and text.
`PROMPT_REUSE_SCOPE=shared` trades that away for fewer LLM calls."""

from typing import Any

import pytest

from common.events import JobSubmitted
from services.prompt.tests.images import photo
from services.prompt.tests.support import Worker

NAVY_MUG = photo((600, 900), (250, 250, 250), product=(20, 30, 75))


async def prompt_of(worker: Worker, owner: str) -> dict[str, Any]:
    job = await worker.add_job(NAVY_MUG, owner=owner)
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=job["_id"]))
    done = await worker.wait_for_status(job["_id"], "prompt_ready", "failed")
    assert done["status"] == "prompt_ready", done.get("error")
    return dict(done["prompt"])


async def test_another_owners_identical_product_is_not_reused(worker: Worker) -> None:
    await prompt_of(worker, "alice@example.com")
    mallory = await prompt_of(worker, "mallory@example.com")
    assert mallory["source"] == "template"  # written anew: nothing tells of Alice's job
    assert "reused_from" not in mallory["details"]
    # The owner's own repeat is still reused.
    assert (await prompt_of(worker, "alice@example.com"))["source"] == "reused"
    assert len(worker.provider.calls) == 2


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPT_REUSE_SCOPE", "shared")


async def test_shared_reuse_serves_every_owner(shared: None, worker: Worker) -> None:
    await prompt_of(worker, "alice@example.com")
    assert (await prompt_of(worker, "bob@example.com"))["source"] == "reused"
    assert len(worker.provider.calls) == 1
