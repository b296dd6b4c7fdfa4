"""`prompt.ready` → a clip from the video provider → storage → `job.completed`.

Idempotent: the stage is claimed with a lease (a duplicate finds it busy or done), the
storage keys are fixed per job (a second upload overwrites, never adds a clip), and the
job's `video` is stored by the write that completes it, while this worker holds the lease
(a job left in `storing` with its `video` by an earlier version completes without
rendering again).
"""

import asyncio
import hashlib
import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from faststream import AckPolicy
from pymongo.errors import PyMongoError

from common.brief import Brief
from common.errors import JobError
from common.events import JobStatus, PromptReady
from common.fairness import StagePool
from common.jobs import ClaimOutcome, Job, JobRepository, now
from common.lease import LeaseLost, holding_lease
from common.media import InvalidMedia, VideoInfo, probe_video
from common.media_work import STEPS as MEDIA_STEPS
from common.metrics import (
    DUPLICATE_EVENTS,
    MEDIA_CPU,
    PROVIDER_CALLS,
    PROVIDER_COST,
    PROVIDER_SECONDS,
    VIDEO_FIDELITY,
    VIDEO_FIDELITY_WARNINGS,
)
from common.storage import ObjectNotFound, poster_key, video_key
from common.storage_errors import storage_errors
from common.worker import RetryLater, WorkerContext, resuming
from video import finishing
from video.budget import Spending
from video.config import VideoSettings
from video.fidelity import fidelity_fields
from video.finishing.loudness import LoudnessError
from video.poster import extract_poster, poster_time
from video.progress import MIN_STEP, ProgressReporter
from video.providers.base import (
    PollLater,
    SubmissionUnderWay,
    VideoProvider,
    VideoRequest,
    get_provider,
)
from video.render import RenderError
from video.render.ffmpeg import FfmpegError, FfmpegTimeout, limit_media
from video.validation import check_clip

log = logging.getLogger(__name__)

STAGE = "generating"
# Jobs waiting for a clip, and jobs having theirs made (common/fairness.py).
VIDEO_POOL = StagePool(
    ready=JobStatus.PROMPT_READY, working=(JobStatus.GENERATING, JobStatus.STORING)
)


def seed_for(job: Job, prompt: str) -> int:
    """The same photo and prompt get the same seed, so a provider can repeat a clip."""
    digest = hashlib.sha256(f"{job['image']['sha256']}\n{prompt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# Waits between tries to save a provider checkpoint while the database is away: about two
# minutes in all. A restart of a busy database took longer than the half minute this was
# before, and each lost id throws away a clip already paid for.
CHECKPOINT_WAITS = (1, 2, 4, 8, 15, 30, 60)


async def save_checkpoint(
    repo: JobRepository, job_id: str, holder: str, provider_job: dict[str, Any]
) -> bool:
    """Save a provider's checkpoint (a paid job's id), trying again for about two
    minutes while the database is away: the id exists only in memory until then, and
    losing it would fail a clip that is already paid for. A paid job's id is saved over
    our own `submitting` mark even when the lease is gone (the handler was cancelled
    while it was sent). False if it could not be saved for want of the lease.

    A write the database applied before its answer was lost (a restart) is tried again
    and then finds its own work there: a mark carries a token of its own (a redelivery
    in this process shares the holder), a paid job its id, so it is not taken for
    another handler's."""
    marking = provider_job.get("status") == "submitting"
    if marking:
        provider_job = {**provider_job, "mark": uuid4().hex}
    for wait in (*CHECKPOINT_WAITS, None):
        try:
            if await repo.update_fields(
                job_id,
                holder=holder,
                fields={"provider_job": provider_job},
                unless_submitted=marking,
            ):
                return True
            if marking:
                stored = await stored_provider_job(repo, job_id)
                if stored.get("mark") == provider_job["mark"]:
                    return True
                if stored.get("status") == "submitting" or stored.get("id"):
                    raise SubmissionUnderWay(job_id)
                return False
            if "id" not in provider_job:
                return False
            if await repo.record_submission(job_id, holder=holder, provider_job=provider_job):
                return True
            return (await stored_provider_job(repo, job_id)).get("id") == provider_job["id"]
        except PyMongoError as e:
            if wait is None:
                raise
            log.warning("could not save the provider checkpoint (%s); again in %ss", e, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


async def stored_provider_job(repo: JobRepository, job_id: str) -> dict[str, Any]:
    job = await repo.get(job_id)
    return (job or {}).get("provider_job") or {}


class VideoStage:
    def __init__(
        self, ctx: WorkerContext, settings: VideoSettings, provider: VideoProvider
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.provider = provider
        # Clips checked, finished and stored at once: a worker polling many provider jobs
        # (a high prefetch) finishes their clips a few at a time.
        self.finishing = asyncio.Semaphore(settings.media_concurrency)
        # Series from the start, so the cost and fidelity panels show 0 (or no score yet)
        # rather than nothing: the local renderer's clips are never scored. Scores are
        # counted under the configured provider's name (video/fidelity.py).
        PROVIDER_COST.labels(provider=provider.name)
        VIDEO_FIDELITY.labels(provider=settings.video_provider)
        VIDEO_FIDELITY_WARNINGS.labels(provider=settings.video_provider)
        for step in MEDIA_STEPS:
            MEDIA_CPU.labels(step=step)

    async def handle(self, event: PromptReady) -> None:
        ctx = self.ctx
        claim = await ctx.repo.claim(
            event.job_id,
            ready=JobStatus.PROMPT_READY,
            working=(JobStatus.GENERATING, JobStatus.STORING),
            progress=40,
            lease_seconds=self.settings.lease_seconds,
            holder=ctx.holder,
            resume_only=resuming(),
        )
        if claim.outcome is ClaimOutcome.BUSY:
            raise RetryLater(claim.retry_in)
        if claim.outcome is ClaimOutcome.DONE:
            DUPLICATE_EVENTS.labels(stage=STAGE).inc()
            status = claim.job["status"] if claim.job else "missing"
            log.info("the job is %s: prompt.ready dropped as a duplicate", status)
            await ctx.pipeline.announce_final_again(claim.job)
            return
        assert claim.job is not None
        job = claim.job
        video = await self.stored_video(job)
        if video is None:
            try:
                video = await holding_lease(
                    ctx.repo,
                    job["_id"],
                    holder=ctx.holder,
                    seconds=self.settings.lease_seconds,
                    work=self.make_and_store(job),
                )
            except SubmissionUnderWay:
                log.warning("another delivery of this job is submitting it; this one sends nothing")
                return
            except LeaseLost:
                log.warning("the job is no longer ours (canceled, timed out or taken over)")
                await self.cancel_at_provider(job["_id"])
                return
            except PollLater as later:
                # The provider's job still runs: hand the job back and look again after
                # the time asked for, from a delay queue, instead of holding a prefetch
                # slot while it runs.
                if not await self.hand_back_polling(job, later):
                    return
                log.info("provider job %s; next poll in %.0fs", later.status, later.seconds)
                raise RetryLater(later.seconds, exact=True) from None
            if video is None:
                return
        else:
            log.info("the clip was stored before a restart; completing the job")
        done = await ctx.pipeline.advance(
            job["_id"],
            expected=[JobStatus.STORING],
            to=JobStatus.COMPLETED,
            progress=100,
            fields={"video": video},
            unset=["lease"],
            holder=ctx.holder,
        )
        if done is None:
            log.info("the job left storing or is no longer ours before it completed; dropped")
            await self.cancel_at_provider(job["_id"])
            return
        log.info(
            "clip stored: %s (%.1fs, %d bytes)", video["key"], video["duration"], video["size"]
        )

    async def hand_back_polling(self, job: Job, later: PollLater) -> bool:
        """Hand the job back until its next poll, in one write: the lease dropped, the
        poll's time noted for the reconciler and, when the provider says the clip moved
        on, the new progress stored and announced. False when the job ended meanwhile
        (canceled, timed out): the provider's job is canceled and not polled again."""
        ctx = self.ctx
        due = now() + timedelta(seconds=later.seconds)
        progress = None if later.progress is None else ProgressReporter.percent(later.progress)
        if progress is None or progress - job["progress"] < MIN_STEP:
            await ctx.repo.hand_back(job["_id"], holder=ctx.holder, retry_in=later.seconds)
            return True
        moved = await ctx.pipeline.advance(
            job["_id"],
            expected=[JobStatus.GENERATING],
            to=JobStatus.GENERATING,
            progress=progress,
            fields={"retry_at": due},
            unset=["lease"],
            holder=ctx.holder,
        )
        if moved is not None:
            return True
        current = await ctx.repo.get(job["_id"])
        if current is None or JobStatus(current["status"]).is_final:
            log.warning("the job is no longer ours (canceled or timed out)")
            await self.cancel_at_provider(job["_id"])
            return False
        return True  # taken over meanwhile: its next poll finds out who holds it

    async def cancel_at_provider(self, job_id: str) -> None:
        """A job that ended while its clip was being made: cancel the provider's job
        where the provider can (`cancel(provider_job)`), so nobody pays for it."""
        cancel = getattr(self.provider, "cancel", None)
        job = await self.ctx.repo.get(job_id)
        if cancel is None or job is None or not job.get("provider_job"):
            return
        if job["status"] not in (JobStatus.CANCELED, JobStatus.FAILED):
            return  # taken over by another worker: the provider job is still wanted
        try:
            await cancel(job["provider_job"])
        except Exception as e:  # best effort: the job is final either way
            log.warning("could not cancel the provider job: %s: %s", type(e).__name__, e)

    async def stored_video(self, job: Job) -> dict[str, Any] | None:
        """The `video` of a job that crashed after its upload, if both objects are there."""
        video = job.get("video")
        if job["status"] != JobStatus.STORING or not video:
            return None
        with storage_errors("check the stored clip"):
            stored = [await self.ctx.storage.exists(video[k]) for k in ("key", "poster_key")]
        return video if all(stored) else None

    async def make_and_store(self, job: Job) -> dict[str, Any] | None:
        """Render, check and upload the clip and its poster; the job's `video` field, or
        None when the job left the stage meanwhile (canceled, say)."""
        with tempfile.TemporaryDirectory(prefix="video-") as tmp:
            workdir = Path(tmp)
            request = await self.request_for(job, workdir)
            clip = await self.generate(request, workdir, reported=job["progress"])
            async with self.finishing:
                return await self.finish_and_store(job, request, clip, workdir)

    async def finish_and_store(
        self, job: Job, request: VideoRequest, clip: Path, workdir: Path
    ) -> dict[str, Any] | None:
        """Check and finish the provider's clip, take its poster and upload both; the
        job's `video` field (stored by the write that completes the job), or None when
        the job left the stage meanwhile."""
        ctx = self.ctx
        job_id = job["_id"]
        try:
            info = await asyncio.to_thread(probe_video, clip)
        except InvalidMedia as e:
            raise JobError("invalid_video", f"The generated clip cannot be read: {e}") from e
        check_clip(info, request)
        await self.fetch_photo(request)  # a finished poll did not fetch it; finishing needs it
        clip, info, ad = await self.finish(clip, info, request, workdir)
        poster = await self.poster(
            clip, workdir / "poster.jpg", info.duration, at=ad.pop("poster_at", None)
        )

        if job["status"] == JobStatus.GENERATING:
            moved = await ctx.pipeline.advance(
                job_id, expected=[JobStatus.GENERATING], to=JobStatus.STORING, progress=90
            )
            if moved is None:
                log.info("the job left generating while its clip was made; dropped")
                return None
        with storage_errors("store the clip"):
            await ctx.storage.put_file(video_key(job_id), clip, "video/mp4")
            await ctx.storage.put_file(poster_key(job_id), poster, "image/jpeg")
        video = {
            "key": video_key(job_id),
            "poster_key": poster_key(job_id),
            "duration": info.duration,
            "width": info.width,
            "height": info.height,
            "size": clip.stat().st_size,
            "codec": info.codec,
            **ad,
        }
        return video

    async def finish(
        self, clip: Path, info: VideoInfo, request: VideoRequest, workdir: Path
    ) -> tuple[Path, VideoInfo, dict[str, Any]]:
        """The finished ad (video/finishing) and what the job's `video` says about it;
        the raw clip when the owner asked for no finishing (`finish=false`)."""
        # Scored for AI clips only: the local renderer shows the photo itself.
        fields: dict[str, Any] = {"fidelity": None, "fidelity_warning": False}
        if self.provider.name != "local":
            fields = await fidelity_fields(request.image, clip, self.settings)
        if not request.finish:
            return clip, info, {**fields, "finished": False, "audio": None}
        try:
            finished = await finishing.finish(
                clip,
                request,
                workdir,
                duration=min(info.duration, float(request.duration)),
                fps=info.fps or self.settings.render_fps,
                time_limit=self.settings.render_timeout_seconds,
            )
            info = await asyncio.to_thread(probe_video, finished.path)
        except FfmpegTimeout as e:
            raise JobError("render_timeout", f"Finishing took too long: {e}", retryable=True) from e
        except (FfmpegError, LoudnessError, InvalidMedia, RenderError) as e:
            raise JobError("render_failed", f"The ad could not be finished: {e}") from e
        check_clip(info, request)
        return (
            finished.path,
            info,
            {
                **fields,
                "finished": True,
                "audio": finished.audio,
                "timeline": finished.timeline_fields(),
                "poster_at": finished.poster_at,
            },
        )

    async def request_for(self, job: Job, workdir: Path) -> VideoRequest:
        prompt = (job.get("prompt") or {}).get("text")
        if not prompt:
            raise JobError("prompt_missing", "The job has no video prompt to render.")
        key = job["image"]["key"]
        source = workdir / f"source{Path(key).suffix}"
        options = job["options"]
        brief = job.get("brief")
        request = VideoRequest(
            job_id=job["_id"],
            image=source,
            prompt=prompt,
            title=job.get("title", ""),
            aspect_ratio=str(options["aspect_ratio"]),
            duration=int(options["duration"]),
            seed=seed_for(job, prompt),
            provider_job=job.get("provider_job"),
            image_key=key,
            owner=str(job.get("owner", "")),
            batch_id=job.get("batch_id"),
            brief=Brief.model_validate(brief) if brief else None,
            preset=options.get("preset"),
            cta=options.get("cta"),
            price=options.get("price"),
            music=options.get("music") or "on",
            captions=options.get("captions") or "on",
            finish=options.get("finish", True) is not False,
        )
        # A provider's job already submitted (the next poll) needs no photo until its clip
        # is there to finish (`fetch_photo` then): most polls fetch nothing.
        if not (job.get("provider_job") or {}).get("id"):
            await self.fetch_photo(request)
        return request

    async def fetch_photo(self, request: VideoRequest) -> None:
        """The product photo into the work folder, once."""
        if request.image.exists() or request.image_key is None:
            return
        with storage_errors("download the product photo"):
            try:
                await self.ctx.storage.download(request.image_key, request.image)
            except ObjectNotFound as e:
                raise JobError(
                    "source_missing", "The product photo is missing from storage."
                ) from e

    async def generate(self, request: VideoRequest, workdir: Path, *, reported: int) -> Path:
        """The provider's clip, with its call counted and timed."""
        ctx = self.ctx
        name = self.provider.name

        async def checkpoint(data: dict[str, Any]) -> None:
            provider_job = {"provider": name, "holder": ctx.holder, **data}
            if not await save_checkpoint(ctx.repo, request.job_id, ctx.holder, provider_job):
                raise LeaseLost(request.job_id)

        started = time.monotonic()
        outcome = "error"
        try:
            clip = await self.provider.generate(
                request,
                workdir,
                ProgressReporter(ctx.pipeline, request.job_id, reported=reported),
                checkpoint,
            )
            outcome = "ok"
        except PollLater:
            outcome = "polling"  # one poll of a job that still runs
            raise
        except JobError as e:
            outcome = e.code
            raise
        finally:
            PROVIDER_CALLS.labels(provider=name, operation="video", outcome=outcome).inc()
            PROVIDER_SECONDS.labels(provider=name, operation="video").observe(
                time.monotonic() - started
            )
        log.info("clip made by %s in %.1fs", name, time.monotonic() - started)
        return clip

    async def poster(self, clip: Path, out: Path, duration: float, at: float | None) -> Path:
        try:
            return await extract_poster(
                clip,
                out,
                at=poster_time(duration) if at is None else at,
                time_limit=self.settings.render_timeout_seconds,
            )
        except FfmpegTimeout as e:
            raise JobError(
                "render_timeout", f"The poster took too long: {e}", retryable=True
            ) from e
        except FfmpegError as e:
            raise JobError("invalid_video", f"No poster frame could be taken: {e}") from e


def register(
    ctx: WorkerContext, settings: VideoSettings, provider: VideoProvider | None = None
) -> VideoStage:
    """Subscribe the video stage to `video.jobs` on the worker's broker."""
    limit_media(settings.media_concurrency)
    if provider is None:
        spending = Spending(
            ctx.db,
            usd_per_day=settings.spend_limit_usd_per_day,
            clips_per_user=settings.paid_clips_per_user_per_day,
        )
        provider = get_provider(settings, ctx.storage, spending)
    stage = VideoStage(ctx, settings, provider)
    if (close := getattr(provider, "aclose", None)) is not None:
        ctx.closing.append(close)  # a provider's HTTP client, kept for the process
    work = ctx.topology.video_jobs

    @ctx.broker.subscriber(
        work.queue,
        ctx.topology.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="video.jobs:consume",
        description="Makes the job's clip and poster, stores them, then completes the job.",
    )
    @ctx.stage_handler(STAGE, work, VIDEO_POOL)
    async def on_prompt_ready(event: PromptReady) -> None:
        await stage.handle(event)

    return stage
