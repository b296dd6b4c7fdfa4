"""Duplicates cost nothing: a `job.submitted` delivered twice writes one prompt
and makes one clip, and the same product asked for again reuses its prompt."""

import json
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from common.events import JobSubmitted, RoutingKey
from common.messaging import make_broker
from common.settings import CommonSettings
from common.topology import Topology
from tests.support import client as user
from tests.support.observe import metric, queue_depth
from tests.support.processes import System

pytestmark = pytest.mark.timeout(240)

PROCESSED = "faststream_received_processed_messages_total"
RECEIVED = "faststream_received_messages_total"


async def publish_submitted_again(system: System, job_id: str) -> None:
    """What a redelivery or a retrying publisher would do: the same event, once more."""
    settings = CommonSettings(
        amqp_url=system.env["AMQP_URL"], amqp_prefix=system.env["AMQP_PREFIX"]
    )
    broker = make_broker(settings)
    async with broker:
        await broker.publish(
            JobSubmitted(job_id=job_id),
            exchange=Topology(settings).exchange,
            routing_key=RoutingKey.JOB_SUBMITTED.value,
            persist=True,
            mandatory=True,
        )


async def worker_idle(system: System, worker: str) -> float | None:
    """How many messages a worker has handled, once nothing is pending for it (in its
    work queue, its retry queues or its hands); None while something is."""
    settings = CommonSettings(
        amqp_prefix=system.env["AMQP_PREFIX"],
        retry_delays=json.loads(system.env["RETRY_DELAYS"]),
    )
    work = {"prompt": Topology(settings).prompt_jobs, "video": Topology(settings).video_jobs}
    queues = [work[worker].queue.name] + [queue.name for _, queue in work[worker].retries]
    for name in queues:
        if await queue_depth(system.env["AMQP_URL"], name):
            return None
    received = await metric(system[worker], RECEIVED)
    processed = await metric(system[worker], PROCESSED)
    return processed if processed == received else None


async def settle(system: System, worker: str, *, at_least: float) -> float:
    """Wait until `worker` has handled `at_least` messages and is idle on two polls in
    a row (a message on its way back from a retry queue is briefly in none)."""
    last: list[float | None] = [None]

    async def steady() -> float | None:
        now = await worker_idle(system, worker)
        done = now is not None and now >= at_least and now == last[0]
        last[0] = now
        return now if done else None

    result: float = await user.wait_for(
        steady, within=60, interval=0.5, what=f"the {worker} worker to finish its messages"
    )
    return result


def transitions_into(history: list[dict[str, Any]], status: str) -> int:
    """How often the job entered `status` (progress updates within it not counted)."""
    folded = user.stages([h["status"] for h in history])
    return folded.count(status)


async def test_a_duplicated_submission_makes_one_prompt_and_one_clip(
    system: System, api: httpx.AsyncClient, database: AsyncDatabase
) -> None:
    accepted = await user.submitted(api, user.product_photo(seed=3))
    job_id = accepted["id"]
    # A duplicate racing the original through the prompt worker.
    await publish_submitted_again(system, job_id)

    followed = await user.follow(system.ws_url, job_id, accepted["token"])
    assert followed.final_status == "completed", followed.final
    prompt_handled = await settle(system, "prompt", at_least=2)
    video_handled = await settle(system, "video", at_least=1)

    job = await database["jobs"].find_one({"_id": job_id})
    assert job is not None
    assert user.stages([h["status"] for h in job["history"]]) == user.STAGES
    assert transitions_into(job["history"], "prompting") == 1
    assert transitions_into(job["history"], "generating") == 1
    assert await metric(system["prompt"], "pv_provider_calls_total") == 1, "a second prompt"
    assert await metric(system["video"], "pv_provider_calls_total") == 1, "a second clip"

    # A late duplicate of a finished job changes nothing.
    await publish_submitted_again(system, job_id)
    await settle(system, "prompt", at_least=prompt_handled + 1)
    await settle(system, "video", at_least=video_handled)
    again = await database["jobs"].find_one({"_id": job_id})
    assert again is not None
    assert (again["seq"], again["history"], again["video"]) == (
        job["seq"],
        job["history"],
        job["video"],
    )
    assert await metric(system["prompt"], "pv_provider_calls_total") == 1
    assert await metric(system["video"], "pv_provider_calls_total") == 1


async def completed(
    system: System, api: httpx.AsyncClient, photo: bytes, **fields: Any
) -> dict[str, Any]:
    accepted = await user.submitted(api, photo, aspect_ratio="1:1", duration=3, **fields)
    followed = await user.follow(system.ws_url, accepted["id"], accepted["token"])
    assert followed.final_status == "completed", followed.final
    return await user.get_job(api, accepted["id"], accepted["token"])


async def test_the_same_product_reuses_its_prompt(system: System, api: httpx.AsyncClient) -> None:
    photo = user.product_photo(seed=4)
    first = await completed(system, api, photo)
    second = await completed(system, api, photo)
    assert first["prompt"]["source"] == "template"
    assert second["prompt"]["source"] == "reused"
    assert second["prompt"]["text"] == first["prompt"]["text"]
    assert second["prompt"]["cost"] == 0
    # Another text for the same photo is another product: a prompt of its own.
    renamed = await completed(system, api, photo, title="Ceramic tea cup")
    assert renamed["prompt"]["source"] == "template"
    assert await metric(system["prompt"], "pv_provider_calls_total") == 2
