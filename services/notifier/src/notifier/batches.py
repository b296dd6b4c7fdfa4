"""Batch subscriptions: one per batch, however many jobs it has.

A socket subscribed to a batch gets a `batch_snapshot` (the batch document, counts by
status, cost so far, the batch's `seq`, the jobs that have ended), then `batch_progress`
messages: the counts, cost and seq now, and the jobs that ended (or were retried out of a
final status) since the last message. At most one message every BATCH_INTERVAL seconds
per subscription (2 a second), and the last state is always sent once things calm down.

Cost per event: none beyond a dict lookup. A `job.status` event of a job in a watched
batch only marks the batch as moved and notes the job. A ticker then reads each moved
batch at most once every BATCH_INTERVAL: one aggregation (`common.batch_progress`:
counts, cost, seq) and, when the seq moved, the jobs the events named (`$in`, light
fields). What a batch's subscriptions share (the jobs known ended) is kept once per batch
in this replica; each subscription keeps only what it has not been sent yet. Batches
nobody here watches cost nothing.

Lost events are found by the upkeep's resync (every RESYNC_SECONDS): each unfinished
watched batch not read since the last pass is read again, and the next read of each also
reads the batch's ended jobs when the events do not add up (the seq moved with no event,
or the count of ended jobs differs from the jobs known ended).

The batch's `seq` is the sum of its jobs' (`common.batch_progress`). Resuming with
`after_seq`: the jobs' history entries in time order give the moment the client's seq
stood for (its last step's `at`); the snapshot then lists the jobs whose last step came
after that, less RESUME_MARGIN (steps stamped by other machines' clocks, or written a
moment after they were stamped), so a reconnecting client misses no job's end; it may get
a few it had, with the same job `seq`.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from common.batch_progress import BATCHES, BatchProgress, batch_progress
from common.events import FINAL_STATUSES, JobStatusChanged
from notifier.hub import READ_BATCH, Connection, ConnectionGone, Grant, batches
from notifier.protocol import BatchProgress as ProgressMessage
from notifier.protocol import BatchSnapshot

log = logging.getLogger(__name__)

# At most one message per batch subscription this often (so 2 a second), and each
# watched batch read at most this often.
BATCH_INTERVAL = 0.5
# How often the ticker looks for batches to read and subscriptions due a message.
TICK = 0.1
RESUME_MARGIN = timedelta(seconds=10)
_FINAL = frozenset(s.value for s in FINAL_STATUSES)
_JOB_FIELDS = {"row": 1, "sku": 1, "variant": 1, "status": 1, "seq": 1, "error": 1}
# The batch document's fields a client sees (as `GET /api/v1/batches/{id}` shows them);
# anything else on it (owner, idempotency key, request fingerprint, reservations) stays.
_SHOWN = ("status", "created_at", "variants", "max_cost_usd", "jobs_total")
_ROW_SHOWN = ("row", "sku", "title", "product_id", "job_ids")


def job_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """A job as batch messages list it: where it is in the batch, and how it ended."""
    entry = {
        "job_id": doc["_id"],
        "row": doc.get("row"),
        "sku": doc.get("sku"),
        "variant": doc.get("variant"),
        "status": doc["status"],
        "seq": doc["seq"],
    }
    if doc["status"] == "failed" and (error := doc.get("error")):
        entry["error"] = {"code": error.get("code"), "message": error.get("message")}
    return entry


def _in_order(entries: Any) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (e["row"] or 0, e["variant"] or 0, e["job_id"]))


def batch_view(batch: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    view = {"id": batch["_id"]} | {k: plain(batch.get(k)) for k in _SHOWN}
    rows = batch.get("rows") or []
    return view | {"rows": [{k: row.get(k) for k in _ROW_SHOWN} for row in rows]}


@dataclass(eq=False)
class Subscriber:
    conn: Connection
    sent_seq: int | None = None  # None until the snapshot is sent
    sent_at: float = 0.0
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    sending: bool = False


class Watched:
    """One batch some socket of this replica watches, and what its subscriptions share."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.subs: dict[Connection, Subscriber] = {}
        self.job_ids: set[str] = set()
        self.progress: BatchProgress | None = None
        self.ended: dict[str, dict[str, Any]] = {}  # the jobs last seen in a final status
        self.touched: set[str] = set()  # jobs named by events since the last read
        self.check = False  # the next read also looks for lost events (a resync's)
        self.owed: set[Subscriber] = set()  # subscriptions not sent `progress` yet
        self.dirty = False
        self.reading = False
        self.read_at = float("-inf")
        self.lock = asyncio.Lock()


class BatchHub:
    def __init__(self, db: AsyncDatabase) -> None:
        self.jobs = db["jobs"]
        self.batches = db[BATCHES]
        self.watched: dict[str, Watched] = {}
        self.batch_of: dict[str, str] = {}  # job id → watched batch id
        self._ticker: asyncio.Task[None] | None = None
        self._resynced_at = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()

    async def find(self, batch_id: str) -> dict[str, Any] | None:
        return await self.batches.find_one({"_id": batch_id})

    async def subscribe(
        self, conn: Connection, batch: dict[str, Any], after_seq: int | None, grant: Grant
    ) -> None:
        """The snapshot now, progress from then on. Registered before anything is read,
        so no job's end can fall between the snapshot and the first progress."""
        batch_id = batch["_id"]
        watched = self.watched.get(batch_id)
        if watched is None:
            watched = self.watched[batch_id] = Watched(batch_id)
        if (earlier := watched.subs.get(conn)) is not None:
            watched.owed.discard(earlier)  # subscribed again on the same socket
        sub = watched.subs[conn] = Subscriber(conn)
        conn.batches[batch_id] = grant
        conn.batches_running.add(batch_id)
        try:
            async with watched.lock:
                if not watched.job_ids:
                    await self._map_jobs(watched)
                snapshot = await self._snapshot(watched, batch, after_seq)
                async with conn.lock:
                    await conn.deliver(snapshot)
                    sub.sent_seq = snapshot.seq
                    sub.sent_at = asyncio.get_running_loop().time()
                    sub.pending = {}  # from reads before the snapshot's, which has it all
                assert watched.progress is not None
                if watched.progress.finished:
                    conn.batches_running.discard(batch_id)
        except BaseException:
            self.unsubscribe(conn, batch_id)
            raise
        self._start()

    def unsubscribe(self, conn: Connection, batch_id: str) -> None:
        conn.batches.pop(batch_id, None)
        conn.batches_running.discard(batch_id)
        watched = self.watched.get(batch_id)
        sub = watched.subs.pop(conn, None) if watched is not None else None
        if watched is None or sub is None:
            return
        watched.owed.discard(sub)
        if watched.subs:
            return
        del self.watched[batch_id]
        for job_id in watched.job_ids:
            if self.batch_of.get(job_id) == batch_id:
                del self.batch_of[job_id]

    def drop(self, conn: Connection) -> None:
        for batch_id in list(conn.batches):
            self.unsubscribe(conn, batch_id)

    def connections(self) -> set[Connection]:
        return {conn for watched in self.watched.values() for conn in watched.subs}

    def on_status(self, event: JobStatusChanged) -> None:
        """No read here: the batch is read on the ticker's next turn."""
        batch_id = self.batch_of.get(event.job_id)
        watched = self.watched.get(batch_id) if batch_id is not None else None
        if watched is not None:
            watched.touched.add(event.job_id)
            watched.dirty = True

    def resync(self) -> None:
        """Have every watched batch not seen finished read again, looking for lost events
        too (on every RESYNC_SECONDS pass). A batch read since the last pass needs no
        read of its own: its next read for an event looks."""
        now = asyncio.get_running_loop().time()
        for watched in self.watched.values():
            if watched.progress is None or not watched.progress.finished:
                watched.check = True
                if watched.read_at < self._resynced_at:
                    watched.dirty = True
        self._resynced_at = now
        self._start()

    async def _map_jobs(self, watched: Watched) -> None:
        found = self.jobs.find({"batch_id": watched.batch_id}, {"_id": 1})
        watched.job_ids = {doc["_id"] async for doc in found}
        for job_id in watched.job_ids:
            self.batch_of[job_id] = watched.batch_id

    async def _snapshot(
        self, watched: Watched, batch: dict[str, Any], after_seq: int | None
    ) -> BatchSnapshot:
        progress = await batch_progress(self.jobs, watched.batch_id)
        query: dict[str, Any] = {"batch_id": watched.batch_id}
        fields = dict(_JOB_FIELDS)
        if after_seq is None:
            query["status"] = {"$in": sorted(_FINAL)}
        else:
            fields |= {"history.at": 1, "history.status": 1}
        docs = [doc async for doc in self.jobs.find(query, fields)]
        ended = {doc["_id"]: job_entry(doc) for doc in docs if doc["status"] in _FINAL}
        listed = list(ended.values()) if after_seq is None else _since(docs, after_seq)
        if watched.progress is None:  # the first subscription: the base for progress
            watched.progress, watched.ended = progress, ended
        return BatchSnapshot(
            batch_id=watched.batch_id,
            seq=progress.seq,
            counts=progress.counts,
            cost_usd=progress.cost_usd,
            batch=batch_view(batch),
            jobs=_in_order(listed),
        )

    def _start(self) -> None:
        if self.watched and (self._ticker is None or self._ticker.done()):
            self._ticker = asyncio.create_task(self._run())

    async def _run(self) -> None:
        """While any batch is watched: read the moved ones, send the subscriptions due.
        Reads and sends run as tasks of their own: a slow database or socket holds up
        only its own batch or subscription."""
        loop = asyncio.get_running_loop()
        while self.watched:
            await asyncio.sleep(TICK)
            now = loop.time()
            for watched in list(self.watched.values()):
                rested = now - watched.read_at >= BATCH_INTERVAL
                if watched.dirty and rested and not watched.reading:
                    watched.reading = True
                    self._spawn(self._read(watched))
                for sub in list(watched.owed):
                    if not sub.sending and now - sub.sent_at >= BATCH_INTERVAL:
                        sub.sending = True
                        self._spawn(self._send(watched, sub))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, watched: Watched) -> None:
        try:
            async with watched.lock:
                watched.dirty = False
                touched, watched.touched = watched.touched, set()
                check, watched.check = watched.check, False
                watched.read_at = asyncio.get_running_loop().time()
                try:
                    await self._catch_up(watched, touched, check)
                except PyMongoError as e:
                    watched.dirty = True  # tried again on a later turn
                    watched.touched |= touched
                    watched.check |= check
                    log.warning("cannot read batch %s: %s", watched.batch_id, e)
        finally:
            watched.reading = False

    async def _catch_up(self, watched: Watched, touched: set[str], check: bool) -> None:
        """The batch's progress now, and the jobs that ended or were retried since the
        last read: those the events named, and on a resync's read, when the events do not
        add up (none at all, or a count of ended jobs that differs from the jobs known
        ended), every ended job of the batch. Not on every read: an event can lag its
        write, so the counts may differ for a moment without anything lost."""
        progress = await batch_progress(self.jobs, watched.batch_id)
        if not touched and watched.progress is not None and progress.seq == watched.progress.seq:
            return  # nothing moved
        if progress.total != len(watched.job_ids):
            await self._map_jobs(watched)  # jobs added to the batch since
        ended = dict(watched.ended)
        changed: dict[str, dict[str, Any]] = {}

        def note(doc: dict[str, Any]) -> None:
            entry = job_entry(doc)
            if doc["status"] in _FINAL:
                if ended.get(doc["_id"]) != entry:
                    ended[doc["_id"]] = changed[doc["_id"]] = entry
            elif ended.pop(doc["_id"], None) is not None:
                changed[doc["_id"]] = entry  # retried: no longer ended

        async def read(ids: list[str]) -> None:
            for some in batches(ids, READ_BATCH):
                async for doc in self.jobs.find({"_id": {"$in": some}}, _JOB_FIELDS):
                    note(doc)

        await read(sorted(touched))
        if check and (not touched or progress.ended != len(ended)):
            final = {"batch_id": watched.batch_id, "status": {"$in": sorted(_FINAL)}}
            seen = set()
            async for doc in self.jobs.find(final, _JOB_FIELDS):
                seen.add(doc["_id"])
                note(doc)
            await read(sorted(set(ended) - seen))  # known ended, ended no more: retried
        watched.progress, watched.ended = progress, ended
        for sub in watched.subs.values():
            sub.pending |= changed
        # Also with the seq unchanged when jobs are listed: an event can arrive after a
        # read that counted its step but did not read its job.
        watched.owed = {
            sub
            for sub in watched.subs.values()
            if sub.pending or progress.seq > (sub.sent_seq or 0)
        }

    async def _send(self, watched: Watched, sub: Subscriber) -> None:
        conn = sub.conn
        try:
            async with conn.lock:
                progress = watched.progress
                if sub.sent_seq is None:
                    return  # its snapshot is still to come, and has all this
                watched.owed.discard(sub)
                if progress is None or (progress.seq <= sub.sent_seq and not sub.pending):
                    return
                jobs, sub.pending = _in_order(sub.pending.values()), {}
                sub.sent_seq = progress.seq
                sub.sent_at = asyncio.get_running_loop().time()
                await conn.deliver(
                    ProgressMessage(
                        batch_id=watched.batch_id,
                        seq=progress.seq,
                        counts=progress.counts,
                        cost_usd=progress.cost_usd,
                        jobs=jobs,
                    )
                )
                if progress.finished:
                    conn.batches_running.discard(watched.batch_id)
                elif watched.batch_id in conn.batches:
                    conn.batches_running.add(watched.batch_id)
        except ConnectionGone:
            self.drop(conn)
        finally:
            sub.sending = False


def _since(docs: list[dict[str, Any]], after_seq: int) -> list[dict[str, Any]]:
    """The jobs that ended, or left a final status, after the batch's step `after_seq`
    (less RESUME_MARGIN); with `after_seq` 0 every job that has ended."""
    stamps = sorted(h["at"] for doc in docs for h in doc.get("history", []))
    if after_seq >= len(stamps):
        return []  # the client has every step there is
    cutoff = stamps[after_seq - 1] - RESUME_MARGIN if after_seq > 0 else None
    listed = []
    for doc in docs:
        history = doc.get("history") or []
        if not history or (cutoff is not None and history[-1]["at"] < cutoff):
            continue
        if doc["status"] in _FINAL or any(h["status"] in _FINAL for h in history):
            listed.append(job_entry(doc))
    return listed
