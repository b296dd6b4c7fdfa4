"""Spending caps on paid clips, checked before every paid submission (`POST /videos`).

Free-tier limits count per mailbox and per network, which a catch-all domain or an IPv6
/48 multiplies at will; these caps hold whatever the number of accounts:

- `SPEND_LIMIT_USD_PER_DAY`: the whole deployment's budget per UTC day. Each submission
  reserves the clip's estimated price (the model's listed price per second × the clip's
  length) and the reservation is corrected to the real cost when the clip is done.
- `PAID_CLIPS_PER_USER_PER_DAY`: paid clips per mailbox per UTC day (`me+1@x` is `me@x`),
  counted apart from the free-tier counts (a reused or local clip takes none).

Each is one document per day in `spending` (`usd:<day>`, `clips:<day>:<mailbox>`), taken
with one conditional update: `{_id, used: {$lte: limit - price}}` + `$inc`. A full
counter does not match and the upsert collides with its `_id`, so replicas racing for the
last dollar cannot both pass (the gateway's free-tier counters work the same way). Money
is counted in micro-dollars (integers: no rounding drift). A TTL index drops old days.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.auth import mailbox
from common.errors import JobError
from common.metrics import BUDGET_REFUSALS, SPEND_LIMIT, SPEND_TODAY
from common.video_models import price_per_second

log = logging.getLogger(__name__)

MICROS = 1_000_000
# Days are kept this long after they end (for a look back), then the TTL index drops them.
KEEP_DAYS = 8


def estimated_usd(model: dict[str, Any], resolution: str, seconds: int, fallback: float) -> float:
    """A clip's price before it is made: the model's listed price per second for the
    resolution (`pricing_skus`), else the dearest it lists, else `fallback` per second
    (the gateway's batch quote prices with the same `price_per_second`)."""
    per_second = price_per_second(model, resolution)
    return (fallback if per_second is None else per_second) * seconds


class Spending:
    def __init__(
        self,
        db: AsyncDatabase,
        *,
        usd_per_day: float,
        clips_per_user: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.days = db["spending"]
        self.limit_micros = round(usd_per_day * MICROS)
        self.clips_per_user = clips_per_user
        self.clock = clock
        SPEND_LIMIT.set(usd_per_day)

    async def reserve(self, owner: str, usd: float) -> dict[str, Any]:
        """Take one paid clip of `owner`'s day and `usd` of the deployment's day, or
        neither: a JobError that fails the job before anything is paid. The reservation
        (stored on the job's `provider_job.budget`) is what `release` and `settle` take."""
        now = self.clock()
        day = now.date().isoformat()
        expires_at = datetime.combine(now.date(), datetime.min.time(), UTC) + timedelta(
            days=KEEP_DAYS
        )
        clips_id = None
        if self.clips_per_user > 0:
            clips_id = f"clips:{day}:{mailbox(owner)}"
            if await self._take(clips_id, 1, self.clips_per_user, expires_at) is None:
                BUDGET_REFUSALS.labels(limit="paid_clips_per_user").inc()
                raise JobError(
                    "paid_clip_limit",
                    f"This account has had its {self.clips_per_user} paid clips for today; "
                    "no clip was paid for. Retry the job after midnight UTC.",
                )
        micros = 0
        if self.limit_micros > 0:
            micros = max(1, round(usd * MICROS))
            total = await self._take(f"usd:{day}", micros, self.limit_micros, expires_at)
            if total is None:
                if clips_id:
                    await self._add(clips_id, -1)
                BUDGET_REFUSALS.labels(limit="usd_per_day").inc()
                log.warning("the daily spending limit is reached: a paid clip was refused")
                raise JobError(
                    "budget_exhausted",
                    "Today's budget for paid clips is used up, so no clip was paid for. "
                    "Retry the job after midnight UTC.",
                )
            SPEND_TODAY.set(total / MICROS)
        return {"day": day, "usd": micros / MICROS, "clips_id": clips_id}

    async def release(self, reservation: dict[str, Any]) -> None:
        """Give a reservation back: the submission was refused, nothing is paid."""
        if reservation.get("clips_id"):
            await self._add(reservation["clips_id"], -1)
        if micros := round(float(reservation.get("usd") or 0) * MICROS):
            await self._add(f"usd:{reservation['day']}", -micros, track=True)

    async def settle(self, reservation: dict[str, Any], cost: float) -> None:
        """Correct the day's reserved estimate to what the clip really cost."""
        if not self.limit_micros or "day" not in reservation:
            return
        change = round(cost * MICROS) - round(float(reservation.get("usd") or 0) * MICROS)
        if change:
            await self._add(f"usd:{reservation['day']}", change, track=True)

    async def _take(
        self, counter_id: str, amount: int, maximum: int, expires_at: datetime
    ) -> int | None:
        """Add `amount` unless the counter would pass `maximum`, atomically; the new total,
        or None when it does not fit."""
        if amount > maximum:
            return None
        room = {"_id": counter_id, "used": {"$lte": maximum - amount}}
        update: dict[str, Any] = {"$inc": {"used": amount}}
        # The counter as it was before the update, which is known to have matched `room`:
        # the document after it need not match `room` any more (the last reservation that
        # fits leaves it over `maximum - amount`), and a database that reads the result back
        # through the filter answers None for it although the amount was taken.
        try:
            before = await self.days.find_one_and_update(
                room,
                {**update, "$setOnInsert": {"expires_at": expires_at}},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        except DuplicateKeyError:
            # Full, or created by a racing first reservation of the day: it exists now,
            # so the plain conditional update tells which.
            before = await self.days.find_one_and_update(
                room, update, return_document=ReturnDocument.BEFORE
            )
            if before is None:
                return None
        # With the upsert, no document before means this reservation created the counter.
        return (0 if before is None else int(before["used"])) + amount

    async def _add(self, counter_id: str, amount: int, *, track: bool = False) -> None:
        document = await self.days.find_one_and_update(
            {"_id": counter_id},
            {"$inc": {"used": amount}},
            return_document=ReturnDocument.AFTER,
        )
        if track and document is not None:
            SPEND_TODAY.set(int(document["used"]) / MICROS)

    async def spent_usd(self, day: str) -> float:
        document = await self.days.find_one({"_id": f"usd:{day}"})
        return 0.0 if document is None else int(document["used"]) / MICROS
