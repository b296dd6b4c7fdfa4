"""The hub's resync and reads on their own (fake repository): what they read, and when
they read nothing."""

import asyncio
import json
import logging
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from common.auth import Principal
from common.events import JobStatus, JobStatusChanged
from notifier.hub import Connection, Grant, Hub


class Jobs:
    """Stands in for the `jobs` collection and the repository's `get`."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.queries: list[dict[str, Any]] = []
        self.down = False

    async def get(self, job_id: str) -> dict[str, Any] | None:
        if self.down:
            raise AutoReconnect("database down")
        return self.docs.get(job_id)

    async def find_one(
        self, query: dict[str, Any], projection: dict[str, int] | None = None
    ) -> dict[str, Any] | None:
        return await self.get(query["_id"])

    def find(self, query: dict[str, Any], projection: dict[str, int] | None = None) -> Any:
        self.queries.append(query)
        found = [self.docs[i] for i in query["_id"]["$in"] if i in self.docs]

        async def cursor() -> Any:
            for doc in found:
                yield {"_id": doc["_id"], "seq": doc["seq"]} if projection else doc

        return cursor()


class Repo:
    def __init__(self) -> None:
        self.jobs = Jobs()
        self.get = self.jobs.get


def job_at(job_id: str, statuses: list[str]) -> dict[str, Any]:
    history = [{"seq": i, "status": s, "progress": 0, "at": "t"} for i, s in enumerate(statuses, 1)]
    return {"_id": job_id, "seq": len(statuses), "status": statuses[-1], "history": history}


async def view(job: dict[str, Any]) -> dict[str, Any]:
    return {"id": job["_id"], "seq": job["seq"], "status": job["status"]}


@pytest.fixture
def repo() -> Repo:
    return Repo()


async def watch(hub: Hub, repo: Repo, job_id: str, sent: list[str]) -> Connection:
    async def send_text(text: str) -> None:
        sent.append(text)

    conn = Connection(send_text)
    grant = Grant(Principal(job_id=job_id), "token")
    assert await hub.subscribe(conn, job_id, None, grant)
    return conn


async def test_resync_reads_nothing_without_unfinished_watched_jobs(repo: Repo) -> None:
    hub = Hub(repo, view)  # type: ignore[arg-type]
    await hub.resync()
    assert repo.jobs.queries == []  # no sockets: no query

    repo.jobs.docs["done"] = job_at("done", ["queued", "completed"])
    await watch(hub, repo, "done", [])
    await hub.resync()
    assert repo.jobs.queries == []  # only a final job: nothing left to catch up on


async def test_a_failed_read_leaves_the_event_to_the_resync(
    repo: Repo, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub(repo, view)  # type: ignore[arg-type]
    repo.jobs.docs["j"] = job_at("j", ["queued"])
    sent: list[str] = []
    conn = await watch(hub, repo, "j", sent)

    repo.jobs.docs["j"] = job_at("j", ["queued", "prompting", "failed"])
    repo.jobs.down = True
    with caplog.at_level(logging.WARNING):
        await hub.on_status(
            JobStatusChanged(job_id="j", seq=3, status=JobStatus.FAILED, progress=0)
        )
    assert "resync" in caplog.text and conn.watching["j"] == 1  # not pushed, not raised

    repo.jobs.down = False
    await hub.resync()
    assert repo.jobs.queries == [{"_id": {"$in": ["j"]}}]
    pushed = [json.loads(m) for m in sent[1:]]  # after the snapshot
    assert [(m["seq"], m["status"], "job" in m) for m in pushed] == [
        (2, "prompting", False),
        (3, "failed", True),
    ]
    assert conn.watching["j"] == 3 and not conn.waiting


async def test_a_resync_pass_reads_at_most_its_share_the_longest_unchecked_first(
    repo: Repo,
) -> None:
    hub = Hub(repo, view, resync_max_jobs=2)  # type: ignore[arg-type]
    for job_id in ("a", "b", "c"):
        repo.jobs.docs[job_id] = job_at(job_id, ["queued"])
        await watch(hub, repo, job_id, [])

    def read_by_resync() -> list[str]:
        ids = [i for q in repo.jobs.queries for i in q["_id"]["$in"]]
        repo.jobs.queries.clear()
        return ids

    await hub.resync()
    assert read_by_resync() == ["a", "b"]
    await hub.resync()
    assert read_by_resync() == ["c", "a"]
    await hub.resync(everything=True)  # after a broker reconnect: every watched job
    assert sorted(read_by_resync()) == ["a", "b", "c"]


async def test_jobs_asked_for_at_once_are_read_together(repo: Repo) -> None:
    hub = Hub(repo, view)  # type: ignore[arg-type]
    sent: dict[str, list[str]] = {}
    for job_id in ("a", "b", "c"):
        repo.jobs.docs[job_id] = job_at(job_id, ["queued"])
        sent[job_id] = []
        await watch(hub, repo, job_id, sent[job_id])
    for job_id in ("a", "b", "c"):
        repo.jobs.docs[job_id] = job_at(job_id, ["queued", "prompting"])
    repo.jobs.queries.clear()

    await asyncio.gather(
        *(
            hub.on_status(
                JobStatusChanged(job_id=job_id, seq=2, status=JobStatus.PROMPTING, progress=10)
            )
            for job_id in ("a", "b", "c")
        )
    )
    assert repo.jobs.queries == [{"_id": {"$in": ["a", "b", "c"]}}]  # one read for the three
    for job_id in ("a", "b", "c"):
        assert [json.loads(m)["seq"] for m in sent[job_id][1:]] == [2]
