"""Storage failing for a few seconds, again and again, while 20 jobs run: every write
and read fails meanwhile (retried through the delayed retry queues, `attempts` counted),
and afterwards every job is completed or failed with a reason, none lost or doubled.

The outage: the storage folder is swapped for a FILE of the same name (chmod would not
stop a worker running as root), then swapped back."""

import asyncio
import shutil
import time
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.faults.harness import N_JOBS, check, submit_and_watch, wait_for_status
from tests.faults.test_faults import assert_sound
from tests.support.processes import System

pytestmark = pytest.mark.timeout(300)

OUTAGES = 3
OUTAGE_SECONDS = 3.0


class Outage:
    """The storage folder replaced by a file; put back by `end`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.aside: list[Path] = []

    def begin(self) -> None:
        blocker = self.root.with_name("objects.blocker")
        blocker.write_text("storage is down\n")
        while True:
            away = self.root.with_name(f"objects.away.{len(self.aside)}")
            self.root.rename(away)
            self.aside.append(away)
            try:
                blocker.rename(self.root)
                return
            except OSError:  # a worker made the folder again in between: set it aside too
                continue

    def end(self) -> None:
        self.root.unlink()
        first, *others = self.aside
        first.rename(self.root)
        for other in others:
            shutil.copytree(other, self.root, dirs_exist_ok=True)
            shutil.rmtree(other)
        self.aside = []


async def test_storage_failing_for_a_while(
    fault_system: System, fault_api: httpx.AsyncClient, database: AsyncDatabase
) -> None:
    root = Path(fault_system.env["STORAGE_URL"].removeprefix("file://"))
    run = await submit_and_watch(fault_system, fault_api)
    ids = [a["id"] for a in run.accepted]
    outage = Outage(root)
    faults = 0
    for _ in range(OUTAGES):
        await wait_for_status(database, ids, "generating", within=90)
        outage.begin()
        faults += 1
        try:
            await asyncio.sleep(OUTAGE_SECONDS)  # how long the fault lasts, not a check
        finally:
            outage.end()
    last_fault = time.monotonic()
    figures = await check(
        "storage writes failing", run, database, faults=faults, last_fault_at=last_fault
    )
    assert_sound(figures)
    # The outages were retried, not shrugged off: some job counted an attempt.
    retried = await database["jobs"].count_documents(
        {"_id": {"$in": ids}, "last_error.code": "storage_unavailable"}
    )
    print(f"[faults] storage writes failing: jobs that retried: {retried}")
    assert retried > 0
    assert figures.completed == N_JOBS
