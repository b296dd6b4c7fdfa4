"""`job.submitted` → a prompt and its brief (reused or freshly written) on the job →
`prompt.ready`; or, when the owner had exactly this made before, the job completed at once
with that result (common/result_reuse.py): no prompt call, no provider job, no render.

Result reuse lives here, at the entry of the first stage, because it must come before
the prompt call (the first thing that costs) and it needs nothing the video stage has:
the job's completion from an earlier result is one conditional transition from
`prompting` to `completed`, announced like any other (`job.status`, `job.completed`).
"""

import asyncio
import logging
import time
from typing import Any

from faststream import AckPolicy

from common.errors import JobError
from common.events import JobStatus, JobSubmitted, PromptReady
from common.fairness import StagePool
from common.jobs import ClaimOutcome, Job
from common.lease import LeaseLost, holding_lease
from common.metrics import (
    PROMPT_REUSE,
    PROVIDER_CALLS,
    PROVIDER_COST,
    PROVIDER_SECONDS,
    RESULT_REUSE,
)
from common.result_reuse import ResultReuse, ResultReuseSettings, reused_fields
from common.storage import ObjectNotFound
from common.storage_errors import storage_errors
from common.worker import RetryLater, WorkerContext, resuming
from prompt import brief as briefs
from prompt import photo_facts
from prompt.config import PromptSettings
from prompt.products import ProductBusy, ProductPrompts
from prompt.providers.base import (
    PromptProvider,
    PromptRequest,
    PromptResult,
    VideoOptions,
    get_provider,
)
from prompt.reuse import PromptCache, reuse_key

log = logging.getLogger(__name__)

# Jobs waiting for a prompt, and jobs being given one (common/fairness.py).
PROMPT_POOL = StagePool(ready=JobStatus.QUEUED, working=(JobStatus.PROMPTING,))


class PromptStage:
    def __init__(
        self,
        ctx: WorkerContext,
        settings: PromptSettings,
        provider: PromptProvider,
        reuse: ResultReuseSettings | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.provider = provider
        self.cache = PromptCache(ctx.db)
        self.products = ProductPrompts(ctx.db, settings.lease_seconds)
        reuse = reuse or ResultReuseSettings()
        self.results = ResultReuse(
            ctx.db,
            ctx.storage,
            prompt_stage={
                "provider": provider.name,
                "model": provider.model,
                "template_version": settings.template_version,
            },
            video_stage=reuse.video_stage(),
            enabled=reuse.result_reuse,
        )
        # Series from the start, so the reuse and cost panels show 0 rather than nothing.
        for result in ("hit", "miss"):
            PROMPT_REUSE.labels(result=result)
            RESULT_REUSE.labels(result=result)
        PROVIDER_COST.labels(provider=provider.name)

    async def handle(self, event: JobSubmitted) -> None:
        ctx = self.ctx
        claim = await ctx.repo.claim(
            event.job_id,
            ready=JobStatus.QUEUED,
            working=(JobStatus.PROMPTING,),
            progress=10,
            lease_seconds=self.settings.lease_seconds,
            holder=ctx.holder,
            resume_only=resuming(),
        )
        if claim.outcome is ClaimOutcome.BUSY:
            raise RetryLater(claim.retry_in)
        if claim.outcome is ClaimOutcome.DONE:
            if claim.job is not None and claim.job["status"] == JobStatus.PROMPT_READY:
                # The prompt may be stored without its announcement (a crash in between);
                # announcing again is safe, the video stage drops duplicates.
                await ctx.publishers.prompt_ready.publish(PromptReady(job_id=event.job_id))
            await ctx.pipeline.announce_final_again(claim.job)
            return
        assert claim.job is not None
        result_key = self.results.key_for(claim.job)
        if await self.reuse_result(claim.job, result_key):
            return
        try:
            # Renewed while the LLM writes (a slow call, a repair): a lease that ran out
            # would let a redelivery take the job over and pay for a second call.
            fields = await holding_lease(
                ctx.repo,
                event.job_id,
                holder=ctx.holder,
                seconds=self.settings.lease_seconds,
                work=self.fields_for(claim.job),
            )
        except LeaseLost:
            log.warning("the job is no longer ours (canceled, timed out or taken over)")
            return
        except ProductBusy as busy:
            # Another variant's job writes the product's prompt: let go of this job until
            # it is written (taken over at once when the event comes back).
            await ctx.repo.hand_back(event.job_id, holder=ctx.holder, retry_in=busy.seconds)
            raise RetryLater(busy.seconds, exact=True) from None
        # Found by later jobs of the owner once this one has completed.
        fields["result_key"] = result_key
        moved = await ctx.pipeline.advance(
            event.job_id,
            expected=[JobStatus.PROMPTING],
            to=JobStatus.PROMPT_READY,
            progress=30,
            fields=fields,
            unset=["lease"],
        )
        if moved is None:
            log.info("the job left prompting while its prompt was written; dropped")
            return
        await ctx.publishers.prompt_ready.publish(PromptReady(job_id=event.job_id))

    async def reuse_result(self, job: Job, key: str) -> bool:
        """Complete the job from the owner's earlier result with the same key, if there is
        one with its clip still stored; True when the job is no longer ours to prompt
        (completed here, or moved on by someone else meanwhile)."""
        source = await self.results.earlier_result(job, key)
        if source is None:
            RESULT_REUSE.labels(result="miss").inc()
            return False
        done = await self.ctx.pipeline.advance(
            job["_id"],
            expected=[JobStatus.PROMPTING],
            to=JobStatus.COMPLETED,
            progress=100,
            fields=reused_fields(source, key),
            unset=["lease"],
        )
        if done is None:
            log.info("the job left prompting before its earlier result was reused; dropped")
            return True
        RESULT_REUSE.labels(result="hit").inc()
        log.info("completed with the result of job %s", done["video"]["reused_from"])
        return True

    async def fields_for(self, job: Job) -> dict[str, Any]:
        """The job's `prompt` and `brief` fields: its product's (a variant's job: written
        once per product, products.py), else its own; the brief gets the owner's CTA and
        price."""
        if job.get("product_id"):
            prompt, brief = await self.products.prompt_for(job, self.write_prompt)
        else:
            prompt, brief = await self.write_prompt(job)
        return {"prompt": prompt, "brief": await self.brief_for(job, brief)}

    async def write_prompt(self, job: Job) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The job's prompt and its brief as written (before the owner's CTA and price):
        from the reuse cache, else from the provider (one call writes both)."""
        options = VideoOptions.from_job(job["options"])
        key = reuse_key(
            image_sha256=job["image"]["sha256"],
            title=job["title"],
            description=job["description"],
            options=options,
            template_version=self.settings.template_version,
            provider=self.provider.name,
            model=self.provider.model,
            owner=job["owner"] if self.settings.prompt_reuse_scope == "owner" else None,
        )
        prompt = {"template_version": self.settings.template_version}
        # Made again on purpose: a prompt of its own (an LLM writes another one, so the
        # clip is another take), unless this job wrote one before a crash.
        cached = await self.cache.lookup(
            key, job_id=job["_id"], others=not job.get("regenerate", False)
        )
        if cached is not None and cached.origin_job != job["_id"]:
            PROMPT_REUSE.labels(result="hit").inc()
            # Nothing was spent on this job: the cost was paid by the job that wrote it.
            return {
                **prompt,
                "text": cached.text,
                "source": "reused",
                "model": cached.model,
                "cost": 0.0,
                "details": {
                    **cached.details,
                    "reuse_key": key,
                    "reused_from": cached.origin_job,
                },
            }, cached.brief
        if cached is not None:
            # This job wrote it before a crash: keep it rather than paying again.
            text, model, cost, details = cached.text, cached.model, cached.cost, cached.details
            brief = cached.brief
        else:
            PROMPT_REUSE.labels(result="miss").inc()
            result = await self.call_provider(job, options)
            await self.cache.store(
                key, result=result, provider=self.provider.name, job_id=job["_id"]
            )
            text, model, cost, details = result.text, result.model, result.cost, result.details
            brief = result.brief
        return {
            **prompt,
            "text": text,
            "source": "template" if self.provider.name == "template" else "llm",
            "model": model,
            "cost": cost,
            "details": {**details, "reuse_key": key},
        }, brief

    async def brief_for(self, job: Job, brief: dict[str, Any] | None) -> dict[str, Any]:
        """The job's brief: the written (or reused) one with the owner's CTA and price. A
        prompt cached before briefs existed gets one derived offline from the photo."""
        if brief is None:
            data, _ = await self.photo_of(job)
            facts = await self.facts_of(data)
            derived = briefs.derive(
                job["title"], job["description"], facts, job["options"].get("style")
            )
            brief = derived.model_dump(mode="json")
        return briefs.for_job(brief, job["options"])

    async def photo_of(self, job: Job) -> tuple[bytes, str]:
        image = job["image"]
        try:
            with storage_errors("read the product photo"):  # an outage is retried
                data = await self.ctx.storage.get_bytes(image["key"])
        except ObjectNotFound as e:
            raise JobError("source_missing", "The uploaded photo is missing from storage.") from e
        return data, image.get("content_type", "application/octet-stream")

    @staticmethod
    async def facts_of(data: bytes) -> photo_facts.PhotoFacts:
        try:
            return await asyncio.to_thread(photo_facts.describe, data)
        except photo_facts.InvalidImage as e:
            raise JobError("invalid_image", f"The uploaded photo cannot be read: {e}") from e

    async def call_provider(self, job: Job, options: VideoOptions) -> PromptResult:
        data, content_type = await self.photo_of(job)
        facts = await self.facts_of(data)
        request = PromptRequest(
            job_id=job["_id"],
            title=job["title"],
            description=job["description"],
            options=options,
            facts=facts,
            image=data,
            content_type=content_type,
            image_key=job["image"]["key"],
        )
        name = self.provider.name
        started = time.monotonic()
        try:
            result = await self.provider.write(request)
        except JobError as e:
            PROVIDER_CALLS.labels(provider=name, operation="prompt", outcome=e.code).inc()
            raise
        except Exception:
            PROVIDER_CALLS.labels(provider=name, operation="prompt", outcome="error").inc()
            raise
        finally:
            PROVIDER_SECONDS.labels(provider=name, operation="prompt").observe(
                time.monotonic() - started
            )
        PROVIDER_CALLS.labels(provider=name, operation="prompt", outcome="ok").inc()
        if result.cost:
            PROVIDER_COST.labels(provider=name).inc(result.cost)
        log.info("prompt written by %s (%s)", name, result.model)
        return result


def register(
    ctx: WorkerContext, settings: PromptSettings, provider: PromptProvider | None = None
) -> PromptStage:
    """Subscribe the prompt stage to `prompt.jobs` on the worker's broker."""
    stage = PromptStage(ctx, settings, provider or get_provider(settings, ctx.storage))
    if (close := getattr(stage.provider, "aclose", None)) is not None:
        ctx.closing.append(close)  # a provider's HTTP client, kept for the process
    work = ctx.topology.prompt_jobs

    @ctx.broker.subscriber(
        work.queue,
        ctx.topology.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="prompt.jobs:consume",
        description="Writes (or reuses) the job's video prompt, then publishes prompt.ready.",
    )
    @ctx.stage_handler("prompting", work, PROMPT_POOL)
    async def on_job_submitted(event: JobSubmitted) -> None:
        await stage.handle(event)

    return stage
