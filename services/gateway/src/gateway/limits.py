"""Free-tier limits: counters in MongoDB (`rate_limits`), shared by every gateway replica.

A counter is one document per limit, subject and window (`jobs_per_ip:1.2.3.4:<start>`),
taken with one atomic conditional upsert: `count < max` matches and increments, a
full counter does not match, and the upsert then collides with the existing `_id`
(DuplicateKeyError) — so two replicas can never both take the last unit. Two first
requests of a window can collide the same way while the counter is not full: after a
collision the conditional update is tried once more (the counter exists now) before
the counter counts as full. Windows are fixed (a day by default); a TTL index removes
old counters.

Running jobs are counted from the jobs themselves; an owner's submissions take turns
(a lock document in the same collection) so racing requests cannot all count the same
jobs and pass together.
"""

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.errors import ApiError
from common.events import FINAL_STATUSES

# A running job has no known end: the client is told to look again after this long.
RUNNING_RETRY_AFTER_SECONDS = 30
# An owner's submission holds its turn this long at most (a gateway that died holding it
# gives it up then); the next one waits this long at most for its turn.
TURN_SECONDS = 30.0
TURN_WAIT_SECONDS = 20.0

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

    @asynccontextmanager
    async def running_slot(self, owner: str, maximum: int) -> AsyncIterator[None]:
        """Room for one more unfinished job of `owner` (at most `maximum`), held until the
        block has stored the job: the owner's submissions take turns across replicas."""
        if maximum <= 0:
            yield
            return
        turn = {"_id": f"submitting:{owner}", "holder": uuid.uuid4().hex}
        await self._take_turn(turn)
        try:
            await self.check_running(owner, maximum)
            yield
        finally:  # only our own turn: one that outlived TURN_SECONDS may be another's now
            await self.counters.delete_one(turn)

    @asynccontextmanager
    async def reserve(
        self, owner: str, running_max: int, limits: list[Limit]
    ) -> AsyncIterator[Taken]:
        """Room for one more video of `owner`: a running slot held for the block and a
        unit of each limit, given back if the block raises. A block that decides to make
        no video after all (a replay, a job that changed meanwhile) gives them back."""
        async with self.running_slot(owner, running_max):
            taken = await self.take(limits)
            try:
                yield taken
            except BaseException:
                await self.give_back(taken)
                raise

    async def _take_turn(self, turn: dict[str, str]) -> None:
        waited_until = time.monotonic() + TURN_WAIT_SECONDS
        while True:
            now = datetime.fromtimestamp(self.clock(), UTC)
            expires_at = datetime.fromtimestamp(self.clock() + TURN_SECONDS, UTC)
            try:
                await self.counters.insert_one({**turn, "expires_at": expires_at})
                return
            except DuplicateKeyError:
                # Taken: by a live request (wait), or by a dead one (its turn has expired).
                await self.counters.delete_one({"_id": turn["_id"], "expires_at": {"$lt": now}})
            if time.monotonic() > waited_until:
                raise ApiError(
                    503,
                    "busy",
                    "Another of your videos is being submitted right now; try again shortly.",
                    headers={"Retry-After": "5"},
                )
            await asyncio.sleep(0.02)

    async def check_running(self, owner: str, maximum: int) -> None:
        """429 when `owner` has `maximum` unfinished jobs already."""
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
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes" if seconds > 60 else "minute"
    return f"{seconds} seconds"
