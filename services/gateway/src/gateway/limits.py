"""Free-tier limits: counters in MongoDB (`rate_limits`), shared by every gateway replica.

A counter is one document per limit, subject and window (`jobs_per_ip:1.2.3.4:<start>`),
taken with one atomic conditional upsert: `count < max` matches and increments, a
full counter does not match, and the upsert then collides with the existing `_id`
(DuplicateKeyError) — so two replicas can never both take the last unit. Two first
requests of a window can collide the same way while the counter is not full: after a
collision the conditional update is tried once more (the counter exists now) before
the counter counts as full. Windows are fixed (a day by default); a TTL index removes
old counters.

Running jobs are held in one document per owner (`running_jobs`, `common.jobs`): an entry
per unfinished job, added by one conditional update that matches only while the array has
fewer than `max` entries (`jobs.<max-1>` does not exist), so racing submissions on any
number of replicas never pass the limit together, none waits for another, and the cost
is one single-document write whatever the number of jobs. A job that ends pulls its own
entry (`JobRepository.transition`); one left behind by a crash in between is found when
the owner is at the limit: an entry whose job has ended (in that generation: a user's
retry takes a new entry) or was never stored is dropped.
"""

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.errors import ApiError
from common.events import FINAL_STATUSES
from common.jobs import RUNNING_JOBS

# A running job has no known end: the client is told to look again after this long.
RUNNING_RETRY_AFTER_SECONDS = 30
# A running-jobs entry whose job is not stored this long after it was taken was left by a
# submission that died before storing it (a submission stores its job within seconds).
UNSTORED_SECONDS = 120

_DESCRIPTIONS = {
    "jobs_per_ip": "videos from this network address",
    "jobs_per_email": "videos for this account",
    "codes_per_ip": "sign-in codes from this network address",
    "codes_per_email": "sign-in codes for this email address from this network address",
    "verifies_per_ip": "sign-in attempts from this network address",
    "refused_photos_per_email": "photos that could not be used",
}


@dataclass(frozen=True)
class Limit:
    name: str  # e.g. "jobs_per_ip"
    subject: str  # the IP address or email it counts for
    max: int  # 0: no limit
    window: int | None = None  # seconds; None: the limiter's window


def rate_limited(
    limit: str, maximum: int, message: str, retry_after: float, resets_at: datetime | None
) -> ApiError:
    seconds = max(1, math.ceil(retry_after))
    return ApiError(
        429,
        "rate_limited",
        message,
        details={
            "limit": limit,
            "max": maximum,
            "resets_at": resets_at.isoformat() if resets_at else None,
            "retry_after": seconds,
        },
        headers={"Retry-After": str(seconds)},
    )


@dataclass
class Taken:
    """Counters taken for one request, to give back if the request fails after all (and
    the running-jobs entry: its owner and the entry)."""

    ids: list[str] = field(default_factory=list)
    running: tuple[str, dict[str, Any]] | None = None


class Limiter:
    def __init__(
        self, db: AsyncDatabase, window_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.counters = db["rate_limits"]
        self.jobs = db["jobs"]
        self.running = db[RUNNING_JOBS]
        self.window = window_seconds
        self.clock = clock

    async def ensure_indexes(self) -> None:
        await self.counters.create_index("expires_at", expireAfterSeconds=0, name="expires")

    def _window(self, limit: Limit) -> tuple[int, int, float]:
        """The limit's window: its length, its start, and now."""
        window = limit.window or self.window
        now = self.clock()
        return window, int(now // window) * window, now

    def _counter_id(self, limit: Limit, start: int) -> str:
        return f"{limit.name}:{limit.subject}:{start}"

    def _used_up(self, limit: Limit) -> ApiError:
        window, start, now = self._window(limit)
        end = start + window
        resets_at = datetime.fromtimestamp(end, UTC)
        what = _DESCRIPTIONS.get(limit.name, limit.name)
        return rate_limited(
            limit.name,
            limit.max,
            f"The free tier allows {limit.max} {what} per "
            f"{_period(window)}; it resets at {resets_at:%Y-%m-%d %H:%M} UTC.",
            end - now,
            resets_at,
        )

    async def take(self, limits: list[Limit]) -> Taken:
        """One unit of each limit, or none at all: 429 naming the first that is used up."""
        taken = Taken()
        for limit in limits:
            if limit.max <= 0:
                continue
            window, start, _ = self._window(limit)
            counter_id = self._counter_id(limit, start)
            expires_at = datetime.fromtimestamp(start + window, UTC)
            if not await self._take_one(counter_id, limit.max, expires_at):
                await self.give_back(taken)
                raise self._used_up(limit)
            taken.ids.append(counter_id)
        return taken

    async def _take_one(self, counter_id: str, maximum: int, expires_at: datetime) -> bool:
        """One unit of one counter, atomically; False when it is full."""
        below_max = {"_id": counter_id, "count": {"$lt": maximum}}
        try:
            await self.counters.update_one(
                below_max,
                {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": expires_at}},
                upsert=True,
            )
            return True
        except DuplicateKeyError:
            # Full, or another request inserted the counter between our match and our
            # insert (a new window's first requests racing): it exists now, so a plain
            # conditional update tells which.
            result = await self.counters.update_one(below_max, {"$inc": {"count": 1}})
            return result.modified_count == 1

    async def check(self, limits: list[Limit]) -> None:
        """Read-only: 429 if a limit is used up already, taking nothing. A cheap early
        refusal before costly work; `take` stays the one that counts."""
        for limit in limits:
            if limit.max <= 0:
                continue
            _, start, _ = self._window(limit)
            counter = await self.counters.find_one({"_id": self._counter_id(limit, start)})
            if counter is not None and counter["count"] >= limit.max:
                raise self._used_up(limit)

    async def give_back(self, taken: Taken) -> None:
        for counter_id in taken.ids:
            await self.counters.update_one({"_id": counter_id}, {"$inc": {"count": -1}})
        taken.ids.clear()
        if taken.running is not None:
            owner, entry = taken.running
            await self.running.update_one({"_id": owner}, {"$pull": {"jobs": entry}})
            taken.running = None

    @asynccontextmanager
    async def reserve(
        self,
        owner: str,
        running_max: int,
        limits: list[Limit],
        *,
        job_id: str,
        generation: int = 0,
    ) -> AsyncIterator[Taken]:
        """Room for one more video of `owner`: a running-jobs entry for `job_id` (its
        `generation`: the job's `retries` once the video is under way) and a unit of each
        limit, given back if the block raises. A block that decides to make no video after
        all (a replay, a job that changed meanwhile) gives them back."""
        taken = Taken()
        if running_max > 0:
            entry = {"j": job_id, "g": generation, "t": datetime.fromtimestamp(self.clock(), UTC)}
            await self._take_running(owner, running_max, entry)
            taken.running = (owner, entry)
        try:
            taken.ids = (await self.take(limits)).ids
            yield taken
        except BaseException:
            await self.give_back(taken)
            raise

    async def _take_running(self, owner: str, maximum: int, entry: dict[str, Any]) -> None:
        """Add `entry` to the owner's running jobs unless they are `maximum` already
        (after dropping entries of jobs that have ended); else 429."""
        for first in (True, False):
            if await self._push_running(owner, maximum, entry):
                return
            if not first:
                break
            if await self._live_running(owner) >= maximum:
                break  # nothing was left behind: the owner is at the limit
        raise self._too_many_running(maximum, maximum)

    async def _push_running(self, owner: str, maximum: int, entry: dict[str, Any]) -> bool:
        room = {"_id": owner, f"jobs.{maximum - 1}": {"$exists": False}}
        push = {"$push": {"jobs": entry}}
        try:
            await self.running.update_one(room, push, upsert=True)
            return True
        except DuplicateKeyError:
            # Full, or another request inserted the owner's document first: it exists now,
            # so a plain conditional update tells which.
            result = await self.running.update_one(room, push)
            return result.modified_count == 1

    async def _live_running(self, owner: str) -> int:
        """How many of the owner's running entries belong to unfinished jobs; the others
        (left by a crash between a job's end and the pull of its entry, or by a submission
        that died before storing its job) are dropped. Read only at the limit: its cost is
        that of the limit, not of all the owner's jobs."""
        doc = await self.running.find_one({"_id": owner})
        entries: list[dict[str, Any]] = (doc or {}).get("jobs") or []
        if not entries:
            return 0
        ids = list({e["j"] for e in entries})
        jobs = {
            j["_id"]: j
            async for j in self.jobs.find({"_id": {"$in": ids}}, {"status": 1, "retries": 1})
        }
        unstored_before = datetime.fromtimestamp(self.clock(), UTC) - timedelta(
            seconds=UNSTORED_SECONDS
        )
        final = [s.value for s in FINAL_STATUSES]
        stale = []
        for entry in entries:
            job = jobs.get(entry["j"])
            if job is None:
                if entry["t"] < unstored_before:
                    stale.append(entry)
                continue
            generation = job.get("retries", 0)
            if generation > entry["g"] or (generation == entry["g"] and job["status"] in final):
                stale.append(entry)
        if stale:
            await self.running.update_one({"_id": owner}, {"$pull": {"jobs": {"$in": stale}}})
        return len(entries) - len(stale)

    async def check_running(self, owner: str, maximum: int) -> None:
        """Read-only while there is room: 429 when `owner` has `maximum` unfinished jobs
        already (a cheap early refusal; `reserve` is the one that counts)."""
        full = {"_id": owner, f"jobs.{maximum - 1}": {"$exists": True}}
        if await self.running.find_one(full, {"_id": 1}) is None:
            return
        running = await self._live_running(owner)
        if running >= maximum:
            raise self._too_many_running(running, maximum)

    @staticmethod
    def _too_many_running(running: int, maximum: int) -> ApiError:
        return rate_limited(
            "running_jobs_per_email",
            maximum,
            f"You have {running} videos in the making; the free tier allows {maximum} "
            "at a time. Try again when one is done.",
            RUNNING_RETRY_AFTER_SECONDS,
            None,
        )


def _period(seconds: int) -> str:
    if seconds == 24 * 3600:
        return "day"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours" if seconds > 3600 else "hour"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes" if seconds > 60 else "minute"
    return f"{seconds} seconds"
