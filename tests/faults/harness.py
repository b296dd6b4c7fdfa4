"""What every fault scenario shares: N jobs submitted and watched over the WebSocket
while faults are injected, then every job checked, and the figures reported at the end
of the test run.

Both providers are `openrouter`, pointed at the fake OpenRouter of the test process
(tests/support/fake_openrouter.py), which records every request. Each job gets a title of
its own; the fake's prompt names the title and the video request carries the prompt, so
the checks count, per job, the chat calls and the accepted (paid) `POST /videos` that
really reached the provider, and the objects really in storage — not entries the
services wrote about themselves. The provider's clips take a couple of one-second polls;
scenarios that need jobs to stay in `generating` while they inject faults hold them
(`hold`) and let them finish in portions (`release`). Leases and the reconciler are short
so that recovery from a killed worker is quick."""

import asyncio
import signal
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from tests.support import client as user
from tests.support import processes
from tests.support.backends import free_port
from tests.support.fake_openrouter import FakeOpenRouter, Recorded, VideoPlan, user_text
from tests.support.observe import metric
from tests.support.processes import Service, System

N_JOBS = 20
FAULT_ENV = {
    "RENDER_FPS": "10",
    "LEASE_SECONDS": "6",
    "RECONCILE_INTERVAL_SECONDS": "1",
    "RECONCILE_STALE_SECONDS": "8",
    "MAX_ATTEMPTS": "8",
    # Every watcher of a scenario connects from the test's address (20 by default).
    "MAX_CONNECTIONS_PER_IP": "100",
}
ACTIVE = ("queued", "prompting", "prompt_ready", "generating", "storing")
CHAT = "POST /chat/completions"
CREATE = "POST /videos"
POLL = "GET /videos/{id}"
# A couple of polls (one a second, fake.env()) and the clip is made.
QUICK = VideoPlan(polls=("pending", "in_progress"))
# The objects a completed job has in storage, under videos/{job_id}/.
CLIP_OBJECTS = {"video.mp4", "poster.jpg"}
# Every scenario's figures, moved onto its test report (conftest.py) and shown at the end
# of the run under this name (the root conftest.py's pytest_terminal_summary).
REPORTED: list["Figures"] = []
FIGURES = "fault_figures"


def openrouter_env(fake: FakeOpenRouter) -> dict[str, str]:
    """Both providers on the fake OpenRouter, polling every second."""
    return {**fake.env(), "PROMPT_PROVIDER": "openrouter", "VIDEO_PROVIDER": "openrouter"}


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
    # What the provider and storage saw: chat calls, accepted (paid) POST /videos, clips;
    # and chat answers lost before they could be saved (the prompt worker killed while
    # the call was in flight, or the answer arriving while the database was down), each
    # of which is rightly asked for again.
    chat_calls: int = 0
    paid_jobs: int = 0
    clips: int = 0
    chat_answers_lost: int = 0
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # the reasons of failed jobs

    def line(self) -> str:
        return (
            f"[faults] {self.scenario}: jobs={self.jobs} faults={self.faults} "
            f"completed={self.completed} failed_with_reason={self.failed_with_reason} "
            f"lost={self.lost} duplicated={self.duplicated} "
            f"recovery={self.recovery_seconds:.1f}s | chat_calls={self.chat_calls} "
            f"(answers_lost={self.chat_answers_lost}) paid_jobs={self.paid_jobs} "
            f"clips={self.clips}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Run:
    """Submitted jobs, their titles (unique: how the provider's requests are told apart)
    and their WebSocket watchers."""

    accepted: list[dict[str, Any]]
    watchers: list[asyncio.Task[user.Followed]]
    titles: dict[str, str] = field(default_factory=dict)  # job id -> title

    @property
    def ids(self) -> list[str]:
        return [a["id"] for a in self.accepted]

    def extend(self, other: "Run") -> None:
        self.accepted += other.accepted
        self.watchers += other.watchers
        self.titles.update(other.titles)


async def submit_and_watch(
    system: System, api: httpx.AsyncClient, n: int = N_JOBS, *, first: int = 0
) -> Run:
    accepted = []
    titles = {}
    for i in range(first, first + n):
        title = f"Fault item {uuid.uuid4().hex[:12]}"
        job = await user.submitted(
            api,
            user.product_photo(seed=1000 + i, size=(400, 300)),
            aspect_ratio="1:1",
            title=title,
        )
        accepted.append(job)
        titles[job["id"]] = title
    watchers = [
        asyncio.create_task(
            user.follow(system.ws_url, a["id"], a["token"], after_seq=a["job"]["seq"], within=240)
        )
        for a in accepted
    ]
    return Run(accepted, watchers, titles)


def restart(system: System, name: str, *, sig: int = signal.SIGKILL) -> float:
    """Kill a service's process with `sig` and start a new one (a fresh port and log).
    Returns when the signal was sent (time.monotonic())."""
    old = system[name]
    sent_at = time.monotonic()
    old.process.send_signal(sig)
    old.process.wait(30)
    system.services[f"{name}-killed-{old.port}"] = old  # its log stays in the report
    system.services[name] = processes._start(old.spec, free_port(), system.env, old.log_path.parent)
    return sent_at


async def watchers_subscribed(system: System, n: int = N_JOBS) -> None:
    """Until the notifier has sent every watcher its snapshot (a subscription reads the
    job, so a fault that takes the database away must wait for them)."""

    async def subscribed() -> bool:
        snapshots = await metric(
            system.notifier,
            "pv_ws_messages_pushed_total",
            lambda labels: labels["type"] == "snapshot",
        )
        return snapshots >= n

    await user.wait_for(subscribed, within=60, what="every watcher subscribed")


async def count_in(db: AsyncDatabase, statuses: tuple[str, ...], ids: list[str]) -> int:
    return int(await db["jobs"].count_documents({"_id": {"$in": ids}, "status": {"$in": statuses}}))


async def wait_for_status(db: AsyncDatabase, ids: list[str], status: str, within: float) -> None:
    async def some() -> bool:
        return await count_in(db, (status,), ids) > 0

    await user.wait_for(some, within=within, what=f"a job in {status}", interval=0.1)


async def leased(
    db: AsyncDatabase, query: dict[str, Any], *, not_by: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Jobs matching `query` with a live lease held by none of `not_by`."""
    found = db["jobs"].find({**query, "lease.until": {"$gt": datetime.now(UTC)}})
    return [j async for j in found if j["lease"]["holder"] not in not_by]


# ----- the provider's jobs -----


def hold(fake: FakeOpenRouter) -> None:
    """New video jobs stay `in_progress` at the provider until released."""
    fake.video_plan = VideoPlan(polls=QUICK.polls, hold=True)


def release(fake: FakeOpenRouter, count: int | None = None) -> int:
    """Let up to `count` (None: all) held provider jobs finish, oldest first; with None,
    jobs made from now on finish by themselves. Returns how many were released."""
    if count is None:
        fake.video_plan = QUICK
    waiting = [j for j in fake.accepted() if j.finished is None and j.plan.hold]
    for job in waiting[:count]:
        fake.finish(job.id)
    return len(waiting[:count])


def chat_title(recorded: Recorded) -> str:
    """The user text of a chat request (it names the job's title)."""
    return user_text(recorded.json)


def naming(texts: list[str], title: str) -> int:
    return sum(1 for text in texts if title in text)


def clip_objects(storage_root: Path, job_id: str) -> tuple[dict[str, int], list[str]]:
    """The objects under videos/{job_id}/ (name -> size) and any temporary files a write
    left (`.tmp-*`: a write cut short by the fault, not an object)."""
    folder = storage_root / "videos" / job_id
    if not folder.is_dir():
        return {}, []
    objects, leftovers = {}, []
    for path in folder.rglob("*"):
        if path.is_file():
            name = str(path.relative_to(folder))
            if path.name.startswith(".tmp-"):
                leftovers.append(name)
            else:
                objects[name] = path.stat().st_size
    return objects, leftovers


# ----- the checks -----


async def check(
    scenario: str,
    run: Run,
    db: AsyncDatabase,
    fake: FakeOpenRouter,
    system: System,
    *,
    faults: int,
    last_fault_at: float,
    prompt_kills: Sequence[float] = (),
    outages: Sequence[tuple[float, float]] = (),
) -> Figures:
    """Wait for every watcher, then check every job; the figures of the scenario.

    Per job: final (completed, or failed with a reason); at most one accepted (paid)
    POST /videos, exactly one for a completed job; exactly one chat call, plus one for
    each answer lost before it could be saved: a `prompt_kills` moment (a SIGKILL of the
    prompt worker) at which the job's chat call was in flight, or a chat answer produced
    within one of the `outages` (start, end) of the database; for a completed job exactly
    `video.mp4` and `poster.jpg` in storage, the clip's size the job's `video.size`; no
    clip objects for a job that never reached `storing`; every WebSocket watcher saw
    contiguous `seq` up to the job's final state."""
    ids = run.ids
    figures = Figures(scenario, len(ids), faults)
    followed = await asyncio.gather(*run.watchers, return_exceptions=True)
    figures.recovery_seconds = max(0.0, time.monotonic() - last_fault_at)
    chats = fake.calls(CHAT)
    chat_texts = [chat_title(r) for r in chats]
    paid_prompts = [str(j.body.get("prompt", "")) for j in fake.accepted()]
    storage_root = Path(system.env["STORAGE_URL"].removeprefix("file://"))
    for accepted, seen in zip(run.accepted, followed, strict=True):
        job_id = accepted["id"]
        title = run.titles[job_id]
        job = await db["jobs"].find_one({"_id": job_id})
        if job is None or job["status"] in ACTIVE:
            figures.lost += 1
            figures.problems.append(f"{job_id}: {job and job['status']}")
            continue
        completed = job["status"] == "completed"
        if completed:
            figures.completed += 1
        elif job["status"] == "failed" and (job.get("error") or {}).get("message"):
            figures.failed_with_reason += 1
            error = job["error"]
            figures.failures.append(f"{job_id}: {error.get('code')}: {error['message']}")
        else:
            figures.problems.append(f"{job_id}: {job['status']} without a reason")

        # What the provider saw.
        job_chats = [r for r, t in zip(chats, chat_texts, strict=True) if title in t]
        chat_calls = len(job_chats)
        lost = sum(1 for moment in prompt_kills if any(r.in_flight(moment) for r in job_chats))
        lost += sum(
            1
            for r in job_chats
            if r.answered_at is not None
            and any(start <= r.answered_at <= end for start, end in outages)
        )
        paid = naming(paid_prompts, title)
        figures.chat_calls += chat_calls
        figures.chat_answers_lost += lost
        figures.paid_jobs += paid
        doubled = []
        if chat_calls > 1 + lost:
            doubled.append(f"{chat_calls} chat calls ({lost} answers lost)")
        if paid > 1:
            doubled.append(f"{paid} paid POST /videos")

        # What storage holds.
        objects, leftovers = clip_objects(storage_root, job_id)
        figures.clips += "video.mp4" in objects
        if set(objects) - CLIP_OBJECTS:
            doubled.append(f"objects {sorted(objects)}")
        if leftovers:
            print(f"[faults] {scenario}: {job_id}: write leftovers {leftovers}")
        if completed:
            if chat_calls < 1 or paid != 1:
                figures.problems.append(
                    f"{job_id}: completed with {chat_calls} chat calls and {paid} paid POST /videos"
                )
            if set(objects) != CLIP_OBJECTS:
                figures.problems.append(f"{job_id}: completed, storage holds {sorted(objects)}")
            elif objects["video.mp4"] != (job.get("video") or {}).get("size"):
                figures.problems.append(
                    f"{job_id}: stored clip {objects['video.mp4']} bytes, "
                    f"job says {(job.get('video') or {}).get('size')}"
                )
        elif objects and "storing" not in user.stages([h["status"] for h in job["history"]]):
            figures.problems.append(f"{job_id}: {job['status']} before storing, has {objects}")
        if doubled:
            figures.duplicated += 1
            figures.problems.append(f"{job_id}: doubled: {'; '.join(doubled)}")
        stages = user.stages([h["status"] for h in job["history"]])
        if len(stages) != len(set(stages)):
            figures.problems.append(f"{job_id}: a stage entered twice: {stages}")

        # What its watcher saw.
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


def assert_sound(figures: Figures) -> None:
    assert figures.lost == 0 and figures.duplicated == 0, figures.problems
    assert not figures.problems, figures.problems
    assert figures.completed + figures.failed_with_reason == figures.jobs


# ----- readiness during an outage -----


async def readiness_of(service: Service) -> int:
    """The status of the service's /readyz (a check may take a few seconds to give up)."""
    async with httpx.AsyncClient(timeout=15) as client:
        try:
            return (await client.get(f"{service.ops_url}/readyz")).status_code
        except httpx.HTTPError:
            return 0


async def all_not_ready(system: System, names: tuple[str, ...], within: float = 20) -> None:
    """Every named service answers /readyz with 503 (asked again until it does: a probe
    result may be cached for a moment)."""

    async def says_503(name: str) -> None:
        async def not_ready() -> bool:
            return await readiness_of(system[name]) == 503

        await user.wait_for(not_ready, within=within, what=f"{name} /readyz 503", interval=0.3)

    await asyncio.gather(*(says_503(name) for name in names))
