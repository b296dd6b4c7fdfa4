"""The whole pipeline through both OpenRouter providers: the four services as real
processes on the real broker, database and storage, with OPENROUTER_BASE_URL pointed at
a fake OpenRouter that speaks the real protocol and records every request."""

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from common.errors import user_message
from tests.support import client as user
from tests.support import processes
from tests.support.backends import free_port
from tests.support.fake_openrouter import SEEDANCE, FakeOpenRouter, Fault, VideoPlan
from tests.support.observe import metric
from tests.support.processes import System

pytestmark = pytest.mark.timeout(240)

CHAT = "POST /chat/completions"
CREATE = "POST /videos"
POLL = "GET /videos/{id}"


def openrouter_env(fake: FakeOpenRouter) -> dict[str, str]:
    return {
        **fake.env(),
        # Unset: the key chooses the OpenRouter providers.
        "PROMPT_PROVIDER": "",
        "VIDEO_PROVIDER": "",
        # A killed worker's lease runs out soon, so its job is resumed within the test.
        "LEASE_SECONDS": "5",
    }


@pytest.fixture
def system_env(service_env: dict[str, str], fake: FakeOpenRouter) -> dict[str, str]:
    return {**service_env, **openrouter_env(fake)}


async def finished(
    system: System, api: httpx.AsyncClient, photo: bytes, **fields: Any
) -> dict[str, Any]:
    """Submit, follow the job to its end over the WebSocket; the job as the API shows it."""
    accepted = await user.submitted(api, photo, **fields)
    followed = await user.follow(system.ws_url, accepted["id"], accepted["token"], within=120)
    if followed.final_status == "completed":
        user.assert_followed_in_order(followed)
    return await user.get_job(api, accepted["id"], accepted["token"])


async def stored(database: AsyncDatabase, job_id: str) -> dict[str, Any]:
    job = await database["jobs"].find_one({"_id": job_id})
    assert job is not None
    return job


async def test_a_clip_through_both_openrouter_providers(
    system: System,
    api: httpx.AsyncClient,
    database: AsyncDatabase,
    fake: FakeOpenRouter,
    tmp_path: Path,
) -> None:
    photo = user.product_photo(seed=31)
    job = await finished(system, api, photo, title="Linen tote bag", aspect_ratio="9:16")
    assert job["status"] == "completed", job["error"]

    # The prompt is the chat reply, and what it cost is on the job.
    assert job["prompt"]["source"] == "llm"
    assert job["prompt"]["model"] == "google/gemini-2.5-flash"
    assert "Linen tote bag" in job["prompt"]["text"]
    assert job["prompt"]["cost"] == pytest.approx(fake.chat_cost)
    [chat] = fake.calls(CHAT)
    assert chat.json["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/")

    # One paid video job, made from the photo and that prompt, its cost recorded.
    [create] = fake.calls(CREATE)
    assert create.json["prompt"] == job["prompt"]["text"]
    assert create.json["frame_images"][0]["frame_type"] == "first_frame"
    doc = await stored(database, job["id"])
    assert doc["provider_job"]["id"] in fake.jobs and doc["provider_job"]["cost"] == 0.35
    assert job["video"]["cost"] == 0.35  # and the owner sees it
    assert await metric(system["video"], "pv_provider_cost_usd_total") == pytest.approx(0.35)
    assert await metric(system["prompt"], "pv_provider_cost_usd_total") == pytest.approx(
        fake.chat_cost
    )

    # The clip plays, at the frame size of its aspect ratio.
    clip = await user.download(api, job["video"]["url"], tmp_path / "clip.mp4")
    user.assert_playable_clip(user.probe(clip), aspect_ratio="9:16", duration=3)
    assert (job["video"]["width"], job["video"]["height"]) == (720, 1280)

    # The same product with another call to action: the prompt is reused (no chat call);
    # the clip is its own (the very same job again would reuse the clip too:
    # tests/test_result_reuse.py).
    again = await finished(
        system, api, photo, title="Linen tote bag", aspect_ratio="9:16", form={"cta": "Shop now"}
    )
    assert again["status"] == "completed", again["error"]
    assert again["prompt"]["source"] == "reused" and again["prompt"]["cost"] == 0
    assert len(fake.calls(CHAT)) == 1
    assert len(fake.calls(CREATE)) == 2


def restart(system: System, name: str) -> None:
    """SIGKILL a service's process and start a new one (a fresh port and log)."""
    old = system[name]
    old.process.send_signal(signal.SIGKILL)
    old.process.wait(30)
    system.services[f"{name}-killed"] = old  # its log stays in the report
    system.services[name] = processes._start(old.spec, free_port(), system.env, old.log_path.parent)
    processes.wait_ready(System(system.env, {name: system.services[name]}))


async def test_a_video_worker_killed_while_polling_resumes_the_same_paid_job(
    system: System, api: httpx.AsyncClient, database: AsyncDatabase, fake: FakeOpenRouter
) -> None:
    fake.video_plan = VideoPlan(polls=("pending", "in_progress"), hold=True)
    accepted = await user.submitted(api, user.product_photo(seed=32))

    async def polls(at_least: int) -> bool:
        return len(fake.calls(POLL)) >= at_least

    await user.wait_for(lambda: polls(2), within=60, what="the video job to be polled twice")
    # The next poll hangs: the worker is killed in the middle of it, holding the message.
    fake.fail(POLL, Fault(delay=5))
    await user.wait_for(lambda: polls(3), within=30, what="a hanging poll")
    restart(system, "video")

    # The redelivered message resumes polling the same job; it is never submitted again.
    await user.wait_for(lambda: polls(4), within=60, what="the restarted worker to poll")
    [video_id] = fake.jobs
    fake.finish(video_id)
    followed = await user.follow(system.ws_url, accepted["id"], accepted["token"], within=60)
    assert followed.final_status == "completed", followed.final
    user.assert_followed_in_order(followed)
    assert len(fake.calls(CREATE)) == 1
    doc = await stored(database, accepted["id"])
    assert doc["provider_job"]["id"] == video_id
    assert user.stages([h["status"] for h in doc["history"]]).count("generating") == 1


async def test_retryable_failures_are_retried_and_permanent_ones_fail_at_once(
    system: System, api: httpx.AsyncClient, database: AsyncDatabase, fake: FakeOpenRouter
) -> None:
    # Rate limited, then a reply that needs its one repair; the video service unavailable
    # once, a poll failing once: retried through the retry queues, and the clip is made.
    fake.fail(CHAT, Fault(429, retry_after=1))
    fake.chat_replies.append("Here is your prompt: a mug, slowly.")
    fake.fail(CREATE, Fault(503, message="No provider available"))
    fake.fail(POLL, Fault(502))
    job = await finished(system, api, user.product_photo(seed=33), aspect_ratio="1:1")
    assert job["status"] == "completed", job["error"]
    assert job["attempts"] == 2  # the 429 and the 503; a failed poll is not an attempt
    assert len(fake.calls(CHAT)) == 3 and len(fake.calls(CREATE)) == 2
    assert (await stored(database, job["id"]))["prompt"]["details"]["repaired"] is True

    # Out of credits: the job fails at once, saying so, without another call. The owner
    # reads the code's stable message, never OpenRouter's words: those are in the log.
    fake.fail(CHAT, Fault(402, message="Insufficient credits"))
    job = await finished(system, api, user.product_photo(seed=34))
    assert job["status"] == "failed" and job["attempts"] == 0
    assert job["error"] == {
        "code": "insufficient_credits",
        "message": user_message("insufficient_credits"),
    }
    assert "insufficient credits (402): Insufficient credits" in system["prompt"].log()
    assert len(fake.calls(CHAT)) == 4

    # A submission OpenRouter refuses fails at once, its reason in the log.
    fake.fail(CREATE, Fault(400, message="prompt violates the content policy"))
    job = await finished(system, api, user.product_photo(seed=35))
    assert job["status"] == "failed" and job["attempts"] == 0
    assert job["error"] == {
        "code": "provider_bad_request",
        "message": user_message("provider_bad_request"),
    }
    assert "refused (400): prompt violates the content policy" in system["video"].log()
    assert len(fake.calls(CREATE)) == 3

    # A length the model does not make fails before anything is paid for.
    fake.models = [{**SEEDANCE, "supported_durations": [5, 10]}]
    job = await finished(system, api, user.product_photo(seed=36), duration=3)
    assert job["status"] == "failed" and job["error"]["code"] == "unsupported_options"
    assert job["error"]["message"] == user_message("unsupported_options")
    assert "cannot make a 3-second clip (it makes 5 s, 10 s)" in system["video"].log()
    assert len(fake.calls(CREATE)) == 3

    # The provider's own words when the generation fails: in the log only.
    fake.models = [SEEDANCE]
    fake.video_plan = VideoPlan(outcome="failed", error="The image could not be processed")
    job = await finished(system, api, user.product_photo(seed=37))
    assert job["status"] == "failed"
    assert job["error"] == {"code": "provider_failed", "message": user_message("provider_failed")}
    assert "The image could not be processed (failed)" in system["video"].log()
