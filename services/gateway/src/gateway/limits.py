"""Free-tier limits: counters in MongoDB (`rate_limits`), shared by every gateway replica.

A counter is one document per limit, subject and window (`jobs_per_ip:1.2.3.4:<start>`),
taken with one atomic conditional upsert: `count < max` matches and increments, a
full counter does not match, and the upsert then collides with the existing `_id`
(DuplicateKeyError) — so two replicas can never both take the last unit. Windows
are fixed (a day by default); a TTL index removes old counters.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.errors import ApiError
from common.events import FINAL_STATUSES

# A running job has no known end: the client is told to look again after this long.
RUNNING_RETRY_AFTER_SECONDS = 30

_DESCRIPTIONS = {
    "jobs_per_ip": "videos from this network address",
    "jobs_per_email": "videos for this account",
    "codes_per_ip": "sign-in codes from this network address",
    "codes_per_email": "sign-in codes for this email address",
}


@dataclass(frozen=True)
class Limit:
    name: str  # e.g. "jobs_per_ip"
    subject: str  # the IP address or email it counts for
    max: int  # 0: no limit


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
    """Counters taken for one request, to give back if the request fails after all."""

    ids: list[str] = field(default_factory=list)


class Limiter:
    def __init__(
        self, db: AsyncDatabase, window_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.counters = db["rate_limits"]
        self.jobs = db["jobs"]
        self.window = window_seconds
        self.clock = clock

    async def ensure_indexes(self) -> None:
        await self.counters.create_index("expires_at", expireAfterSeconds=0, name="expires")

    def _window(self) -> tuple[int, float]:
        now = self.clock()
        start = int(now // self.window) * self.window
        return start, now

    async def take(self, limits: list[Limit]) -> Taken:
        """One unit of each limit, or none at all: 429 naming the first that is used up."""
        start, now = self._window()
        end = start + self.window
        expires_at = datetime.fromtimestamp(end, UTC)
        taken = Taken()
        for limit in limits:
            if limit.max <= 0:
                continue
            counter_id = f"{limit.name}:{limit.subject}:{start}"
            try:
                await self.counters.find_one_and_update(
                    {"_id": counter_id, "count": {"$lt": limit.max}},
                    {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": expires_at}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                await self.give_back(taken)
                what = _DESCRIPTIONS.get(limit.name, limit.name)
                raise rate_limited(
                    limit.name,
                    limit.max,
                    f"The free tier allows {limit.max} {what} per "
                    f"{_period(self.window)}; it resets at {expires_at:%Y-%m-%d %H:%M} UTC.",
                    end - now,
                    expires_at,
                ) from None
            taken.ids.append(counter_id)
        return taken

    async def give_back(self, taken: Taken) -> None:
        for counter_id in taken.ids:
            await self.counters.update_one({"_id": counter_id}, {"$inc": {"count": -1}})
        taken.ids.clear()

    async def check_running(self, owner: str, maximum: int) -> None:
        """At most `maximum` unfinished jobs per owner. Counted from the jobs themselves
        (the truth), so two requests racing each other can overshoot by one at most."""
        if maximum <= 0:
            return
        running = await self.jobs.count_documents(
            {"owner": owner, "status": {"$nin": [s.value for s in FINAL_STATUSES]}}
        )
        if running >= maximum:
            raise rate_limited(
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
    return f"{seconds} seconds"
