"""Graceful shutdown of a real worker process: on SIGTERM mid-render it stops taking
messages, finishes its job within GRACEFUL_TIMEOUT or hands it back, and exits 0; the
jobs complete (by the old worker, or at once by its replacement)."""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.conftest import _run
from tests.faults.harness import FAULT_ENV, count_in, restart, wait_for_status
from tests.support import client as user
from tests.support import processes

pytestmark = pytest.mark.timeout(180)

# Long enough that a job left with our lease would visibly wait for it to run out.
LEASE = 120


@pytest.fixture
def shutdown_system(
    request: pytest.FixtureRequest, system_env: dict[str, str], tmp_path: Path
) -> Iterator[processes.System]:
    grace = request.param
    env = {
        **system_env,
        **FAULT_ENV,
        "LEASE_SECONDS": str(LEASE),
        "GRACEFUL_TIMEOUT": str(grace),
        "PREFETCH": "1",  # one job in flight: the others must stay untouched
    }
    yield from _run(request, env, tmp_path / "logs", ("gateway", "prompt", "video"))


@pytest.mark.parametrize(
    ("shutdown_system", "duration", "outcome"),
    [(30, 3, "finished"), (0.5, 10, "handed back")],
    indirect=["shutdown_system"],
)
async def test_sigterm_mid_render_finishes_or_hands_back_and_exits_0(
    shutdown_system: processes.System, database: AsyncDatabase, duration: int, outcome: str
) -> None:
    system = shutdown_system
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api:
        accepted = [
            await user.submitted(
                api,
                user.product_photo(seed=2000 + i, size=(400, 300)),
                aspect_ratio="1:1",
                duration=duration,
            )
            for i in range(3)
        ]
    ids = [a["id"] for a in accepted]
    await wait_for_status(database, ids, "generating", within=60)
    in_flight = [j["_id"] async for j in database["jobs"].find({"status": "generating"})]
    assert len(in_flight) == 1
    stopping = system["video"]
    stopping.process.send_signal(signal.SIGTERM)
    code = stopping.process.wait(0.5 + 30 + 10)  # the grace period, and then some

    assert code == 0, stopping.log()
    job = await database["jobs"].find_one({"_id": in_flight[0]})
    assert job is not None
    if outcome == "finished":
        assert job["status"] == "completed", job.get("error")
    else:
        assert job["status"] in ("generating", "storing") and "lease" not in job, job
    # No other job was taken while stopping.
    others = [i for i in ids if i != in_flight[0]]
    assert await count_in(database, ("generating", "storing", "completed"), others) == 0

    restart(system, "video", sig=signal.SIGTERM)  # the old one has exited already
    processes.wait_ready(processes.System(system.env, {"video": system["video"]}))
    restarted = time.monotonic()

    async def all_done() -> bool:
        return await count_in(database, ("completed",), ids) == len(ids)

    await user.wait_for(all_done, within=LEASE - 30, what="every job completed", interval=0.2)
    # A handed-back job was taken over at once, not after its lease ran out.
    assert time.monotonic() - restarted < LEASE - 30
    jobs = [j async for j in database["jobs"].find({"_id": {"$in": ids}})]
    for j in jobs:
        assert [h["status"] for h in j["history"]].count("completed") == 1
