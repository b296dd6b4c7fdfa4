"""Storage failing for a few seconds, again and again, while 20 jobs run: every write
and read fails meanwhile (retried through the delayed retry queues, `attempts` counted),
and afterwards every job is completed or failed with a reason, none lost or doubled, and
storage holds exactly one clip and one poster per completed job (harness.check). Provider
jobs are held at the fake OpenRouter and a portion finishes just before each outage, so
their clips are stored while it lasts.

The outage: the storage folder is swapped for a FILE of the same name, atomically (chmod
would not stop a worker running as root), then swapped back."""

import asyncio
import ctypes
import os
import time
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.faults.harness import (
    N_JOBS,
    assert_sound,
    check,
    hold,
    release,
    submit_and_watch,
    wait_for_status,
)
from tests.support.fake_openrouter import FakeOpenRouter
from tests.support.processes import System

pytestmark = pytest.mark.timeout(300)

OUTAGES = 3
OUTAGE_SECONDS = 3.0
AT_FDCWD = -100
RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE): no moment at which
    either is missing. Swapping with two renames left one, and a photo read then was
    "missing" (a permanent source_missing) instead of failing like the rest of the outage."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, bytes(a), AT_FDCWD, bytes(b), RENAME_EXCHANGE) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"renameat2 exchange {a} <-> {b}: {os.strerror(error)}")


class Outage:
    """The storage folder swapped for a file of the same name; swapped back by `end`.
    Meanwhile every read and write fails (NotADirectoryError), and so does the folder's
    re-creation by a readiness check (FileExistsError)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blocker = root.with_name("objects.blocker")

    def begin(self) -> None:
        self.blocker.write_text("storage is down\n")
        exchange(self.root, self.blocker)

    def end(self) -> None:
        exchange(self.root, self.blocker)
        self.blocker.unlink()


async def test_storage_failing_for_a_while(
    fault_system: System,
    fault_api: httpx.AsyncClient,
    database: AsyncDatabase,
    fake: FakeOpenRouter,
) -> None:
    root = Path(fault_system.env["STORAGE_URL"].removeprefix("file://"))
    hold(fake)
    run = await submit_and_watch(fault_system, fault_api)
    ids = run.ids
    outage = Outage(root)
    faults = 0

    for _ in range(OUTAGES):
        await wait_for_status(database, ids, "generating", within=90)
        # Some provider jobs end now: their clips are stored during the outage.
        release(fake, N_JOBS // (OUTAGES + 1))
        outage.begin()
        faults += 1
        try:
            await asyncio.sleep(OUTAGE_SECONDS)  # how long the fault lasts, not a check
        finally:
            outage.end()
    last_fault = time.monotonic()
    release(fake)
    figures = await check(
        "storage writes failing",
        run,
        database,
        fake,
        fault_system,
        faults=faults,
        last_fault_at=last_fault,
    )
    assert_sound(figures)
    # The outages were retried, not shrugged off: some job counted an attempt.
    retried = await database["jobs"].count_documents(
        {"_id": {"$in": ids}, "last_error.code": "storage_unavailable"}
    )
    print(f"[faults] storage writes failing: jobs that retried: {retried}")
    assert retried > 0
    assert figures.completed == N_JOBS
