"""The OpenRouter provider: an image-to-video model makes the clip from the product photo
(its first frame) and the prompt, through OpenRouter's async video API.

Every accepted `POST /videos` is paid for, so a job submits once: the returned id is saved
on the job (`checkpoint`) before the first poll, and every later delivery (the next poll, a
redelivery after a crash, a webhook's wake-up) resumes polling that id. Each delivery polls
once; while OpenRouter works the provider raises `PollLater` and the worker re-schedules the
event through a retry queue, so no prefetch slot is held for minutes.

The submission itself is marked on the job before it is sent (`status: submitting`), and
mark, send and saved id run shielded from the handler's cancellation. If the answer never
arrives (the connection drops after sending, an unreadable reply, a crash before the id is
saved) the job fails with `provider_unconfirmed` instead of sending again (a delivery that
finds a recent mark first waits for it): a second paid job is worse than asking the user
to retry. An error answer from OpenRouter means no job was made, so that is retried as usual.

Before the mark, the clip is reserved from the spending caps (`video.budget`: the day's,
and the batch's `max_cost_usd`): a cap that is reached fails the job with nothing paid;
OpenRouter's refusal gives the reservation back, and the finished clip corrects it to the
real cost.
"""

import asyncio
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from common.errors import JobError
from common.jobs import now
from common.media import InvalidMedia, VideoInfo, frame_size, probe_video
from common.metrics import PROVIDER_COST
from common.openrouter import OpenRouter, OpenRouterConfig, Unconfirmed, image_url
from common.storage import Storage
from common.topology import LONGEST_DELAY, delay_bucket_below
from common.video_models import ModelCatalog
from video.budget import Spending, estimated_usd
from video.config import VideoSettings
from video.progress import HIGH, LOW
from video.providers.base import CheckpointCallback, PollLater, ProgressCallback, VideoRequest
from video.render.ffmpeg import FfmpegError, FfmpegTimeout, run_ffmpeg
from video.render.h264 import FRAMES, h264_args
from video.validation import PLAYABLE_PIX_FMTS

log = logging.getLogger(__name__)

# The first frame the model gets: sharp enough for a 1080p model, small enough to send.
IMAGE_MAX_SIDE = 1920
MAX_CLIP_BYTES = 500 * 1024 * 1024
RUNNING = ("pending", "in_progress")
ENDED = ("failed", "cancelled", "expired")
# `provider_job.status` while a submission's answer is awaited, and after it was refused.
SUBMITTING = "submitting"
NOT_SUBMITTED = "not_submitted"
# OpenRouter reports no percentage: the job's progress per status.
PROGRESS = {"pending": 45, "in_progress": 60, "downloading": 80}


def fraction(progress: int) -> float:
    """The ProgressReporter's fraction for a job progress between LOW and HIGH."""
    return (progress - LOW) / (HIGH - LOW)


def _listing(values: list[Any], unit: str = "") -> str:
    return ", ".join(f"{v}{unit}" for v in values)


def _height(resolution: str) -> int:
    found = re.match(r"(\d+)", resolution)
    return int(found.group(1)) if found else 0


def choose_options(model: dict[str, Any], request: VideoRequest, resolution: str) -> dict[str, Any]:
    """Duration, resolution and aspect ratio for the model, from what it lists: the request's
    duration and aspect ratio exactly (else the job fails now, before anything is paid),
    the wished resolution or the nearest one listed (the clip is scaled to size anyway)."""
    name = model.get("id", "the model")
    durations = model.get("supported_durations") or []
    if durations and request.duration not in durations:
        raise JobError(
            "unsupported_options",
            f"OpenRouter: {name} cannot make a {request.duration}-second clip "
            f"(it makes {_listing(durations, ' s')}); choose one of those lengths.",
        )
    ratios = model.get("supported_aspect_ratios") or []
    if ratios and request.aspect_ratio not in ratios:
        raise JobError(
            "unsupported_options",
            f"OpenRouter: {name} cannot make {request.aspect_ratio} clips "
            f"(it makes {_listing(ratios)}).",
        )
    frames = model.get("supported_frame_images")
    if isinstance(frames, list) and frames and "first_frame" not in frames:
        raise JobError(
            "unsupported_options",
            f"OpenRouter: {name} cannot start a clip from a photo (no first_frame support).",
        )
    resolutions = [str(r) for r in model.get("supported_resolutions") or []]
    if resolutions and resolution not in resolutions:
        wanted = _height(resolution)
        larger = sorted((r for r in resolutions if _height(r) >= wanted), key=_height)
        resolution = larger[0] if larger else max(resolutions, key=_height)
    return {
        "duration": request.duration,
        "resolution": resolution,
        "aspect_ratio": request.aspect_ratio,
    }


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def needs_conforming(info: VideoInfo, request: VideoRequest) -> bool:
    width, height = frame_size(request.aspect_ratio)
    return (
        (info.width, info.height) != (width, height)
        or info.codec != "h264"
        or info.pix_fmt not in PLAYABLE_PIX_FMTS
    )


class OpenRouterVideoProvider:
    name = "openrouter"

    def __init__(
        self,
        settings: VideoSettings,
        storage: Storage | None = None,
        spending: Spending | None = None,
    ) -> None:
        self.config = OpenRouterConfig.from_settings(
            settings, timeout=settings.openrouter_video_timeout_seconds
        )
        self.model = settings.openrouter_video_model
        self.resolution = settings.openrouter_video_resolution
        self.poll_interval = settings.openrouter_poll_interval_seconds
        self.poll_max_interval = max(
            settings.openrouter_poll_max_interval_seconds, self.poll_interval
        )
        self.deadline = settings.openrouter_video_deadline_seconds
        self.webhook_url = settings.openrouter_webhook_url
        self.render_timeout = settings.render_timeout_seconds
        # How long an unconfirmed submission may still be on its way: its send and its
        # answer (a read timeout each) and the save of its id.
        self.submit_grace = 2 * settings.openrouter_video_timeout_seconds + 30
        self.catalog = ModelCatalog(settings.openrouter_models_ttl_seconds)
        self.storage = storage
        # The spending caps every submission reserves from (None: no caps, in unit tests).
        self.spending = spending
        self.usd_per_second = settings.openrouter_video_usd_per_second
        # One client for the process (`aclose` at shutdown), and the submissions still
        # on their way (shielded from their handlers' cancellation), which `aclose` awaits.
        self.api = OpenRouter(self.config)
        self.sending: set[asyncio.Task[dict[str, Any]]] = set()

    async def aclose(self) -> None:
        """At shutdown: let submissions on their way save their ids, then close the client."""
        if self.sending:
            await asyncio.wait(self.sending, timeout=self.config.timeout)
        await self.api.aclose()

    async def generate(
        self,
        request: VideoRequest,
        workdir: Path,
        progress: ProgressCallback,
        checkpoint: CheckpointCallback | None = None,
    ) -> Path:
        if checkpoint is None:
            raise ValueError("the OpenRouter provider saves its paid job's id: pass checkpoint")
        job = request.provider_job
        if job and job.get("provider") == self.name and job.get("id"):
            log.info("resuming OpenRouter video job %s", job["id"])
        elif job and job.get("provider") == self.name and job.get("status") == SUBMITTING:
            self.unconfirmed(job)
        else:
            job = await self.submit(request, checkpoint)
        return await self.follow(request, job, workdir, progress, checkpoint)

    def unconfirmed(self, mark: dict[str, Any]) -> NoReturn:
        """A submission began and its id is not stored. While it may still be on its way
        (the handler that sent it was cancelled, its submission goes on), wait for it;
        after that, OpenRouter may be rendering and billing a job nobody knows: never
        send again."""
        age = (now() - _aware(mark.get("submitting_at"))).total_seconds()
        if age < self.submit_grace:
            raise PollLater(min(self.poll_interval, self.submit_grace - age), SUBMITTING)
        raise JobError(
            "provider_unconfirmed",
            "OpenRouter may have started a paid video job for this request whose id "
            "was never received; it was not sent again so as not to pay twice. "
            "Retry the job to send it anew.",
        )

    async def submit(self, request: VideoRequest, checkpoint: CheckpointCallback) -> dict[str, Any]:
        """Check the request against the model, then start the (paid) job and save its id."""
        model = await self.catalog.get(self.api, self.model)
        if model is None:
            raise JobError(
                "unsupported_model",
                f"OpenRouter: the video model {self.model} is not offered "
                "(not in GET /videos/models); set OPENROUTER_VIDEO_MODEL to one that is.",
            )
        options = choose_options(model, request, self.resolution)
        photo = await asyncio.to_thread(request.image.read_bytes)
        url = await image_url(self.storage, request.image_key, photo, max_side=IMAGE_MAX_SIDE)
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            **options,
            "frame_images": [
                {"type": "image_url", "image_url": {"url": url}, "frame_type": "first_frame"}
            ],
        }
        if model.get("seed") is not False:
            body["seed"] = request.seed
        if model.get("generate_audio") is not False:
            body["generate_audio"] = False  # a product clip is silent; audio costs more
        if self.webhook_url:
            body["callback_url"] = self.webhook_url
        price = estimated_usd(model, options["resolution"], request.duration, self.usd_per_second)
        # Shielded: if this handler is cancelled (the broker connection dropped, shutdown)
        # from the reservation on, the submission still gets its answer and saves the id,
        # so nothing paid is lost and no mark is left without its request.
        sending = asyncio.ensure_future(self._send(body, options, checkpoint, request, price))
        self.sending.add(sending)
        sending.add_done_callback(self.sending.discard)
        return await asyncio.shield(sending)

    async def _send(
        self,
        body: dict[str, Any],
        options: dict[str, Any],
        checkpoint: CheckpointCallback,
        request: VideoRequest,
        price: float,
    ) -> dict[str, Any]:
        """Reserve the clip from the spending caps, mark the job, POST /videos and save the
        paid job's id."""
        # A cap that is reached fails the job here, before anything is paid.
        reserved = (
            {"budget": await self.spending.reserve(request.owner, price, request.batch_id)}
            if self.spending
            else {}
        )
        options = {**options, **reserved}
        # Marked before sending: from here until the id is stored, nothing resubmits (a
        # mark already there, another handler's, refuses this one: nothing is sent).
        try:
            await checkpoint(
                {"status": SUBMITTING, "submitting_at": now(), "model": self.model, **reserved}
            )
        except BaseException:
            if self.spending and reserved:
                await self.spending.release(reserved["budget"])
            raise
        try:
            answer = await self.api.call("POST", "/videos", json_body=body, idempotent=False)
        except Unconfirmed:
            raise  # the mark and the reservation stay: it may be paid for
        except JobError:
            # OpenRouter answered with an error (or was never reached): no paid job.
            if self.spending and reserved:
                await self.spending.release(reserved["budget"])
            await checkpoint({"status": NOT_SUBMITTED, "model": self.model})
            raise
        video_id = answer.get("id")
        if not isinstance(video_id, str) or not video_id:
            raise JobError(
                "provider_unconfirmed",
                f"OpenRouter: POST /videos was accepted without a job id: {answer}",
            )
        saved = {
            "id": video_id,
            "polling_url": answer.get("polling_url"),
            "submitted_at": now(),
            "model": self.model,
            "status": answer.get("status", "pending"),
            **options,
        }
        # Before the first poll: a crash from here on resumes this job, never pays twice.
        # The id is logged first, so an operator can find the job if storing it fails.
        log.info("OpenRouter accepted video job %s", video_id)
        await checkpoint(saved)
        log.info("OpenRouter video job %s submitted (%s)", video_id, self.model)
        return {"provider": self.name, **saved}

    def interval(self, elapsed: float) -> float:
        """Polls spread out as the job ages: the first minute often, then up to the max.
        Rounded down to a delay queue's length (whole seconds up to 20 s): the poll then
        comes back exactly on time, where rounding up on the way made a finished clip wait
        up to a second more (a provider's Retry-After is still never cut short). Past the
        longest queue the wait goes round it to its exact end (common/worker.py)."""
        wanted = min(self.poll_max_interval, max(self.poll_interval, elapsed / 6))
        return wanted if wanted >= LONGEST_DELAY else float(delay_bucket_below(wanted))

    async def follow(
        self,
        request: VideoRequest,
        job: dict[str, Any],
        workdir: Path,
        progress: ProgressCallback,
        checkpoint: CheckpointCallback,
    ) -> Path:
        """One poll; the clip when the job is done, else PollLater or a JobError."""
        elapsed = (now() - _aware(job["submitted_at"])).total_seconds()
        try:
            answer = await self.api.call("GET", f"/videos/{job['id']}")
            status = str(answer.get("status"))
            if status == "completed":
                return await self.fetch(request, job, answer, workdir, progress, checkpoint)
        except JobError as e:
            if not e.retryable:
                raise
            # The job is paid for and runs on: a hiccup while following it is no reason to
            # give it up before the deadline.
            if elapsed > self.deadline:
                raise JobError(
                    "provider_timeout",
                    f"{e.message} (still failing {elapsed / 60:.0f} minutes after submission)",
                ) from e
            log.warning("following OpenRouter job %s: %s", job["id"], e.message)
            raise PollLater(max(self.interval(elapsed), e.retry_after or 0), "unreachable") from e
        if status in ENDED:
            reason = answer.get("error") or f"the video generation was {status}"
            raise JobError(f"provider_{status}", f"OpenRouter: {reason} ({status})")
        if elapsed > self.deadline:
            raise JobError(
                "provider_timeout",
                f"OpenRouter: the clip was not ready {elapsed / 60:.0f} minutes after it was "
                f"submitted (still {status}).",
            )
        if status not in PROGRESS:
            log.warning("OpenRouter job %s has an unknown status %r", job["id"], status)
        # Its progress is stored with the hand-back of the job (one write per poll).
        step = fraction(PROGRESS[status]) if status in PROGRESS else None
        raise PollLater(self.interval(elapsed), status, progress=step)

    async def fetch(
        self,
        request: VideoRequest,
        job: dict[str, Any],
        answer: dict[str, Any],
        workdir: Path,
        progress: ProgressCallback,
        checkpoint: CheckpointCallback,
    ) -> Path:
        """Record the cost (once), download the clip and bring it to the frame size."""
        if job.get("status") != "completed":
            usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
            cost = float((usage or {}).get("cost") or 0.0)
            job = {
                **job,
                "status": "completed",
                "cost": cost,
                "generation_id": answer.get("generation_id"),
                "completed_at": now(),
            }
            await checkpoint({k: v for k, v in job.items() if k != "provider"})
            if cost:
                PROVIDER_COST.labels(provider=self.name).inc(cost)
            if self.spending and isinstance(job.get("budget"), dict):
                await self.spending.settle(job["budget"], cost)
        await progress(fraction(PROGRESS["downloading"]))
        raw = workdir / "openrouter.mp4"
        size = await self.api.download(
            f"/videos/{job['id']}/content", raw, params={"index": 0}, max_bytes=MAX_CLIP_BYTES
        )
        log.info("OpenRouter clip downloaded (%d bytes)", size)
        return await self.conform(raw, request, workdir / "conformed.mp4")

    async def conform(self, clip: Path, request: VideoRequest, out: Path) -> Path:
        """The clip as stored: H.264 4:2:0 at the exact frame size of its aspect ratio.
        A model's own size (often a few pixels off) is scaled to fit and padded; its own
        sound, if it made any, is kept."""
        try:
            info = await asyncio.to_thread(probe_video, clip)
        except InvalidMedia as e:
            raise JobError("invalid_video", f"OpenRouter's clip cannot be read: {e}") from e
        if not needs_conforming(info, request):
            return clip
        width, height = frame_size(request.aspect_ratio)
        log.info("scaling the clip from %dx%d to %dx%d", info.width, info.height, width, height)
        video_filter = (
            f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,{FRAMES}"
        )
        try:
            await run_ffmpeg(
                [
                    "-i",
                    str(clip),
                    "-map",
                    "0:v:0",
                    "-map",
                    "0:a:0?",  # a model's own sound is kept (finishing levels it)
                    "-vf",
                    video_filter,
                    *h264_args(info.fps),
                    "-c:a",
                    "aac",
                    "-ar",
                    "48000",
                    "-movflags",
                    "+faststart",
                    "-y",
                    str(out),
                ],
                time_limit=self.render_timeout,
            )
        except FfmpegTimeout as e:
            raise JobError(
                "render_timeout", f"Scaling the clip took too long: {e}", retryable=True
            ) from e
        except FfmpegError as e:
            raise JobError("invalid_video", f"OpenRouter's clip cannot be scaled: {e}") from e
        return out
