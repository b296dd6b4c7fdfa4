"""Which sockets watch which job, and how status steps reach them.

The job's stored `history` is the source of truth, never the event itself: on
every `job.status` event for a watched job, the job is read once and each socket
gets the history entries after the last seq it was sent, in order. So a
duplicated, lost or reordered event cannot make a client miss or repeat a step.

A subscription is registered *before* the job is read for its snapshot, and the
socket's lock is held from that read until the snapshot is sent: any change
after the read has an event that finds the subscription and waits for the lock.

Reads are shared: every job asked for while earlier reads are under way is read
together, with one `$in` per READ_BATCH ids (a lone job with `find_one`), so at
a high event rate the database sees a few larger queries, not one per event. One
read at a time while fewer than READ_BATCH jobs wait (they gather while it runs),
one more per READ_BATCH waiting up to READS_IN_FLIGHT: full batches, and a share of
a busy database (which answers in turn) that grows with the backlog. A read only
answers the requests made before it started, and asks only for the fields the view
shows (`fields`).

Events can still be lost (published while this replica's exclusive queue is gone
during a broker reconnect, or dropped when the database did not answer), so
`resync` runs the same catch-up for every watched, unfinished job on a timer
(at most RESYNC_MAX_JOBS a pass, those checked longest ago; all of them when the
broker connection comes back): no step, and above all no final state, waits for
an event that never comes.
(A failed job that is retried leaves its final state by an event, as before.)
"""

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import PyMongoError

from common.auth import Principal
from common.events import FINAL_STATUSES, JobStatusChanged
from common.jobs import Job, JobRepository
from common.metrics import WS_MESSAGES, WS_PUSH_SECONDS
from notifier.protocol import ServerMessage, Snapshot, Status, encode

log = logging.getLogger(__name__)

# A socket that cannot take a message in this time is treated as gone.
SEND_TIMEOUT = 10.0
# Job ids per `$in` query of a resync pass, and of a shared read of whole jobs. Small
# enough that a database matching `$in` element by element (SecantusDB) stays quick.
RESYNC_BATCH = 25
READ_BATCH = 50
# Jobs a resync pass checks at most, unless told to check all (RESYNC_MAX_JOBS).
RESYNC_MAX_JOBS = 2000
# Shared reads under way at once, at most.
READS_IN_FLIGHT = 16
_FINAL = frozenset(s.value for s in FINAL_STATUSES)

View = Callable[[Job], Awaitable[dict[str, Any]]]


class ConnectionGone(Exception):
    pass


@dataclass(frozen=True)
class Grant:
    """Who subscribed to a job and with which token: checked again while it lasts."""

    principal: Principal
    token: str


class Connection:
    """One client socket: its send function, a lock that keeps its messages in
    order, per watched job the last seq sent (None until the snapshot) and the
    grant it was subscribed with, and the watched jobs last sent in a final status.
    Batch subscriptions (`notifier.batches`): their grants, and those whose jobs
    were not all final in the last message."""

    def __init__(self, send_text: Callable[[str], Awaitable[None]]) -> None:
        self._send_text = send_text
        self.lock = asyncio.Lock()
        self.watching: dict[str, int | None] = {}
        self.grants: dict[str, Grant] = {}
        self.finished: set[str] = set()
        self.batches: dict[str, Grant] = {}
        self.batches_running: set[str] = set()
        self.gone = False

    @property
    def waiting(self) -> bool:
        """Whether a watched job was last sent in a status that is not final, or a
        watched batch with such a job."""
        return bool(self.batches_running) or any(
            job_id not in self.finished for job_id in self.watching
        )

    def sent(self, job_id: str, seq: int, status: str) -> None:
        if job_id not in self.watching:
            return  # unsubscribed meanwhile
        self.watching[job_id] = seq
        if status in _FINAL:
            self.finished.add(job_id)
        else:
            self.finished.discard(job_id)  # a retried job runs again

    async def deliver(self, message: ServerMessage) -> None:
        """Send while holding `lock` (or when ordering does not matter)."""
        if self.gone:
            raise ConnectionGone
        try:
            await asyncio.wait_for(self._send_text(encode(message)), SEND_TIMEOUT)
        except Exception as e:  # any failure to send means the socket is unusable
            self.gone = True
            raise ConnectionGone from e
        WS_MESSAGES.labels(type=message.type).inc()

    async def send(self, message: ServerMessage) -> None:
        async with self.lock:
            await self.deliver(message)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _retrieve(future: "asyncio.Future[Any]") -> None:
    """Mark a failed shared read as seen: its callers may all have gone meanwhile."""
    if not future.cancelled():
        future.exception()


def batches(items: list[str], size: int = RESYNC_BATCH) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Hub:
    def __init__(
        self,
        repo: JobRepository,
        view: View,
        resync_max_jobs: int = RESYNC_MAX_JOBS,
        fields: dict[str, int] | None = None,
    ) -> None:
        self.repo = repo
        self.view = view
        # The job's fields the view needs (with `_id`, `seq`, `status` and `history`,
        # which the hub reads), or None for the whole document.
        self.fields = fields
        self.resync_max_jobs = resync_max_jobs
        # Watched jobs in the order they were last read, oldest first (dicts keep order).
        self._checked: dict[str, None] = {}
        self.watchers: dict[str, set[Connection]] = {}
        # Jobs asked for and not yet being read, and the tasks reading them.
        self._due: dict[str, asyncio.Future[Job | None]] = {}
        self._readers: set[asyncio.Task[None]] = set()

    async def subscribe(
        self, conn: Connection, job_id: str, after_seq: int | None, grant: Grant
    ) -> bool:
        """Snapshot, then every step after `after_seq`; False when the job does not exist."""
        conn.watching[job_id] = None
        conn.grants[job_id] = grant
        self.watchers.setdefault(job_id, set()).add(conn)
        try:
            async with conn.lock:
                job = await self.read(job_id)
                if job is None:
                    self.unsubscribe(conn, job_id)
                    return False
                view = await self.view(job)
                await conn.deliver(Snapshot(job=view))
                if after_seq is not None:
                    await self._deliver_after(conn, job, after_seq, view)
                conn.sent(job_id, job["seq"], job["status"])
        except BaseException:
            self.unsubscribe(conn, job_id)  # half a subscription would never get a snapshot
            raise
        return True

    def unsubscribe(self, conn: Connection, job_id: str) -> None:
        conn.watching.pop(job_id, None)
        conn.grants.pop(job_id, None)
        conn.finished.discard(job_id)
        watchers = self.watchers.get(job_id)
        if watchers is not None:
            watchers.discard(conn)
            if not watchers:
                del self.watchers[job_id]

    def drop(self, conn: Connection) -> None:
        for job_id in list(conn.watching):
            self.unsubscribe(conn, job_id)

    def connections(self) -> set[Connection]:
        return {conn for conns in self.watchers.values() for conn in conns}

    async def on_status(self, event: JobStatusChanged) -> None:
        await self.catch_up(event.job_id, event.seq, event.occurred_at)

    async def resync(self, *, everything: bool = False) -> None:
        """Catch up every socket on its unfinished jobs whatever events were lost: one
        light `$in` read per batch of watched jobs, a full read only of those that moved.
        At most `max_jobs` jobs a pass unless `everything`: those checked longest ago
        (a job's read for an event counts as a check), so the database's load stays
        bounded however many jobs are watched."""
        lowest = self._unfinished()
        for job_id in [j for j in self._checked if j not in lowest]:
            del self._checked[job_id]  # no longer watched, or seen final
        unchecked = [job_id for job_id in lowest if job_id not in self._checked]
        due = unchecked + list(self._checked)
        if not everything:
            due = due[: self.resync_max_jobs]
        for job_id in due:
            self._checked_now(job_id)
        for batch in batches(due):
            moved = [
                (doc["_id"], doc["seq"])
                async for doc in self.repo.jobs.find({"_id": {"$in": batch}}, {"seq": 1})
                if doc["seq"] > lowest[doc["_id"]]
            ]
            await asyncio.gather(*(self.catch_up(job_id, seq) for job_id, seq in moved))

    def _checked_now(self, job_id: str) -> None:
        self._checked.pop(job_id, None)
        self._checked[job_id] = None  # last in the order of checks

    def _unfinished(self) -> dict[str, int]:
        """Watched jobs some socket has not seen final yet, with the lowest seq sent.
        Empty (and no query at all) when no socket watches anything."""
        lowest: dict[str, int] = {}
        for job_id, conns in self.watchers.items():
            sent = [
                seq
                for c in conns
                if job_id not in c.finished and (seq := c.watching.get(job_id)) is not None
            ]
            if sent:
                lowest[job_id] = min(sent)
        return lowest

    async def catch_up(self, job_id: str, seq: int, occurred_at: datetime | None = None) -> None:
        """Send each socket watching the job the stored steps it has not had, once
        any of them is behind `seq` (the event's, or the one a resync read)."""
        behind = [c for c in self._watching(job_id) if (c.watching.get(job_id) or 0) < seq]
        if not behind:
            return  # a duplicate or late event: every socket has this step already
        try:
            job = await self.read(job_id)
        except PyMongoError as e:
            log.warning("cannot read the job; the next resync catches its sockets up: %s", e)
            return
        if job is None:
            return
        self._checked_now(job_id)  # as good as a resync's check
        view: dict[str, Any] | None = None

        async def job_view() -> dict[str, Any]:
            nonlocal view
            if view is None:
                view = await self.view(job)
            return view

        results = await asyncio.gather(
            *(self._push(conn, job, job_view, occurred_at) for conn in behind),
            return_exceptions=True,
        )
        for conn, result in zip(behind, results, strict=True):
            if isinstance(result, ConnectionGone):
                self.drop(conn)
            elif isinstance(result, BaseException):
                log.error("push to a socket failed", exc_info=result)

    async def read(self, job_id: str) -> Job | None:
        """The job as stored after this call, read together with the others asked for."""
        future = self._due.get(job_id)
        if future is None:
            future = self._due[job_id] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            if len(self._readers) < min(READS_IN_FLIGHT, 1 + len(self._due) // READ_BATCH):
                reader = asyncio.create_task(self._read_due())
                self._readers.add(reader)
                reader.add_done_callback(self._readers.discard)
        # Shielded: one caller canceled must not cancel the read for the others.
        return await asyncio.shield(future)

    async def _read_due(self) -> None:
        while self._due:
            ids = list(itertools.islice(self._due, READ_BATCH))
            due = {job_id: self._due.pop(job_id) for job_id in ids}
            try:
                if len(ids) == 1:
                    found = {ids[0]: await self.repo.jobs.find_one({"_id": ids[0]}, self.fields)}
                else:
                    query = {"_id": {"$in": ids}}
                    found = {
                        doc["_id"]: doc async for doc in self.repo.jobs.find(query, self.fields)
                    }
            except Exception as e:
                for future in due.values():
                    if not future.done():
                        future.set_exception(e)
                continue
            for job_id, future in due.items():
                if not future.done():
                    future.set_result(found.get(job_id))

    def _watching(self, job_id: str) -> Iterable[Connection]:
        return list(self.watchers.get(job_id, ()))

    async def _push(
        self,
        conn: Connection,
        job: Job,
        job_view: Callable[[], Awaitable[dict[str, Any]]],
        occurred_at: datetime | None,
    ) -> None:
        async with conn.lock:
            last = conn.watching.get(job["_id"])
            # None: the snapshot is still to come and will include this change.
            if last is None or last >= job["seq"]:
                return
            await self._deliver_after(conn, job, last, await job_view())
            if occurred_at is not None:  # pushed for an event, not by a resync
                WS_PUSH_SECONDS.observe(max(0.0, (datetime.now(UTC) - occurred_at).total_seconds()))

    async def _deliver_after(
        self, conn: Connection, job: Job, after_seq: int, view: dict[str, Any]
    ) -> None:
        """Send the history after `after_seq`, in order; call with `conn.lock` held."""
        for step in sorted(job.get("history", []), key=lambda h: h["seq"]):
            if step["seq"] <= after_seq:
                continue
            newest = step["seq"] == job["seq"]
            await conn.deliver(
                Status(
                    job_id=job["_id"],
                    seq=step["seq"],
                    status=step["status"],
                    progress=step["progress"],
                    at=_iso(step["at"]),
                    job=view if newest else None,
                )
            )
            conn.sent(job["_id"], step["seq"], step["status"])
