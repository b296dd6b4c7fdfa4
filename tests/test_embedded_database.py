"""The embedded database's two fixes (scripts/secantusd.py): a claim or status change
reads one job however many are stored, and the retryable-write records are pruned the
way SecantusDB prunes them, without scanning all of them on every write."""

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo import MongoClient, ReturnDocument
from secantus import storage, transactions
from secantus.server import SecantusDBServer

from scripts import secantusd

JOBS = 300


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Documents read by collection scans while the test runs."""
    read: list[int] = []
    original = storage.Storage._scan_docs

    def counted(self: storage.Storage, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for row in original(self, *args, **kwargs):
            read.append(1)
            yield row

    monkeypatch.setattr(storage.Storage, "_scan_docs", counted)
    return read


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[Any]:
    server = SecantusDBServer(port=0, storage_path=str(tmp_path / "db"))
    server.start()
    client: MongoClient[dict[str, Any]] = MongoClient(f"mongodb://127.0.0.1:{server.port}/")
    try:
        collection = client.pv.jobs
        collection.insert_many(
            [{"_id": f"job{i}", "status": "queued", "seq": 1} for i in range(JOBS)]
        )
        yield collection
    finally:
        client.close()
        server.stop()


def claim(jobs: Any, job_id: str) -> Any:
    """The shape of every claim and status change: `_id` and the expected status."""
    return jobs.find_one_and_update(
        {"_id": job_id, "status": {"$in": ["queued", "prompting"]}},
        {"$set": {"status": "prompting"}, "$inc": {"seq": 1}},
        return_document=ReturnDocument.AFTER,
    )


def test_a_status_change_reads_one_job_however_many_are_stored(
    jobs: Any, scans: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = storage.Storage._try_index_id_keys
    monkeypatch.setattr(
        storage.Storage, "_try_index_id_keys", secantusd.point_lookup_first(original)
    )
    assert claim(jobs, "job7") == {"_id": "job7", "status": "prompting", "seq": 2}
    assert claim(jobs, "job7")["seq"] == 3  # prompting is still expected
    jobs.update_one({"_id": "job8"}, {"$set": {"status": "completed"}})
    assert claim(jobs, "job8") is None  # not in an expected status: unchanged
    assert jobs.find_one({"_id": "job8"}) == {"_id": "job8", "status": "completed", "seq": 1}
    assert claim(jobs, "nope") is None
    assert scans == [], f"{len(scans)} documents scanned"
    assert jobs.count_documents({"status": "prompting"}) == 1  # (a scan: no index)


def test_without_the_fix_every_status_change_reads_every_job(jobs: Any, scans: list[int]) -> None:
    """Why the fix exists (and that the test above can fail): SecantusDB's own planner."""
    assert claim(jobs, "job7")["seq"] == 2
    assert len(scans) >= JOBS


def test_profiling_turned_on_and_off_takes_effect_at_once(
    jobs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profiler's settings kept in memory still follow the `profile` command."""
    get, set_ = secantusd.profile_in_memory(
        storage.Storage.get_profile, storage.Storage.set_profile
    )
    monkeypatch.setattr(storage.Storage, "get_profile", get)
    monkeypatch.setattr(storage.Storage, "set_profile", set_)
    database = jobs.database
    jobs.find_one({"_id": "job1"})  # read and kept: off
    database.command("profile", 2)
    jobs.find_one({"_id": "job2"})
    database.command("profile", 0)
    jobs.find_one({"_id": "job3"})
    profiled = [e.get("command", {}).get("filter") for e in database["system.profile"].find()]
    assert {"_id": "job2"} in profiled
    assert {"_id": "job1"} not in profiled and {"_id": "job3"} not in profiled
    assert database.command("profile", -1)["was"] == 0


def registry(prune: Any, now: list[float]) -> transactions.TransactionRegistry:
    kept = transactions.TransactionRegistry(time_func=lambda: now[0])
    kept._prune_retryable_locked = types.MethodType(prune, kept)  # type: ignore[method-assign]
    return kept


@settings(max_examples=200, deadline=None)
@given(waits=st.lists(st.floats(min_value=0, max_value=40), max_size=60))
def test_retryable_writes_are_kept_and_dropped_as_secantusdb_does(waits: list[float]) -> None:
    """The records kept after each write, with a 100 s lifetime and a cap of 5: the same
    as SecantusDB's own pruning for writes made one after another."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transactions, "_RETRYABLE_RECORD_LIFETIME_SECONDS", 100.0)
        patch.setattr(transactions, "_RETRYABLE_RECORD_MAX", 5)
        kept_alike(waits)


def kept_alike(waits: list[float]) -> None:
    now = [0.0]
    theirs = registry(transactions.TransactionRegistry._prune_retryable_locked, now)
    ours = registry(secantusd.prune_oldest_first, now)
    for number, wait in enumerate(waits):
        now[0] += wait
        for kept in (theirs, ours):
            kept.record_retryable(b"session", number, b"write", {"ok": 1.0, "n": 1})
        assert list(ours._retryable) == list(theirs._retryable)
        replayed = ours.retryable_reply(b"session", number, b"write")
        assert replayed is not None and replayed["n"] == 1
