"""Result reuse (the design's result cache): a job that asks for exactly what an earlier
completed job of the same owner made gets that job's clip and poster at once, with no
prompt call, no provider job and no render.

The **result key** covers everything that shapes the finished clip: the owner (a result
is never shared between owners), the photo's bytes (sha256), the title and description
exactly as stored (the title is drawn on the clip: case matters), every option of the job
(each key of `options`, defaults filled in, so an option added later is part of the key
without a change here), what the prompt stage writes with (provider, model, template
version) and what the video stage makes with (provider, model, its output settings), and
`RESULT_FORMAT_VERSION`. Any difference is another key; the order of fields is not.

The prompt stage computes the key when it takes a job (before any prompt is written),
looks for a completed job of the same owner with that key whose clip and poster are still
in storage, and if there is one completes the job from it. Otherwise the key is stored on
the job with its prompt, so that the job is found once it has completed (the lookup only
ever matches `status: completed`: failed and canceled jobs are never reused).

The reusing job's `video` names the same storage keys as the job it reuses (the clip is
shared, never copied) and `video.reused_from` the job that made the clip. Nothing deletes
or expires stored clips today; a future deletion must call `keys_still_used` first: a
stored object is deleted only when no other job names it (reference counting, derived from
the jobs themselves, see docs/architecture.md).
"""

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Self

from pydantic import model_validator
from pymongo.asynchronous.database import AsyncDatabase

from common.events import JobStatus
from common.jobs import Job
from common.presets import JOB_OPTION_DEFAULTS
from common.settings import CommonSettings
from common.storage import Storage
from common.storage_errors import storage_errors

log = logging.getLogger(__name__)

# Bump when the video stage makes something else from the same inputs (a new finishing
# step, another renderer): every earlier result then stops matching.
RESULT_FORMAT_VERSION = "2"  # 2: finished ads (captions, end card, music)

# How many earlier results (newest first) are looked at for one whose clip is still stored.
CANDIDATES = 5


class ResultReuseSettings(CommonSettings):
    """What the prompt worker needs to know to reuse results: whether to, and what the
    video stage makes clips with. The video worker reads the same variables (the chart's
    config is shared by every service); the defaults and the provider choice match
    VideoSettings (tests/test_result_reuse.py checks they agree)."""

    result_reuse: bool = True
    video_provider: str = ""
    openrouter_video_model: str = "bytedance/seedance-2.0"
    openrouter_video_resolution: str = "720p"
    render_fps: int = 30

    @model_validator(mode="after")
    def _choose_provider(self) -> Self:
        if not self.video_provider:
            self.video_provider = "openrouter" if self.openrouter_api_key else "local"
        return self

    def video_stage(self) -> dict[str, str]:
        """The video stage's part of the key: its provider, model and output settings."""
        if self.video_provider == "openrouter":
            return {
                "provider": "openrouter",
                "model": self.openrouter_video_model,
                "resolution": self.openrouter_video_resolution,
            }
        return {
            "provider": self.video_provider,
            "model": self.video_provider,
            "fps": str(self.render_fps),
        }


def key_material(
    *,
    owner: str,
    image_sha256: str,
    title: str,
    description: str,
    options: Mapping[str, Any],
    prompt_stage: Mapping[str, Any],
    video_stage: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything the result key covers (options with their defaults filled in, so a job
    stored before an option existed asks for that option's default)."""
    return {
        "version": RESULT_FORMAT_VERSION,
        "owner": owner,
        "image_sha256": image_sha256.lower(),
        "title": title,
        "description": description,
        "options": {**JOB_OPTION_DEFAULTS, **options},
        "prompt_stage": dict(prompt_stage),
        "video_stage": dict(video_stage),
    }


def result_key(material: Mapping[str, Any]) -> str:
    """The sha256 of the material's canonical JSON (sorted keys: field order is irrelevant)."""
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def origin_of(job: Job) -> str:
    """The job that made this job's clip: itself, or the one it reused."""
    return str((job.get("video") or {}).get("reused_from") or job["_id"])


def reused_fields(source: Job, key: str) -> dict[str, Any]:
    """The fields that complete a job from `source`'s result: the same prompt, brief and
    stored clip (same keys), nothing paid for again."""
    origin = origin_of(source)
    prompt = dict(source.get("prompt") or {})
    prompt.update(
        source="reused",
        cost=0.0,
        details={**(prompt.get("details") or {}), "reused_from": origin},
    )
    return {
        "result_key": key,
        "prompt": prompt,
        "brief": source.get("brief"),
        "video": {**source["video"], "reused_from": origin},
    }


class ResultReuse:
    """Computes a job's result key and finds the earlier result it may reuse."""

    def __init__(
        self,
        db: AsyncDatabase,
        storage: Storage,
        *,
        prompt_stage: Mapping[str, Any],
        video_stage: Mapping[str, Any],
        enabled: bool = True,
    ) -> None:
        self.jobs = db["jobs"]
        self.storage = storage
        self.prompt_stage = dict(prompt_stage)
        self.video_stage = dict(video_stage)
        self.enabled = enabled

    def key_for(self, job: Job) -> str:
        return result_key(
            key_material(
                owner=job["owner"],
                image_sha256=job["image"]["sha256"],
                title=job["title"],
                description=job["description"],
                options=job["options"],
                prompt_stage=self.prompt_stage,
                video_stage=self.video_stage,
            )
        )

    async def earlier_result(self, job: Job, key: str) -> Job | None:
        """The newest completed job of the same owner with this key whose clip and poster
        are still stored; None for a job that asks to be made again (`regenerate`)."""
        if not self.enabled or job.get("regenerate"):
            return None
        found = (
            self.jobs.find(
                # Equalities only (the job itself is skipped below): with an `_id $ne` in
                # it SecantusDB scanned the collection instead of using the index.
                {"owner": job["owner"], "result_key": key, "status": JobStatus.COMPLETED.value}
            )
            .sort("updated_at", -1)
            .limit(CANDIDATES + 1)
        )
        async for candidate in found:
            if candidate["_id"] == job["_id"]:
                continue
            video = candidate.get("video") or {}
            if not video.get("key") or not video.get("poster_key"):
                continue
            with storage_errors("check an earlier clip"):
                stored = all([await self.storage.exists(video[k]) for k in ("key", "poster_key")])
            if stored:
                return candidate
            log.warning("job %s's clip is missing from storage: not reused", candidate["_id"])
        return None


async def keys_still_used(db: AsyncDatabase, keys: Iterable[str], *, except_job: str) -> set[str]:
    """Which of these storage keys a job other than `except_job` still names as its clip
    or poster: a deletion of `except_job`'s files must keep them (a reusing job shares
    them). Index `video_key` keeps this one lookup per key."""
    used: set[str] = set()
    for key in keys:
        for field in ("video.key", "video.poster_key"):
            if await db["jobs"].count_documents({field: key, "_id": {"$ne": except_job}}, limit=1):
                used.add(key)
                break
    return used
