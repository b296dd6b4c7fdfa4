"""How the video worker's throughput scales with `PREFETCH`, for `make bench-render`
(which writes the report).

Starts what the tests start (the local RabbitMQ, a SecantusDB daemon, a real SMTP sink;
the gateway, the notifier and the prompt worker as processes, the offline providers), then
for each setting starts one video worker on the local renderer with that `PREFETCH` and
`MEDIA_CONCURRENCY`, submits `jobs` finished 5 s 720p (16:9) ads at once (the clip of the
single-ad measurement) and waits for them. Measured per setting: the worker's CPU seconds
(its own and its ffmpeg children's, from /proc), each job's `generating` → `completed`,
and the span from the first job's `generating` to the last one's `completed`.
"""

import asyncio
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from services.video.tests.images import mug
from tests.support import bench_env, processes
from tests.support import client as user

# The single-ad measurement's clip, made anew each time (the same photo and text would
# otherwise reuse an earlier clip at once).
CLIP = {
    "aspect_ratio": "16:9",
    "duration": 5,
    "form": {"cta": "Shop now", "price": "€24", "regenerate": "true"},
}
WAIT_LIMIT = 900.0  # seconds for one setting's jobs, on a busy machine


@dataclass(frozen=True)
class Setting:
    prefetch: int
    media_concurrency: int


@dataclass
class Row:
    setting: Setting
    jobs: int
    span: float  # first `generating` → last `completed`, seconds
    renders: list[float]  # each job's `generating` → `completed`, seconds
    cpu: float  # the video worker's CPU seconds, with its ffmpeg children
    load: tuple[float, float]  # 1-minute load average before and after

    @property
    def per_minute(self) -> float:
        return self.jobs / self.span * 60

    @property
    def render(self) -> float:
        return statistics.median(self.renders)

    @property
    def cpu_per_job(self) -> float:
        return self.cpu / self.jobs


def process_cpu(pid: int) -> float:
    """CPU seconds of a process and of the children it has waited for (ffmpeg)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted from the state (3).
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _at(job: dict[str, Any], status: str) -> datetime | None:
    return next((h["at"] for h in job.get("history", []) if h["status"] == status), None)


async def _one_setting(
    system: processes.System, env: dict[str, str], n: int, video_pid: int
) -> tuple[float, list[float], float]:
    db_client: AsyncMongoClient = AsyncMongoClient(env["MONGODB_URL"], tz_aware=True)
    try:
        return await _submit_and_wait(
            system, db_client[env["MONGODB_DATABASE"]]["jobs"], n, video_pid
        )
    finally:
        await db_client.close()


async def _submit_and_wait(
    system: processes.System, jobs: AsyncCollection, n: int, video_pid: int
) -> tuple[float, list[float], float]:
    photo = mug()
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=60) as client:
        await user.sign_in(client)
        started_cpu = process_cpu(video_pid)
        accepted = await asyncio.gather(
            *(
                user.submitted(client, photo, title=f"Stoneware Mug no. {i}", **CLIP)
                for i in range(n)
            )
        )
    ids = [a["id"] for a in accepted]

    async def all_done() -> bool:
        failed = await jobs.count_documents(
            {"_id": {"$in": ids}, "status": {"$in": ["failed", "canceled"]}}
        )
        if failed:
            raise RuntimeError(f"{failed} of the bench's jobs failed")
        return await jobs.count_documents({"_id": {"$in": ids}, "status": "completed"}) == n

    await user.wait_for(all_done, within=WAIT_LIMIT, what=f"{n} ads completed", interval=0.5)
    cpu = process_cpu(video_pid) - started_cpu
    starts, ends, renders = [], [], []
    async for job in jobs.find({"_id": {"$in": ids}}):
        start, end = _at(job, "generating"), _at(job, "completed")
        assert start and end, job["_id"]
        starts.append(start)
        ends.append(end)
        renders.append((end - start).total_seconds())
    return (max(ends) - min(starts)).total_seconds(), renders, cpu


def measure(settings: list[Setting], jobs: int, progress: bool = True) -> list[Row]:
    rows = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pv-bench-scale-") as tmp:
        work = Path(tmp)
        env = bench_env.offline_env(stack, work, "render")
        others = ("gateway", "notifier", "prompt")
        with processes.running(env, work / "logs", names=others) as system:
            for setting in settings:
                worker_env = {
                    **env,
                    "PREFETCH": str(setting.prefetch),
                    "MEDIA_CONCURRENCY": str(setting.media_concurrency),
                }
                with processes.running(worker_env, work / "logs", names=("video",)) as video:
                    load_before = os.getloadavg()[0]
                    started = time.monotonic()
                    try:
                        span, renders, cpu = asyncio.run(
                            _one_setting(system, env, jobs, video["video"].process.pid)
                        )
                    except BaseException:
                        print((system.logs() + video.logs())[-5000:])
                        raise
                row = Row(setting, jobs, span, renders, cpu, (load_before, os.getloadavg()[0]))
                rows.append(row)
                if progress:
                    print(
                        f"scaling: PREFETCH {setting.prefetch}, MEDIA_CONCURRENCY "
                        f"{setting.media_concurrency}: {row.per_minute:.1f} jobs/min, render "
                        f"{row.render:.1f} s, CPU {row.cpu_per_job:.2f} s/job, load "
                        f"{row.load[0]:.1f}→{row.load[1]:.1f} "
                        f"({time.monotonic() - started:.0f} s)",
                        flush=True,
                    )
    return rows
