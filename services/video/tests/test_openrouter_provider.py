"""The OpenRouter video provider against a fake OpenRouter over real HTTP: one paid job per
clip, its id saved before the first poll, one poll per delivery, the model's limits checked
before anything is paid; then the video worker with it, on the real broker, database and
storage."""

import asyncio
import itertools
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from pymongo.errors import AutoReconnect

from common.errors import JobError, user_message
from common.events import PromptReady
from common.jobs import JobRepository, new_job_id, now
from common.media import probe_video
from common.settings import CommonSettings
from common.topology import LONGEST_DELAY, delay_bucket, delay_buckets
from services.video.tests.images import mug
from services.video.tests.support import Worker, eventually, worker_on
from services.video.tests.test_worker import failure_logged
from tests.support.fake_openrouter import SEEDANCE, FakeOpenRouter, Fault, VideoPlan
from video import handlers
from video.config import VideoSettings
from video.handlers import save_checkpoint
from video.providers.base import PollLater, VideoRequest, get_provider
from video.providers.openrouter import OpenRouterVideoProvider, choose_options


def provider_for(fake: FakeOpenRouter, **changes: Any) -> OpenRouterVideoProvider:
    settings = VideoSettings(
        openrouter_api_key=fake.api_key,  # type: ignore[arg-type]
        openrouter_base_url=fake.base_url,
        openrouter_poll_interval_seconds=1,
        **changes,
    )
    return OpenRouterVideoProvider(settings)


class Calls:
    """What the provider told the worker: checkpoints and progress."""

    def __init__(self, fake: FakeOpenRouter) -> None:
        self.fake = fake
        self.saved: list[dict[str, Any]] = []
        self.polls_before_save: list[int] = []
        self.progress: list[int] = []

    async def checkpoint(self, data: dict[str, Any]) -> None:
        self.polls_before_save.append(len(self.fake.calls("GET /videos/{id}")))
        self.saved.append({"provider": "openrouter", **data})

    async def report(self, fraction: float) -> None:
        self.progress.append(round(40 + 45 * fraction))


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "source.png"
    path.write_bytes(mug())
    return path


def request_for(photo: Path, **changes: Any) -> VideoRequest:
    return replace(
        VideoRequest(
            job_id="job-1",
            image=photo,
            prompt="A slow push-in on the mug, soft light.",
            title="Mug",
            aspect_ratio="9:16",
            duration=4,
            seed=1234,
        ),
        **changes,
    )


async def as_value(value: Any) -> Any:
    return value


def percent(later: PollLater) -> int:
    assert later.progress is not None
    return round(40 + 45 * later.progress)


def cost_metric() -> float:
    return REGISTRY.get_sample_value("pv_provider_cost_usd_total", {"provider": "openrouter"}) or 0


async def test_one_paid_job_saved_before_polling_then_one_poll_per_delivery(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path
) -> None:
    provider = provider_for(fake)
    calls = Calls(fake)
    request = request_for(photo_file)

    with pytest.raises(PollLater) as later:
        await provider.generate(request, tmp_path, calls.report, calls.checkpoint)
    assert later.value.status == "pending" and later.value.seconds == 1
    [post] = fake.calls("POST /videos")
    body = post.json
    assert {k: body[k] for k in ("model", "duration", "resolution", "aspect_ratio")} == {
        "model": "bytedance/seedance-2.0",
        "duration": 4,
        "resolution": "720p",
        "aspect_ratio": "9:16",
    }
    assert body["prompt"] == request.prompt and body["seed"] == 1234
    assert body["generate_audio"] is False and "callback_url" not in body
    [frame] = body["frame_images"]
    assert frame["frame_type"] == "first_frame" and frame["type"] == "image_url"
    assert frame["image_url"]["url"].startswith("data:image/jpeg;base64,")
    # The submission was marked before it was sent, and its id saved before the first poll.
    marker, saved = calls.saved
    assert marker["status"] == "submitting" and "id" not in marker
    assert calls.polls_before_save == [0, 0]
    assert saved["id"] in fake.jobs and saved["polling_url"].endswith(saved["id"])
    # A poll's progress goes with the job's hand-back (one write), not on its own.
    assert calls.progress == [] and percent(later.value) == 45

    # Later deliveries resume that job: no second POST.
    resumed = request_for(photo_file, provider_job=saved)
    with pytest.raises(PollLater) as later:
        await provider.generate(resumed, tmp_path, calls.report, calls.checkpoint)
    assert later.value.status == "in_progress" and percent(later.value) == 60

    spent = cost_metric()
    clip = await provider.generate(resumed, tmp_path, calls.report, calls.checkpoint)
    assert len(fake.calls("POST /videos")) == 1
    assert len(fake.calls("GET /videos/{id}")) == 3
    [download] = fake.calls("GET /videos/{id}/content")
    assert download.query == {"index": "0"}
    assert download.headers["authorization"] == f"Bearer {fake.api_key}"
    # The model's 704x1248 is brought to the exact frame size of 9:16.
    info = probe_video(clip)
    assert (info.width, info.height, info.codec, info.pix_fmt) == (720, 1280, "h264", "yuv420p")
    assert abs(info.duration - 4) < 0.1
    assert calls.saved[-1]["status"] == "completed" and calls.saved[-1]["cost"] == 0.35
    assert cost_metric() == pytest.approx(spent + 0.35)
    assert len(fake.calls("GET /videos/models")) == 1


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"duration": 3},
            "cannot make a 3-second clip (it makes 5 s, 10 s); choose one of those lengths.",
        ),
        ({"aspect_ratio": "1:1", "duration": 5}, "cannot make 1:1 clips (it makes 16:9, 9:16)."),
    ],
)
async def test_a_request_the_model_cannot_honour_fails_before_anything_is_paid(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path, changes: dict, says: str
) -> None:
    fake.models = [
        {**SEEDANCE, "supported_durations": [5, 10], "supported_aspect_ratios": ["16:9", "9:16"]}
    ]
    calls = Calls(fake)
    with pytest.raises(JobError) as caught:
        await provider_for(fake).generate(
            request_for(photo_file, **changes), tmp_path, calls.report, calls.checkpoint
        )
    assert (caught.value.code, caught.value.retryable) == ("unsupported_options", False)
    assert caught.value.message == f"OpenRouter: bytedance/seedance-2.0 {says}"
    assert fake.calls("POST /videos") == [] and calls.saved == []


async def test_an_unknown_model_fails_before_anything_is_paid(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path
) -> None:
    calls = Calls(fake)
    with pytest.raises(JobError) as caught:
        await provider_for(fake, openrouter_video_model="acme/nothing").generate(
            request_for(photo_file), tmp_path, calls.report, calls.checkpoint
        )
    assert caught.value.code == "unsupported_model" and not caught.value.retryable
    assert fake.calls("POST /videos") == []


def test_the_resolution_falls_back_to_the_nearest_listed(photo_file: Path) -> None:
    request = request_for(photo_file)
    model = {**SEEDANCE, "supported_resolutions": ["480p", "1080p"]}
    assert choose_options(model, request, "720p")["resolution"] == "1080p"
    model = {**SEEDANCE, "supported_resolutions": ["360p", "480p"]}
    assert choose_options(model, request, "720p")["resolution"] == "480p"


@pytest.mark.parametrize("outcome", ["failed", "cancelled", "expired"])
async def test_a_job_that_ends_badly_fails_with_the_providers_words(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path, outcome: str
) -> None:
    fake.video_plan = VideoPlan(polls=(), outcome=outcome, error="Content policy violation")
    calls = Calls(fake)
    with pytest.raises(JobError) as caught:
        await provider_for(fake).generate(
            request_for(photo_file), tmp_path, calls.report, calls.checkpoint
        )
    assert caught.value.message == f"OpenRouter: Content policy violation ({outcome})"
    assert (caught.value.code, caught.value.retryable) == (f"provider_{outcome}", False)


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        (Fault(400, message="prompt is too long"), "provider_bad_request", False),
        (Fault(402), "insufficient_credits", False),
        (Fault(429, retry_after=2), "provider_rate_limited", True),
        (Fault(500), "provider_unavailable", True),
        (Fault(503), "provider_unavailable", True),
    ],
)
async def test_submission_failures_are_sorted(
    fake: FakeOpenRouter,
    photo_file: Path,
    tmp_path: Path,
    fault: Fault,
    code: str,
    retryable: bool,
) -> None:
    fake.fail("POST /videos", fault)
    calls = Calls(fake)
    with pytest.raises(JobError) as caught:
        await provider_for(fake).generate(
            request_for(photo_file), tmp_path, calls.report, calls.checkpoint
        )
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert caught.value.retry_after == fault.retry_after
    # An answer, even an error, means no paid job: the mark is lifted for the retry.
    assert len(fake.calls("POST /videos")) == 1
    assert [saved["status"] for saved in calls.saved] == ["submitting", "not_submitted"]


async def test_an_unconfirmed_submission_is_never_sent_twice(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path
) -> None:
    fake.fail("POST /videos", Fault(drop=True))  # sent, and the answer lost
    calls = Calls(fake)
    provider = provider_for(fake)
    with pytest.raises(JobError) as caught:
        await provider.generate(request_for(photo_file), tmp_path, calls.report, calls.checkpoint)
    assert (caught.value.code, caught.value.retryable) == ("provider_unconfirmed", False)
    assert "not sent again" in caught.value.message
    [marker] = calls.saved
    assert marker["status"] == "submitting"

    # A later delivery (a redelivery after a crash, say) finds the mark. While the
    # submission might still land it waits; after that it stops too. Never sent again.
    again = request_for(photo_file, provider_job=marker)
    with pytest.raises(PollLater) as waiting:
        await provider.generate(again, tmp_path, calls.report, calls.checkpoint)
    assert waiting.value.status == "submitting"
    stale = {**marker, "submitting_at": now() - timedelta(seconds=provider.submit_grace + 1)}
    with pytest.raises(JobError) as caught:
        await provider.generate(
            request_for(photo_file, provider_job=stale), tmp_path, calls.report, calls.checkpoint
        )
    assert caught.value.code == "provider_unconfirmed" and "Retry the job" in caught.value.message
    assert len(fake.calls("POST /videos")) == 1


async def test_a_submission_outlives_its_cancelled_handler_and_saves_its_id(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path
) -> None:
    """The broker connection drops (or the worker stops) while POST /videos is on its
    way: the handler is cancelled, but the submission gets its answer and saves the paid
    job's id, which the next delivery resumes."""
    fake.fail("POST /videos", Fault(delay=1.0))
    calls = Calls(fake)
    provider = provider_for(fake)
    handler = asyncio.create_task(
        provider.generate(request_for(photo_file), tmp_path, calls.report, calls.checkpoint)
    )
    await eventually(lambda: as_value(fake.calls("POST /videos")), bool, 10)  # on its way
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler

    await eventually(lambda: as_value(calls.saved), lambda s: "id" in s[-1], 10)
    saved = calls.saved[-1]
    assert saved["id"] in fake.jobs

    with pytest.raises(PollLater):
        await provider.generate(
            request_for(photo_file, provider_job=saved), tmp_path, calls.report, calls.checkpoint
        )
    assert len(fake.calls("POST /videos")) == 1
    assert fake.calls("GET /videos/{id}")[-1].path.endswith(saved["id"])


async def test_a_failing_poll_waits_for_the_next_one_and_the_deadline_ends_it(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path
) -> None:
    provider = provider_for(fake, openrouter_video_deadline_seconds=600)
    calls = Calls(fake)
    with pytest.raises(PollLater):
        await provider.generate(request_for(photo_file), tmp_path, calls.report, calls.checkpoint)
    resumed = request_for(photo_file, provider_job=calls.saved[-1])

    # A 502 while following a paid job is not a failed attempt: poll again later.
    fake.fail("GET /videos/{id}", Fault(502, retry_after=5))
    with pytest.raises(PollLater) as later:
        await provider.generate(resumed, tmp_path, calls.report, calls.checkpoint)
    assert later.value.seconds == 5

    # Past the deadline a running job fails, for good.
    late = {**calls.saved[-1], "submitted_at": now() - timedelta(minutes=11)}
    with pytest.raises(JobError) as caught:
        await provider.generate(
            request_for(photo_file, provider_job=late), tmp_path, calls.report, calls.checkpoint
        )
    assert (caught.value.code, caught.value.retryable) == ("provider_timeout", False)
    assert "not ready 11 minutes after it was submitted" in caught.value.message
    assert len(fake.calls("POST /videos")) == 1


@settings(max_examples=200, deadline=None)
@given(
    first=st.floats(min_value=0.1, max_value=60),
    longest=st.floats(min_value=0.1, max_value=2 * LONGEST_DELAY),
    ages=st.lists(st.floats(min_value=0, max_value=6 * 2 * LONGEST_DELAY), min_size=2, max_size=5),
)
def test_polls_spread_out_and_leave_their_delay_queue_on_time(
    first: float, longest: float, ages: list[float]
) -> None:
    """Whatever the settings and the job's age: the interval is a delay queue's own length
    (sent there, it comes back exactly then), never longer than the schedule asks (a sixth
    of the age between the two settings) nor shorter by a queue's step, past the longest
    queue exactly what it asks, and it only grows as the job ages."""
    provider = OpenRouterVideoProvider(
        VideoSettings(
            openrouter_api_key="sk-or-test",  # type: ignore[arg-type]
            openrouter_poll_interval_seconds=first,
            openrouter_poll_max_interval_seconds=longest,
        )
    )
    buckets = delay_buckets()
    intervals = [provider.interval(age) for age in sorted(ages)]
    for age, interval in zip(sorted(ages), intervals, strict=True):
        asked = min(max(longest, first), max(first, age / 6))
        if asked >= LONGEST_DELAY:
            assert interval == asked
            continue
        assert delay_bucket(interval) == interval
        if asked >= buckets[0]:
            assert interval <= asked + 1e-6
            assert not [b for b in buckets if interval < b <= asked]  # the nearest below
        else:
            assert interval == buckets[0]
    assert intervals == sorted(intervals)


async def test_webhook_mode_asks_for_a_callback(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path
) -> None:
    provider = provider_for(fake, openrouter_webhook_url="https://shop.example/api/v1/webhooks/x")
    calls = Calls(fake)
    with pytest.raises(PollLater):
        await provider.generate(request_for(photo_file), tmp_path, calls.report, calls.checkpoint)
    assert fake.calls("POST /videos")[0].json["callback_url"].startswith("https://shop.example")


def test_the_key_chooses_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDEO_PROVIDER", raising=False)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    assert VideoSettings().video_provider == "local"
    keyed = VideoSettings(openrouter_api_key="sk-or-1")  # type: ignore[arg-type]
    assert keyed.video_provider == "openrouter"
    assert get_provider(keyed).name == "openrouter"
    assert VideoSettings(openrouter_api_key="sk-or-1", video_provider="local").video_provider == (  # type: ignore[arg-type]
        "local"
    )


async def test_the_worker_polls_through_retry_queues_and_stores_the_clip(
    openrouter_worker: Worker, fake: FakeOpenRouter
) -> None:
    worker = openrouter_worker
    fake.video_plan = VideoPlan(polls=("pending", "in_progress", "in_progress"))
    job = await worker.add_job(mug())
    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
    done = await worker.wait_for_status(job["_id"], "completed", "failed", within=60)
    assert done["status"] == "completed", done.get("error")

    assert len(fake.calls("POST /videos")) == 1
    assert len(fake.calls("GET /videos/{id}")) == 4
    provider_job = done["provider_job"]
    assert provider_job["provider"] == "openrouter" and provider_job["id"] in fake.jobs
    assert provider_job["cost"] == 0.35 and provider_job["status"] == "completed"
    assert provider_job["submitted_at"] <= provider_job["completed_at"]
    progress = [h["progress"] for h in done["history"] if h["status"] == "generating"]
    assert progress == [40, 45, 60, 80], "one step per status, none repeated per poll"
    assert (done["video"]["width"], done["video"]["height"]) == (720, 1280)
    assert worker.stored(done["video"]["key"]).is_file()
    assert "lease" not in done and done["attempts"] == 0
    # Finished like a local clip, and scored: the fake's test pattern is not the mug.
    assert done["video"]["finished"] is True and done["video"]["audio"]["codec"] == "aac"
    assert done["video"]["fidelity"] < 0.45 and done["video"]["fidelity_warning"] is True
    assert (
        REGISTRY.get_sample_value("pv_video_fidelity_warnings_total", {"provider": "openrouter"})
        or 0
    ) >= 1


async def test_a_poll_comes_back_when_asked_not_at_the_next_retry_tier(
    settings: CommonSettings, fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls every 2 s while the only retry tier is 20 s: each poll comes 2 s or a little
    more after the one before (its own delay queue), never early and far from 20 s."""
    fake.video_plan = VideoPlan(polls=("pending", "in_progress", "in_progress"))
    polls_every = {
        "RETRY_DELAYS": "[20]",
        "OPENROUTER_POLL_INTERVAL_SECONDS": "2",
        "OPENROUTER_POLL_MAX_INTERVAL_SECONDS": "2",
    }
    async with worker_on(fake, monkeypatch, **polls_every) as worker:
        job = await worker.add_job(mug())
        await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
        done = await worker.wait_for_status(job["_id"], "completed", "failed", within=60)
    assert done["status"] == "completed", done.get("error")
    polls = [call.at for call in fake.calls("GET /videos/{id}")]
    assert len(polls) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    assert all(2.0 <= gap < 12 for gap in gaps), gaps


async def test_the_worker_fails_the_job_with_the_providers_reason(
    openrouter_worker: Worker, fake: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    worker = openrouter_worker
    fake.video_plan = VideoPlan(polls=("pending",), outcome="expired", error="Job expired")
    job = await worker.add_job(mug())
    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
    done = await worker.wait_for_status(job["_id"], "completed", "failed", within=60)
    # The owner reads the stable message of the code; the provider's reason is logged.
    assert done["error"] == {
        "code": "provider_expired",
        "message": user_message("provider_expired"),
        "retryable": False,
    }
    assert await failure_logged(caplog, job["_id"], "OpenRouter: Job expired (expired)")
    assert len(fake.calls("POST /videos")) == 1


async def test_the_model_list_is_read_once_per_ttl(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path
) -> None:
    provider = provider_for(fake, openrouter_models_ttl_seconds=3600)
    calls = Calls(fake)
    for job_id in ("job-1", "job-2"):
        with pytest.raises(PollLater):
            await provider.generate(
                request_for(photo_file, job_id=job_id), tmp_path, calls.report, calls.checkpoint
            )
    assert len(fake.calls("POST /videos")) == 2
    assert len(fake.calls("GET /videos/models")) == 1

    provider.catalog.ttl = 0  # expired: the next job reads it again
    with pytest.raises(PollLater):
        await provider.generate(
            request_for(photo_file, job_id="job-3"), tmp_path, calls.report, calls.checkpoint
        )
    assert len(fake.calls("GET /videos/models")) == 2


async def test_two_handlers_of_one_job_send_one_paid_request(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path, mongo_db: Any
) -> None:
    """A redelivered event handled in the same process shares its holder, so the lease
    cannot tell its two handlers apart (seen after a database restart): the submission
    mark is taken only while none is there, and the second handler sends nothing."""
    repo = JobRepository(mongo_db)
    job, _ = await repo.create({"_id": new_job_id(), "owner": "shop@example.com"})
    holder = "video-worker-1"
    await mongo_db.jobs.update_one(
        {"_id": job["_id"]},
        {"$set": {"lease": {"holder": holder, "until": now() + timedelta(minutes=5)}}},
    )

    async def checkpoint(data: dict[str, Any]) -> None:
        provider_job = {"provider": "openrouter", "holder": holder, **data}
        assert await save_checkpoint(repo, job["_id"], holder, provider_job)

    provider = provider_for(fake)
    request = request_for(photo_file, job_id=job["_id"])
    calls = Calls(fake)
    first, second = await asyncio.gather(
        provider.generate(request, tmp_path / "a", calls.report, checkpoint),
        provider.generate(request, tmp_path / "b", calls.report, checkpoint),
        return_exceptions=True,
    )
    outcomes = sorted(type(o).__name__ for o in (first, second))
    assert outcomes == ["PollLater", "SubmissionUnderWay"], (first, second)
    assert len(fake.calls("POST /videos")) == 1
    saved = (await repo.get(job["_id"]))["provider_job"]
    assert saved["id"] in fake.jobs


class AnswerLost:
    """A repository whose database applies the first write of `method` and then loses its
    answer, as when it restarts at that moment (a retryable write's retry finds the work
    done)."""

    def __init__(self, repo: JobRepository, method: str) -> None:
        self.repo = repo
        self.method = method
        self.lost = 1

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.repo, name)
        if name != self.method:
            return real

        async def applied_then_lost(*args: Any, **kwargs: Any) -> Any:
            done = await real(*args, **kwargs)
            if self.lost:
                self.lost -= 1
                raise AutoReconnect("connection closed")
            return done

        return applied_then_lost


async def leased_job(mongo_db: Any, holder: str) -> tuple[JobRepository, str]:
    repo = JobRepository(mongo_db)
    job, _ = await repo.create({"_id": new_job_id(), "owner": "shop@example.com"})
    await mongo_db.jobs.update_one(
        {"_id": job["_id"]},
        {"$set": {"lease": {"holder": holder, "until": now() + timedelta(minutes=5)}}},
    )
    return repo, job["_id"]


async def test_a_mark_whose_answer_was_lost_is_known_as_its_own(
    fake: FakeOpenRouter, photo_file: Path, tmp_path: Path, mongo_db: Any, monkeypatch
) -> None:
    """The database stored the `submitting` mark and restarted before answering: the
    retried write finds the mark there. It is this handler's own, so the clip is sent and
    its id saved (it was once taken for another handler's: nothing was sent, and the job
    failed as `provider_unconfirmed` minutes later)."""
    monkeypatch.setattr(handlers, "CHECKPOINT_WAITS", (0.01,) * 3)
    holder = "video-worker-1"
    repo, job_id = await leased_job(mongo_db, holder)
    flaky = AnswerLost(repo, "update_fields")

    async def checkpoint(data: dict[str, Any]) -> None:
        provider_job = {"provider": "openrouter", "holder": holder, **data}
        assert await save_checkpoint(flaky, job_id, holder, provider_job)  # type: ignore[arg-type]

    with pytest.raises(PollLater):
        await provider_for(fake).generate(
            request_for(photo_file, job_id=job_id), tmp_path, Calls(fake).report, checkpoint
        )
    assert flaky.lost == 0
    assert len(fake.calls("POST /videos")) == 1
    saved = (await repo.get(job_id))["provider_job"]
    assert saved["id"] in fake.jobs and saved["status"] != "submitting"


async def test_a_paid_id_whose_answer_was_lost_counts_as_saved(mongo_db: Any, monkeypatch) -> None:
    """The lease is gone (the handler was cancelled while it sent), the paid id is saved
    over the mark, and the answer to that write is lost: the id is there, so it is saved."""
    monkeypatch.setattr(handlers, "CHECKPOINT_WAITS", (0.01,) * 3)
    holder = "video-worker-1"
    repo, job_id = await leased_job(mongo_db, holder)
    mark = {"provider": "openrouter", "holder": holder, "status": "submitting"}
    assert await save_checkpoint(repo, job_id, holder, mark)
    await mongo_db.jobs.update_one({"_id": job_id}, {"$unset": {"lease": ""}})

    paid = {"provider": "openrouter", "holder": holder, "id": "vid_1", "status": "pending"}
    flaky = AnswerLost(repo, "record_submission")
    assert await save_checkpoint(flaky, job_id, holder, paid)  # type: ignore[arg-type]
    assert flaky.lost == 0
    assert (await repo.get(job_id))["provider_job"]["id"] == "vid_1"

    # Another handler's id over it is not ours: False (nothing of ours was saved).
    other = {**paid, "id": "vid_2"}
    assert not await save_checkpoint(repo, job_id, holder, other)
