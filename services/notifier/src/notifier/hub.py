"""Which sockets watch which job, and how status steps reach them.

The job's stored `history` is the source of truth, never the event itself: on
every `job.status` event for a watched job, the job is read once and each socket
gets the history entries after the last seq it was sent, in order. So a
duplicated, lost or reordered event cannot make a client miss or repeat a step.

A subscription is registered *before* the job is read for its snapshot, and the
socket's lock is held from that read until the snapshot is sent: any change
after the read has an event that finds the subscription and waits for the lock.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from common.events import JobStatusChanged
from common.jobs import Job, JobRepository
from common.metrics import WS_MESSAGES, WS_PUSH_SECONDS
from notifier.protocol import ServerMessage, Snapshot, Status, encode

log = logging.getLogger(__name__)

# A socket that cannot take a message in this time is treated as gone.
SEND_TIMEOUT = 10.0

View = Callable[[Job], Awaitable[dict[str, Any]]]


class ConnectionGone(Exception):
    pass


class Connection:
    """One client socket: its send function, a lock that keeps its messages in
    order, and per watched job the last seq sent (None until the snapshot)."""

    def __init__(self, send_text: Callable[[str], Awaitable[None]]) -> None:
        self._send_text = send_text
        self.lock = asyncio.Lock()
        self.watching: dict[str, int | None] = {}
        self.gone = False

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


class Hub:
    def __init__(self, repo: JobRepository, view: View) -> None:
        self.repo = repo
        self.view = view
        self.watchers: dict[str, set[Connection]] = {}

    async def subscribe(self, conn: Connection, job_id: str, after_seq: int | None) -> bool:
        """Snapshot, then every step after `after_seq`; False when the job does not exist."""
        conn.watching[job_id] = None
        self.watchers.setdefault(job_id, set()).add(conn)
        try:
            async with conn.lock:
                job = await self.repo.get(job_id)
                if job is None:
                    self.unsubscribe(conn, job_id)
                    return False
                view = await self.view(job)
                await conn.deliver(Snapshot(job=view))
                if after_seq is not None:
                    await self._deliver_after(conn, job, after_seq, view)
                conn.watching[job_id] = job["seq"]
        except BaseException:
            self.unsubscribe(conn, job_id)  # half a subscription would never get a snapshot
            raise
        return True

    def unsubscribe(self, conn: Connection, job_id: str) -> None:
        conn.watching.pop(job_id, None)
        watchers = self.watchers.get(job_id)
        if watchers is not None:
            watchers.discard(conn)
            if not watchers:
                del self.watchers[job_id]

    def drop(self, conn: Connection) -> None:
        for job_id in list(conn.watching):
            self.unsubscribe(conn, job_id)

    async def on_status(self, event: JobStatusChanged) -> None:
        behind = [
            c
            for c in self._watching(event.job_id)
            if (c.watching.get(event.job_id) or 0) < event.seq
        ]
        if not behind:
            return  # a duplicate or late event: every socket has this step already
        job = await self.repo.get(event.job_id)
        if job is None:
            return
        view: dict[str, Any] | None = None

        async def job_view() -> dict[str, Any]:
            nonlocal view
            if view is None:
                view = await self.view(job)
            return view

        results = await asyncio.gather(
            *(self._push(conn, job, job_view, event) for conn in behind), return_exceptions=True
        )
        for conn, result in zip(behind, results, strict=True):
            if isinstance(result, ConnectionGone):
                self.drop(conn)
            elif isinstance(result, BaseException):
                log.error("push to a socket failed", exc_info=result)

    def _watching(self, job_id: str) -> Iterable[Connection]:
        return list(self.watchers.get(job_id, ()))

    async def _push(
        self,
        conn: Connection,
        job: Job,
        job_view: Callable[[], Awaitable[dict[str, Any]]],
        event: JobStatusChanged,
    ) -> None:
        async with conn.lock:
            last = conn.watching.get(job["_id"])
            # None: the snapshot is still to come and will include this change.
            if last is None or last >= job["seq"]:
                return
            await self._deliver_after(conn, job, last, await job_view())
            WS_PUSH_SECONDS.observe(
                max(0.0, (datetime.now(UTC) - event.occurred_at).total_seconds())
            )

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
            if job["_id"] in conn.watching:  # not unsubscribed meanwhile
                conn.watching[job["_id"]] = step["seq"]
