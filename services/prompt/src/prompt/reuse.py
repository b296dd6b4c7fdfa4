"""The prompt reuse cache (collection `prompts`): the same photo with the same
text and options gets the prompt already written for it, and its brief, without a
provider call. (The owner's CTA and price are not part of the key: they are added to
the reused brief for each job.)

The key covers everything that shapes the prompt: the photo's sha256, the title
and description (normalised, so case and whitespace edits still reuse), the
options, the template version and the provider's model, and, by default, the owner.

Scoped to the owner (`PROMPT_REUSE_SCOPE=owner`, the default), a reused prompt tells a
user only that they asked for the same product before. Shared across owners
(`PROMPT_REUSE_SCOPE=shared`) it saves the LLM call for everyone, but a reused answer
(source `reused`, cost 0, a quicker prompt) tells one shop owner that someone else
submitted the same photo and text: a competitor could probe which products are being made.
"""

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.jobs import now
from prompt.providers.base import PromptResult, VideoOptions
from prompt.text import normalise


def reuse_key(
    *,
    image_sha256: str,
    title: str,
    description: str,
    options: VideoOptions,
    template_version: str,
    provider: str,
    model: str,
    owner: str | None,
) -> str:
    """`owner`: the job's owner when reuse is scoped to owners, None when shared."""
    material = {
        "image_sha256": image_sha256.lower(),
        "title": normalise(title),
        "description": normalise(description),
        "aspect_ratio": options.aspect_ratio,
        "duration": options.duration,
        "style": normalise(options.style) if options.style else None,
        "template_version": template_version,
        "provider": provider,
        "model": model,
    }
    if owner is not None:
        material["owner"] = owner
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True)
class CachedPrompt:
    key: str
    text: str
    model: str
    provider: str
    cost: float
    origin_job: str  # the job whose provider call wrote it
    hits: int
    details: dict[str, Any] = field(default_factory=dict)
    # None for entries stored before briefs existed.
    brief: dict[str, Any] | None = None


def _cached(doc: dict[str, Any]) -> CachedPrompt:
    return CachedPrompt(
        key=doc["_id"],
        text=doc["text"],
        model=doc["model"],
        provider=doc["provider"],
        cost=float(doc.get("cost", 0.0)),
        origin_job=doc["origin_job"],
        hits=int(doc.get("hits", 0)),
        details=doc.get("details") or {},
        brief=doc.get("brief"),
    )


class PromptCache:
    def __init__(self, db: AsyncDatabase) -> None:
        self.prompts = db["prompts"]

    async def lookup(self, key: str, *, job_id: str, others: bool = True) -> CachedPrompt | None:
        """The cached prompt for `key`. A use by another job counts as a hit; the
        job that wrote it (retrying after a crash) finds its own entry uncounted.
        With `others=False` only the job's own entry is found (a job made again)."""
        doc = await self.prompts.find_one({"_id": key})
        if doc is None:
            return None
        if doc["origin_job"] == job_id:
            return _cached(doc)
        if not others:
            return None
        stamp = now()
        doc = await self.prompts.find_one_and_update(
            {"_id": key},
            {"$inc": {"hits": 1}, "$set": {"last_used_at": stamp}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _cached(doc)

    async def store(self, key: str, *, result: PromptResult, provider: str, job_id: str) -> None:
        """Remember a freshly written prompt; the first writer of a key wins."""
        stamp = now()
        # A concurrent writer may insert the same key first: its prompt is as good.
        with contextlib.suppress(DuplicateKeyError):
            await self.prompts.update_one(
                {"_id": key},
                {
                    "$setOnInsert": {
                        "text": result.text,
                        "model": result.model,
                        "provider": provider,
                        "cost": result.cost,
                        "details": result.details,
                        "brief": result.brief,
                        "origin_job": job_id,
                        "hits": 0,
                        "created_at": stamp,
                        "last_used_at": stamp,
                    }
                },
                upsert=True,
            )
