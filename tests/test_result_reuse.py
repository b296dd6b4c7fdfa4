"""Result reuse end to end: the four services as real processes on the real broker,
database and storage, both stages on a fake OpenRouter that counts every request. The
same owner asking for exactly what they had made before gets it at once, for nothing;
anything else is made."""

import asyncio
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from common.result_reuse import ResultReuseSettings
from tests.support import client as user
from tests.support.fake_openrouter import FakeOpenRouter
from tests.support.observe import metric
from tests.support.processes import System
from tests.test_idempotency import publish_submitted_again, settle
from tests.test_openrouter_pipeline import CHAT, CREATE, openrouter_env
from video.config import VideoSettings

pytestmark = pytest.mark.timeout(300)

TOTE = {"title": "Linen tote bag", "aspect_ratio": "9:16", "duration": 3}


@pytest.fixture
def system_env(service_env: dict[str, str], fake: FakeOpenRouter) -> dict[str, str]:
    return {**service_env, **openrouter_env(fake)}


async def made(
    system: System, api: httpx.AsyncClient, photo: bytes, **fields: Any
) -> tuple[dict[str, Any], user.Followed]:
    """Submit and follow the job over the WebSocket to its end: the job as the API shows
    it, and what the WebSocket said."""
    accepted = await user.submitted(api, photo, **fields)
    followed = await user.follow(system.ws_url, accepted["id"], accepted["token"], within=150)
    assert followed.final_status == "completed", followed.final
    return await user.get_job(api, accepted["id"], accepted["token"]), followed


async def stored(database: AsyncDatabase, job_id: str) -> dict[str, Any]:
    job = await database["jobs"].find_one({"_id": job_id})
    assert job is not None
    return job


async def test_the_same_job_again_is_the_earlier_result_and_anything_else_is_made(
    system: System, api: httpx.AsyncClient, database: AsyncDatabase, fake: FakeOpenRouter
) -> None:
    photo = user.product_photo(seed=41, size=(400, 300))
    first, _ = await made(system, api, photo, **TOTE)
    assert first["video"]["reused_from"] is None
    assert (len(fake.calls(CHAT)), len(fake.calls(CREATE))) == (1, 1)
    requests = len(fake.requests)
    video_calls = await metric(system["video"], "pv_provider_calls_total")

    # Exactly the same again: completed at once with the first job's clip and poster.
    again, followed = await made(system, api, photo, **TOTE)
    assert again["video"]["reused_from"] == first["id"]
    assert len(fake.requests) == requests, "OpenRouter was called for a reused result"
    assert await metric(system["video"], "pv_provider_calls_total") == video_calls, "a render"
    assert again["video"]["cost"] == 0 and again["prompt"]["cost"] == 0
    assert again["prompt"]["text"] == first["prompt"]["text"]
    assert again["brief"] == first["brief"]
    for name in ("duration", "width", "height", "size", "codec"):
        assert again["video"][name] == first["video"][name]
    # Shared in storage, not copied: the same objects.
    original, reusing = await stored(database, first["id"]), await stored(database, again["id"])
    for name in ("key", "poster_key"):
        assert reusing["video"][name] == original["video"][name]
    assert reusing["result_key"] == original["result_key"]
    # A normal completion for the watchers: every step once, in order, ending completed.
    history = {h["seq"]: h["status"] for h in followed.snapshot["history"]}
    history.update({s["seq"]: s["status"] for s in followed.statuses})
    assert sorted(history) == list(range(1, len(history) + 1))
    assert user.stages([history[s] for s in sorted(history)]) == [
        "queued",
        "prompting",
        "completed",
    ]
    clip = await api.get(again["video"]["url"])
    assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"

    # The event delivered again completes nothing twice.
    await publish_submitted_again(system, again["id"])
    await settle(system, "prompt", at_least=3)
    after = await stored(database, again["id"])
    assert (after["seq"], after["history"], after["video"]) == (
        reusing["seq"],
        reusing["history"],
        reusing["video"],
    )
    finished = await metric(
        system["prompt"], "pv_jobs_finished_total", lambda labels: labels["status"] == "completed"
    )
    assert finished == 1

    # Anything else is made: another option, one more byte of photo, the same job from
    # another owner (a result is never shared between owners), the same job once the
    # earlier clip is gone from storage, and `regenerate`.
    root = ResultReuseSettings(storage_url=system.env["STORAGE_URL"]).storage_root
    (root / original["video"]["key"]).unlink()
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as other_owner:
        other_owner.headers["Authorization"] = f"Bearer {await user.sign_in(other_owner)}"
        made_anew = list(
            await asyncio.gather(
                made(system, api, photo, **TOTE, form={"cta": "Shop the tote"}),
                made(system, api, photo + b"\0", **TOTE),
                made(system, other_owner, photo, **TOTE),
                made(system, api, photo, **TOTE),
            )
        )
    # The last one is stored now: `regenerate` makes a new one all the same, from a
    # prompt of its own (a model writes another one: another take, not the same clip).
    chats = len(fake.calls(CHAT))
    made_anew.append(await made(system, api, photo, **TOTE, form={"regenerate": "true"}))
    assert len(fake.calls(CHAT)) == chats + 1
    for job, _ in made_anew:
        assert job["video"]["reused_from"] is None, job
    assert len(fake.calls(CREATE)) == 1 + len(made_anew)
    assert len({job["video"]["url"].split("?")[0] for job, _ in made_anew}) == len(made_anew)


def test_the_prompt_worker_sees_the_video_stage_the_video_worker_runs() -> None:
    """The prompt worker keys results by what the video worker makes clips with, read from
    the same variables: the two agree, with the same defaults."""
    environments: list[dict[str, Any]] = [
        {},
        {"openrouter_api_key": "sk-or-1"},
        {"openrouter_api_key": "sk-or-1", "video_provider": "local"},
        {"video_provider": "openrouter", "openrouter_video_model": "kling/v2"},
    ]
    for env in environments:
        ours = ResultReuseSettings(_env_file=None, **env)  # type: ignore[call-arg]
        theirs = VideoSettings(_env_file=None, **env)  # type: ignore[call-arg]
        assert ours.video_provider == theirs.video_provider
        assert ours.openrouter_video_model == theirs.openrouter_video_model
        assert ours.openrouter_video_resolution == theirs.openrouter_video_resolution
        assert ours.render_fps == theirs.render_fps
