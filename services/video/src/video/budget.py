"""Spending caps on paid clips, checked before every paid submission (`POST /videos`).

Free-tier limits count per mailbox and per network, which a catch-all domain or an IPv6
/48 multiplies at will; these caps hold whatever the number of accounts:

- `SPEND_LIMIT_USD_PER_DAY`: the whole deployment's budget per UTC day. Each submission
  reserves the clip's estimated price (the model's listed price per second × the clip's
  length) and the reservation is corrected to the real cost when the clip is done.
- `PAID_CLIPS_PER_USER_PER_DAY`: paid clips per mailbox per UTC day (`me+1@x` is `me@x`),
  counted apart from the free-tier counts (a reused or local clip takes none).

- A batch's `max_cost_usd` (the owner's cap, on its document in `batches`): each paid clip
  of the batch reserves its estimated price in the batch's `cost_reserved_micros`, given
  back when OpenRouter charged nothing and corrected to the real cost when the clip is done.

Each day is one document in `spending` (`usd:<day>`, `clips:<day>:<mailbox>`), taken
with one conditional update: `{_id, used: {$lte: limit - price}}` + `$inc`. A full
counter does not match and the upsert collides with its `_id`, so replicas racing for the
last dollar cannot both pass (the gateway's free-tier counters work the same way). A batch
is taken the same way on its own document (`{_id, cost_reserved_micros: {$lte: cap -
price}}` + `$inc`). Money is counted in micro-dollars (integers: no rounding drift). A TTL
index drops old days.
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


def to_micros(usd: float) -> int:
    """Dollars as micro-dollars."""
    return round(usd * MICROS)


def price_micros(usd: float) -> int:
    """A clip's reserved price in micro-dollars: at least 1, so every paid clip counts."""
    return max(1, to_micros(usd))


def fits(used: int, amount: int, maximum: int) -> bool:
    """Whether `amount` more keeps a counter at `used` within `maximum` (what the
    conditional updates ask the database: `used <= maximum - amount`)."""
    return used <= maximum - amount


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
        self.batches = db["batches"]
        self.limit_micros = round(usd_per_day * MICROS)
        self.clips_per_user = clips_per_user
        self.clock = clock
        SPEND_LIMIT.set(usd_per_day)

    async def reserve(self, owner: str, usd: float, batch_id: str | None = None) -> dict[str, Any]:
        """Take `usd` of the batch's cap (a job of a batch with `max_cost_usd`), one paid
        clip of `owner`'s day and `usd` of the deployment's day, or none of them: a JobError
        that fails the job before anything is paid. The reservation (stored on the job's
        `provider_job.budget`) is what `release` and `settle` take."""
        now = self.clock()
        day = now.date().isoformat()
        expires_at = datetime.combine(now.date(), datetime.min.time(), UTC) + timedelta(
            days=KEEP_DAYS
        )
        reservation: dict[str, Any] = {"day": day, "usd": 0.0, "clips_id": None}
        if batch_id and (batch := await self._take_batch(batch_id, usd)) is not None:
            reservation["batch"] = batch
        if self.clips_per_user > 0:
            clips_id = f"clips:{day}:{mailbox(owner)}"
            if await self._take(clips_id, 1, self.clips_per_user, expires_at) is None:
                await self.release(reservation)
                BUDGET_REFUSALS.labels(limit="paid_clips_per_user").inc()
                raise JobError(
                    "paid_clip_limit",
                    f"This account has had its {self.clips_per_user} paid clips for today; "
                    "no clip was paid for. Retry the job after midnight UTC.",
                )
            reservation["clips_id"] = clips_id
        if self.limit_micros > 0:
            micros = price_micros(usd)
            total = await self._take(f"usd:{day}", micros, self.limit_micros, expires_at)
            if total is None:
                await self.release(reservation)
                BUDGET_REFUSALS.labels(limit="usd_per_day").inc()
                log.warning("the daily spending limit is reached: a paid clip was refused")
                raise JobError(
                    "budget_exhausted",
                    "Today's budget for paid clips is used up, so no clip was paid for. "
                    "Retry the job after midnight UTC.",
                )
            reservation["usd"] = micros / MICROS
            SPEND_TODAY.set(total / MICROS)
        return reservation

    async def release(self, reservation: dict[str, Any]) -> None:
        """Give a reservation back: the submission was refused, nothing is paid."""
        if reservation.get("clips_id"):
            await self._add(reservation["clips_id"], -1)
        if micros := to_micros(float(reservation.get("usd") or 0)):
            await self._add(f"usd:{reservation['day']}", -micros, track=True)
        if batch := reservation.get("batch"):
            await self._add_batch(batch["id"], -int(batch["micros"]))

    async def settle(self, reservation: dict[str, Any], cost: float) -> None:
        """Correct the reserved estimates (the day's, the batch's) to what the clip cost."""
        if self.limit_micros and "day" in reservation:
            change = to_micros(cost) - to_micros(float(reservation.get("usd") or 0))
            if change:
                await self._add(f"usd:{reservation['day']}", change, track=True)
        batch = reservation.get("batch")
        if batch and (change := to_micros(cost) - int(batch["micros"])):
            await self._add_batch(batch["id"], change)

    async def _take_batch(self, batch_id: str, usd: float) -> dict[str, Any] | None:
        """Reserve `usd` of the batch's `max_cost_usd`: the reservation, None when the
        batch has no cap, or a JobError when the clip would take it past the cap."""
        batch = await self.batches.find_one(
            {"_id": batch_id}, {"max_cost_usd": 1, "cost_reserved_micros": 1}
        )
        if batch is None or batch.get("max_cost_usd") is None:
            return None
        cap = to_micros(float(batch["max_cost_usd"]))
        micros = price_micros(usd)
        if "cost_reserved_micros" not in batch:
            # The gateway makes batches without the counter: the first clip starts it at 0
            # (only where it is still missing, so a racing first clip's amount stays).
            await self.batches.update_one(
                {"_id": batch_id, "cost_reserved_micros": {"$exists": False}},
                {"$set": {"cost_reserved_micros": 0}},
            )
        # The batch as it was before the update (see `_take` for why not after).
        before = None
        if fits(0, micros, cap):
            before = await self.batches.find_one_and_update(
                {"_id": batch_id, "cost_reserved_micros": {"$lte": cap - micros}},
                {"$inc": {"cost_reserved_micros": micros}},
                return_document=ReturnDocument.BEFORE,
            )
        if before is None:
            BUDGET_REFUSALS.labels(limit="batch_max_cost").inc()
            now = await self.batches.find_one({"_id": batch_id}, {"cost_reserved_micros": 1})
            reserved = int((now or {}).get("cost_reserved_micros") or 0)
            raise JobError(
                "budget_exhausted",
                f"batch {batch_id}: this clip (${usd:.2f} estimated) would take the batch past "
                f"its max_cost_usd of ${cap / MICROS:.2f} (${reserved / MICROS:.2f} already "
                "reserved or spent), so no clip was paid for.",
            )
        return {"id": batch_id, "micros": micros}

    async def _add_batch(self, batch_id: str, amount: int) -> None:
        await self.batches.update_one({"_id": batch_id}, {"$inc": {"cost_reserved_micros": amount}})

    async def _take(
        self, counter_id: str, amount: int, maximum: int, expires_at: datetime
    ) -> int | None:
        """Add `amount` unless the counter would pass `maximum`, atomically; the new total,
        or None when it does not fit."""
        if not fits(0, amount, maximum):
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
