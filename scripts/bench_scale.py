"""The catalogue-scale part of `make bench` (issue 12): the services on the fake OpenRouter
(prompt and video, over real HTTP), measured per job and with many jobs in flight.

- saturation: jobs uploaded 8 at a time against a fake that answers at once
  (`OPENROUTER_POLL_INTERVAL_SECONDS=0.2`, `RETRY_DELAYS=[1]`): jobs/s from the first
  upload to the last `completed`, CPU per job of each service process and the database,
  MongoDB commands (round trips, `pv_mongodb_commands_total`) and broker publishes
  (`faststream_published_messages_total`) per job;
- polling lag: default poll settings, jobs the fake holds until the bench finishes them
  (at ages of 20 to 90 s, as models that take half a minute to a few minutes), the time
  from the provider's job done to `completed` seen on the WebSocket;
- in flight: jobs uploaded by one owner 16 at a time (the running-jobs limit on, above
  them) that the fake holds: upload rate with none and with all of them in flight,
  refusals, polls per second while they are held, the video worker's memory, CPU of
  each process; then all finished: every one completed, none paid twice. These jobs
  ask for the raw clip (`finish=false`): the finishing is the saturation run's.
"""

import asyncio
import functools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import client as user
from tests.support import processes
from tests.support.fake_openrouter import FakeOpenRouter, VideoPlan

DB = "database"
# Left at their defaults in the polling-lag and in-flight runs.
DEFAULT_POLLING = (
    "OPENROUTER_POLL_INTERVAL_SECONDS",
    "OPENROUTER_POLL_MAX_INTERVAL_SECONDS",
    "RETRY_DELAYS",
)
CLIP = (720, 1280)  # 9:16, what tests.support.client submits by default
SUBMIT = "POST /videos"
POLL = "GET /videos/{id}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / 100.0  # USER_HZ


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric_total(metrics: str, name: str) -> float:
    """The sum of a counter over all its labels."""
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def metric_by(metrics: str, name: str, label: str) -> dict[str, float]:
    """A counter summed by one of its labels."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels = line[line.index("{") + 1 : line.rindex("}")]
        value = dict(part.split("=", 1) for part in labels.split(",") if "=" in part).get(
            label, '""'
        )
        out[value.strip('"')] = out.get(value.strip('"'), 0.0) + float(line.split()[-1])
    return out


@dataclass
class Snapshot:
    cpu: dict[str, float]
    commands: dict[str, float]
    messages: dict[str, float]
    by_command: dict[str, dict[str, float]] = field(default_factory=dict)
    # CPU of media work in each process's own threads, by step (`pv_media_cpu_seconds_total`).
    media: dict[str, dict[str, float]] = field(default_factory=dict)


async def snapshot(system: processes.System, db_pid: int | None) -> Snapshot:
    cpu = {name: cpu_seconds(s.process.pid) for name, s in system.services.items()}
    if db_pid is not None:
        cpu[DB] = cpu_seconds(db_pid)
    commands: dict[str, float] = {}
    messages: dict[str, float] = {}
    by_command: dict[str, dict[str, float]] = {}
    media: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for name, service in system.services.items():
            text = (await client.get(f"{service.ops_url}/metrics")).text
            commands[name] = metric_total(text, "pv_mongodb_commands_total")
            messages[name] = metric_total(text, "faststream_published_messages_total")
            by_command[name] = {
                f"{c}": v
                for c, v in metric_by(text, "pv_mongodb_commands_total", "command").items()
            }
            media[name] = metric_by(text, "pv_media_cpu_seconds_total", "step")
    return Snapshot(cpu, commands, messages, by_command, media)


def per_job(before: Snapshot, after: Snapshot, jobs: int) -> dict[str, Any]:
    def diff(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: (b[k] - a.get(k, 0.0)) / jobs for k in b}

    commands_by = {
        name: {
            c: (v - before.by_command.get(name, {}).get(c, 0.0)) / jobs
            for c, v in after.by_command[name].items()
            if v - before.by_command.get(name, {}).get(c, 0.0) > 0
        }
        for name in after.by_command
    }
    media = {
        name: {
            step: (v - before.media.get(name, {}).get(step, 0.0)) / jobs
            for step, v in steps.items()
        }
        for name, steps in after.media.items()
        if steps
    }
    return {
        "cpu": diff(before.cpu, after.cpu),
        "media": media,
        "commands": diff(before.commands, after.commands),
        "messages": diff(before.messages, after.messages),
        "commands_by": commands_by,
    }


def base_env(fake: FakeOpenRouter, env: dict[str, str]) -> dict[str, str]:
    return {
        **env,
        **fake.env(),
        "PROMPT_PROVIDER": "openrouter",
        "VIDEO_PROVIDER": "openrouter",
        "OPENROUTER_MODELS_TTL_SECONDS": "3600",
        # Every WebSocket of the bench comes from 127.0.0.1.
        "MAX_CONNECTIONS_PER_IP": "100000",
        # One owner makes every clip: a cap far above them (still reserved per clip).
        "PAID_CLIPS_PER_USER_PER_DAY": "1000000",
    }


@asynccontextmanager
async def signed_in(system: processes.System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=120) as client:
        client.headers["Authorization"] = f"Bearer {await user.sign_in(client)}"
        yield client


async def in_parallel(n: int, width: int, one: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """`one(i)` for i in range(n), at most `width` at a time, in order of i."""
    gate = asyncio.Semaphore(width)

    async def gated(i: int) -> Any:
        async with gate:
            return await one(i)

    return list(await asyncio.gather(*(gated(i) for i in range(n))))


# ----- saturation -----


async def saturation(
    system: processes.System, db_pid: int | None, jobs: int, photos: list[bytes]
) -> dict[str, Any]:
    async with signed_in(system) as client:
        # One job first, so model lists, connections and caches are warm.
        warm = await user.submitted(client, photos[0])
        await user.follow(system.ws_url, warm["id"], warm["token"], within=120)
        before = await snapshot(system, db_pid)
        followers: list[asyncio.Task[Any]] = []

        async def one(i: int) -> None:
            accepted = await user.submitted(client, photos[i % len(photos)], title=f"Mug {i}")
            followers.append(
                asyncio.create_task(
                    user.follow(system.ws_url, accepted["id"], accepted["token"], within=600)
                )
            )

        start = time.perf_counter()
        await in_parallel(jobs, 8, one)
        done = await asyncio.gather(*followers)
        wall = time.perf_counter() - start
        assert all(f.final_status == "completed" for f in done), [f.final for f in done]
        await asyncio.sleep(1)  # the last acks and metrics
        after = await snapshot(system, db_pid)
    return {"jobs": jobs, "wall": wall, **per_job(before, after, jobs)}


# ----- polling lag -----


async def polling_lag(
    system: processes.System,
    fake: FakeOpenRouter,
    jobs: int,
    photos: list[bytes],
    webhook: bool = False,
    finish: bool = True,
) -> dict[str, Any]:
    """Jobs held by the provider, each finished at its own age between 20 and 90 s (when
    polling, just after a poll found it running: a whole interval to the next); the time
    from `finish` to `completed` seen on the WebSocket. With `webhook`, the fake also
    sends its signed callback to the gateway when it finishes a job (webhook mode); without
    `finish` the jobs ask for the raw clip, so the lag is the pipeline's own, not the ad's
    finishing pass."""
    ages = [20 + 70 * i / max(jobs - 1, 1) for i in range(jobs)]
    random.Random(12).shuffle(ages)
    async with signed_in(system) as client:

        async def one(i: int) -> tuple[float, float]:
            raw = {} if finish else {"form": {"finish": "false"}}
            photo = photos[i % len(photos)]
            accepted = await user.submitted(client, photo, title=f"Held {i}", **raw)
            following = asyncio.create_task(
                user.follow(system.ws_url, accepted["id"], accepted["token"], within=600)
            )
            video_id = await provider_job_of(system, accepted["id"])
            submitted = time.monotonic()
            await asyncio.sleep(max(0.0, ages[i] - (time.monotonic() - submitted)))
            if not webhook:  # the worst moment to finish: just after a poll found it running
                seen = fake.jobs[video_id].polls

                async def polled_again(video_id: str = video_id, seen: int = seen) -> bool:
                    return fake.jobs[video_id].polls > seen

                await user.wait_for(polled_again, within=60, what="the next poll", interval=0.005)
            fake.finish(video_id)
            finished = time.monotonic()
            if webhook:
                await callback(system, fake, video_id)
            followed = await following
            assert followed.final_status == "completed", followed.final
            return time.monotonic() - finished, finished - submitted

        results = await asyncio.gather(*(one(i) for i in range(jobs)))
    return {"lags": [lag for lag, _ in results], "ages": [age for _, age in results]}


WEBHOOK_PATH = "/api/v1/webhooks/openrouter"


def webhook_env(fake: FakeOpenRouter) -> dict[str, str]:
    """Webhook mode: the URL OpenRouter is given (the fake records it, the bench delivers)
    and the secret its callbacks are signed with."""
    return {
        "OPENROUTER_WEBHOOK_URL": f"https://videos.example{WEBHOOK_PATH}",
        "OPENROUTER_WEBHOOK_SECRET": fake.webhook_secret,
    }


async def callback(system: processes.System, fake: FakeOpenRouter, video_id: str) -> None:
    """The fake's signed callback for a finished job, delivered to our gateway."""
    response = await fake.deliver_webhook(f"{system.gateway.url}{WEBHOOK_PATH}", video_id)
    assert response.status_code == 200, response.text


async def provider_job_of(system: processes.System, job_id: str) -> str:
    """The provider's id of a job, once the video worker has submitted it."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(system.env["MONGODB_URL"])
    try:
        jobs = client[system.env["MONGODB_DATABASE"]]["jobs"]
        while True:
            job = await jobs.find_one({"_id": job_id}, {"provider_job": 1})
            video_id = ((job or {}).get("provider_job") or {}).get("id")
            if video_id:
                return str(video_id)
            await asyncio.sleep(0.2)
    finally:
        await client.close()


# ----- in flight -----


@functools.cache
def _provider() -> Any:
    from video.config import VideoSettings
    from video.providers.openrouter import OpenRouterVideoProvider

    return OpenRouterVideoProvider(VideoSettings(openrouter_api_key="sk-or-bench"))  # type: ignore[arg-type]


def poll_interval(age: float) -> float:
    """The video worker's poll interval for a job of `age` seconds, default settings."""
    return float(_provider().interval(age))


async def in_flight(
    system: processes.System,
    fake: FakeOpenRouter,
    db_pid: int | None,
    jobs: int,
    photos: list[bytes],
) -> dict[str, Any]:
    video_pid = system["video"].process.pid
    async with signed_in(system) as client:
        took: list[float] = []
        refused: list[int] = []
        ids: list[str] = []

        async def one(i: int) -> None:
            start = time.perf_counter()
            response = await user.submit(client, photos[i % len(photos)], form={"finish": "false"})
            took.append(time.perf_counter() - start)
            if response.status_code == 202:
                ids.append(response.json()["id"])
            else:
                refused.append(response.status_code)

        before = await snapshot(system, db_pid)
        start = time.perf_counter()
        await in_parallel(jobs, 16, one)
        uploaded_in = time.perf_counter() - start
        after_upload = await snapshot(system, db_pid)
        # Every job handed to the provider, then held: polls per second while they wait.
        for _ in range(1800):
            if len(fake.calls(SUBMIT)) >= len(ids):
                break
            await asyncio.sleep(1)
        await asyncio.sleep(10)
        window = 30.0
        polls_before = len(fake.calls(POLL))
        held_before = await snapshot(system, db_pid)
        await asyncio.sleep(window)
        held_after = await snapshot(system, db_pid)
        polls_per_second = (len(fake.calls(POLL)) - polls_before) / window
        # What the settings ask for: each job polled every interval(age) seconds.
        middle = time.monotonic() - window / 2
        expected = sum(1 / poll_interval(middle - call.at) for call in fake.calls(SUBMIT))
        video_rss_held = rss_mib(video_pid)
        for video_id in list(fake.jobs):
            fake.finish(video_id)
        finish_start = time.perf_counter()
        await all_final(system, ids)
        drained_in = time.perf_counter() - finish_start
        video_rss = max(video_rss_held, rss_mib(video_pid))
    tenth = max(1, len(took) // 10)
    first_rate = tenth / sum(took[:tenth]) * 16 if took else 0.0
    last_rate = tenth / sum(took[-tenth:]) * 16 if took else 0.0
    statuses = await final_statuses(system)
    return {
        "jobs": jobs,
        "accepted": len(ids),
        "refused": refused,
        "uploaded_in": uploaded_in,
        "first_rate": first_rate,
        "last_rate": last_rate,
        "polls_per_second": polls_per_second,
        "expected_polls_per_second": expected,
        "video_rss": video_rss,
        "drained_in": drained_in,
        "paid": len(fake.calls(SUBMIT)),
        "statuses": statuses,
        "upload": per_job(before, after_upload, max(len(ids), 1)),
        "held_cpu": {k: (held_after.cpu[k] - held_before.cpu[k]) / window for k in held_after.cpu},
        "held_commands": sum(held_after.commands.values()) - sum(held_before.commands.values()),
        "held_window": window,
    }


async def all_final(system: processes.System, ids: list[str]) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(system.env["MONGODB_URL"])
    try:
        jobs = client[system.env["MONGODB_DATABASE"]]["jobs"]
        final = ["completed", "failed", "canceled"]
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if await jobs.count_documents({"status": {"$in": final}}) >= len(ids):
                return
            await asyncio.sleep(2)
        raise TimeoutError("the jobs in flight did not all finish in 30 minutes")
    finally:
        await client.close()


async def final_statuses(system: processes.System) -> dict[str, int]:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(system.env["MONGODB_URL"])
    try:
        jobs = client[system.env["MONGODB_DATABASE"]]["jobs"]
        counts: dict[str, int] = {}
        async for job in jobs.find({}, {"status": 1}):
            counts[job["status"]] = counts.get(job["status"], 0) + 1
        return counts
    finally:
        await client.close()


def run_scale(
    env: dict[str, str],
    work: Path,
    db_pid: int | None,
    *,
    jobs: int,
    lag_jobs: int,
    in_flight_jobs: int,
) -> dict[str, Any]:
    photos = [user.product_photo(500 + i) for i in range(16)]
    results: dict[str, Any] = {}
    with FakeOpenRouter.running() as fake:
        # Pending, in_progress, then completed: answers at once, with a clip of the exact
        # frame size (no re-encoding: media work is not what this measures).
        fake.video_plan = VideoPlan(size=CLIP)
        saturated = {
            **base_env(fake, env),
            "OPENROUTER_POLL_INTERVAL_SECONDS": "0.2",
            "OPENROUTER_POLL_MAX_INTERVAL_SECONDS": "0.2",
            "RETRY_DELAYS": "[1]",
            "PREFETCH": "16",
            "MONGODB_DATABASE": env["MONGODB_DATABASE"] + "_sat",
            "AMQP_PREFIX": env["AMQP_PREFIX"] + "sat.",
        }
        if jobs:
            with processes.running(saturated, work / "logs-sat") as system:
                print(f"bench: saturation, {jobs} jobs 8 at a time")
                results["saturation"] = asyncio.run(saturation(system, db_pid, jobs, photos))

    with FakeOpenRouter.running() as fake, ExitStack():
        fake.video_plan = VideoPlan(polls=("pending", "in_progress"), hold=True, size=CLIP)
        defaults = {
            **base_env(fake, env),
            "MONGODB_DATABASE": env["MONGODB_DATABASE"] + "_lag",
            "AMQP_PREFIX": env["AMQP_PREFIX"] + "lag.",
        }
        for key in DEFAULT_POLLING:
            defaults.pop(key)
        if lag_jobs:
            with processes.running(defaults, work / "logs-lag") as system:
                print(f"bench: polling lag, {lag_jobs} jobs held 20-90 s (default poll settings)")
                results["lag"] = asyncio.run(polling_lag(system, fake, lag_jobs, photos))
        if lag_jobs:
            hooked = {**defaults, **webhook_env(fake), "AMQP_PREFIX": env["AMQP_PREFIX"] + "hook."}
            hooked["MONGODB_DATABASE"] = env["MONGODB_DATABASE"] + "_hook"
            with processes.running(hooked, work / "logs-hook") as system:
                print(f"bench: webhook lag, {lag_jobs} jobs held 20-90 s (webhook mode)")
                results["webhook_lag"] = asyncio.run(
                    polling_lag(system, fake, lag_jobs, photos, webhook=True)
                )
                print(f"bench: webhook lag, {lag_jobs} jobs asking for the raw clip")
                results["webhook_raw_lag"] = asyncio.run(
                    polling_lag(system, fake, lag_jobs, photos, webhook=True, finish=False)
                )

    if in_flight_jobs:
        with FakeOpenRouter.running() as fake:
            fake.video_plan = VideoPlan(polls=("pending", "in_progress"), hold=True, size=CLIP)
            held = {
                **base_env(fake, env),
                "MONGODB_DATABASE": env["MONGODB_DATABASE"] + "_held",
                "AMQP_PREFIX": env["AMQP_PREFIX"] + "held.",
                "FREE_RUNNING_JOBS_PER_EMAIL": str(in_flight_jobs + 100),
            }
            for key in DEFAULT_POLLING:
                held.pop(key)
            with processes.running(held, work / "logs-held") as system:
                print(f"bench: {in_flight_jobs} jobs in flight, uploaded 16 at a time")
                results["in_flight"] = asyncio.run(
                    in_flight(system, fake, db_pid, in_flight_jobs, photos)
                )
    return results
