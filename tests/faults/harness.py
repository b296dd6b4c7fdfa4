"""What every fault scenario shares: N jobs submitted and watched over the WebSocket
while faults are injected, then every job checked, and the figures reported at the end
of the test run.

The local renderer is kept cheap (1:1, 3 s, 10 fps) so that N = 20 jobs fit in well
under a minute on two cores; leases and the reconciler are short so that recovery from
a killed worker is quick."""

import asyncio
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from tests.support import client as user
from tests.support import processes
from tests.support.backends import free_port
from tests.support.processes import System

N_JOBS = 20
FAULT_ENV = {
    "RENDER_FPS": "10",
    "LEASE_SECONDS": "6",
    "RECONCILE_INTERVAL_SECONDS": "1",
    "RECONCILE_STALE_SECONDS": "8",
    "MAX_ATTEMPTS": "8",
}
ACTIVE = ("queued", "prompting", "prompt_ready", "generating", "storing")
# Every scenario's figures, shown at the end of the run (conftest.pytest_terminal_summary).
REPORTED: list["Figures"] = []


@dataclass
class Figures:
    scenario: str
    jobs: int
    faults: int
    completed: int = 0
    failed_with_reason: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"[faults] {self.scenario}: jobs={self.jobs} faults={self.faults} "
            f"completed={self.completed} failed_with_reason={self.failed_with_reason} "
            f"lost={self.lost} duplicated={self.duplicated} "
            f"recovery={self.recovery_seconds:.1f}s"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Run:
    """Submitted jobs and their WebSocket watchers."""

    accepted: list[dict[str, Any]]
    watchers: list[asyncio.Task[user.Followed]]


async def submit_and_watch(system: System, api: httpx.AsyncClient, n: int = N_JOBS) -> Run:
    accepted = []
    for i in range(n):
        accepted.append(
            await user.submitted(
                api, user.product_photo(seed=1000 + i, size=(400, 300)), aspect_ratio="1:1"
            )
        )
    watchers = [
        asyncio.create_task(
            user.follow(system.ws_url, a["id"], a["token"], after_seq=a["job"]["seq"], within=240)
        )
        for a in accepted
    ]
    return Run(accepted, watchers)


def restart(system: System, name: str, *, sig: int = signal.SIGKILL) -> None:
    """Kill a service's process with `sig` and start a new one (a fresh port and log)."""
    old = system[name]
    old.process.send_signal(sig)
    old.process.wait(30)
    system.services[f"{name}-killed-{old.port}"] = old  # its log stays in the report
    system.services[name] = processes._start(old.spec, free_port(), system.env, old.log_path.parent)


async def count_in(db: AsyncDatabase, statuses: tuple[str, ...], ids: list[str]) -> int:
    return int(await db["jobs"].count_documents({"_id": {"$in": ids}, "status": {"$in": statuses}}))


async def wait_for_status(db: AsyncDatabase, ids: list[str], status: str, within: float) -> None:
    async def some() -> bool:
        return await count_in(db, (status,), ids) > 0

    await user.wait_for(some, within=within, what=f"a job in {status}", interval=0.1)


def entries(history: list[dict[str, Any]], status: str) -> int:
    return user.stages([h["status"] for h in history]).count(status)


async def check(
    scenario: str, run: Run, db: AsyncDatabase, *, faults: int, last_fault_at: float
) -> Figures:
    """Wait for every watcher, then check every job; the figures of the scenario."""
    ids = [a["id"] for a in run.accepted]
    figures = Figures(scenario, len(ids), faults)
    followed = await asyncio.gather(*run.watchers, return_exceptions=True)
    figures.recovery_seconds = max(0.0, time.monotonic() - last_fault_at)
    for accepted, seen in zip(run.accepted, followed, strict=True):
        job_id = accepted["id"]
        job = await db["jobs"].find_one({"_id": job_id})
        if job is None or job["status"] in ACTIVE:
            figures.lost += 1
            figures.problems.append(f"{job_id}: {job and job['status']}")
            continue
        if job["status"] == "completed":
            figures.completed += 1
        elif job["status"] == "failed" and (job.get("error") or {}).get("message"):
            figures.failed_with_reason += 1
        else:
            figures.problems.append(f"{job_id}: {job['status']} without a reason")
        prompts = await db["prompts"].count_documents({"origin_job": job_id})
        if (
            entries(job["history"], "prompting") > 1
            or entries(job["history"], "generating") > 1
            or entries(job["history"], "completed") > 1
            or prompts > 1
        ):
            figures.duplicated += 1
            figures.problems.append(f"{job_id}: a stage twice ({prompts} prompts)")
        if isinstance(seen, BaseException):
            figures.problems.append(f"{job_id}: watcher: {type(seen).__name__}: {seen}")
            continue
        seqs = [s["seq"] for s in seen.statuses]
        after = accepted["job"]["seq"]
        if seqs != list(range(after + 1, after + 1 + len(seqs))):
            figures.problems.append(f"{job_id}: watcher saw seq {seqs} after {after}")
        if seen.final_status != job["status"] or (seqs and seqs[-1] != job["seq"]):
            figures.problems.append(
                f"{job_id}: watcher ended at {seen.final_status}, job is {job['status']}"
            )
    REPORTED.append(figures)
    return figures
