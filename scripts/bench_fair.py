"""`make bench-fair`: fair scheduling on the local renderer (docs/scheduling.md).

Starts what the tests start (the local RabbitMQ, a SecantusDB daemon, a real SMTP sink, the
four services as processes with the offline providers, one video worker with its two
slots), then owner A queues a batch (200 short clips), and owner B submits single jobs one
after another (20), each once the one before is done. Measured: B's wait from `queued` to
`generating` (p50, p99, max) against one of A's renders (`generating` → `completed`,
median), and how many slots A's jobs held while A was alone. The run stops with A's batch
still queued (it is only the backdrop).

Writes its own section of docs/benchmarks.md (`scripts/bench.py` keeps it) and stdout.
"""

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import bench_env, fair_share, processes  # noqa: E402

REPORT = ROOT / "docs" / "benchmarks.md"
KEEP = "\n<!-- own sections -->"  # what scripts/bench.py keeps when it rewrites the file
HEADING = "## Fair scheduling (`make bench-fair`)"
POOL = 2  # the video worker's PREFETCH with the local renderer


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(system: processes.System, env: dict[str, str], batch: int, tries: int):  # type: ignore[no-untyped-def]
    client: AsyncMongoClient = AsyncMongoClient(env["MONGODB_URL"], tz_aware=True)
    try:
        db = client[env["MONGODB_DATABASE"]]
        return await fair_share.measure(
            system, db, batch=batch, tries=tries, pool=POOL, alone_seconds=10, progress=True
        )
    finally:
        await client.close()


def report(figures: fair_share.Figures, command: str, fair: bool) -> str:
    waits = figures.waits
    p99 = percentile(waits, 0.99)
    render = figures.render
    verdict = "within" if p99 <= 2 * render else "NOT within"
    mode = "" if fair else " (`FAIR_SHARE_ENABLED=false`: first come, first served)"
    lines = [
        HEADING,
        "",
        f"Command: `{command}`{mode}  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        "",
        "The four services on the local renderer (one video worker, PREFETCH=2: two slots), "
        "3 s 1:1 clips without finishing; owner A's batch queued first, then owner B's "
        "single jobs one after another (docs/scheduling.md).",
        "",
        "| what | result | target |",
        "|---|---|---|",
        f"| B's wait, `queued` → `generating` ({len(waits)} tries behind A's batch of "
        f"{figures.batch}) | p50 {statistics.median(waits):.1f} s, p99 {p99:.1f} s, "
        f"max {max(waits):.1f} s: {verdict} two renders | p99 ≤ 2 renders "
        f"({2 * render:.1f} s) |",
        f"| one of A's renders, `generating` → `completed` ({len(figures.renders)} jobs) | "
        f"median {render:.1f} s, p90 {percentile(figures.renders, 0.9):.1f} s | — |",
        f"| A alone: samples with every slot busy (every {fair_share.SAMPLE_EVERY} s) | "
        f"{figures.busy_share:.0%} of {len(figures.busy_samples)} "
        f"(slots held: min {min(figures.busy_samples)}, max {max(figures.busy_samples)}) | "
        "the whole pool |",
        f"| A's jobs still queued when B's last job started | {figures.a_waiting_at_end} | > 0 |",
        f"| jobs that entered `generating` twice | {len(figures.rendered_twice)} | 0 |",
        "",
    ]
    return "\n".join(lines)


def write(section: str) -> None:
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    head, _, kept = text.partition(KEEP)
    # Other sections after the marker stay; ours is replaced.
    parts = [p for p in kept.split("\n## ") if p.strip()]
    others = [p if p.startswith("## ") else "## " + p for p in parts]
    others = [p for p in others if not p.startswith(HEADING)]
    REPORT.write_text(head.rstrip("\n") + "\n" + KEEP + "\n\n" + "\n".join([section, *others]))


def main() -> int:
    processes.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=200, help="A's batch (default 200)")
    parser.add_argument("--tries", type=int, default=20, help="B's jobs (default 20)")
    parser.add_argument(
        "--fifo", action="store_true", help="FAIR_SHARE_ENABLED=false: the baseline"
    )
    parser.add_argument("--no-write", action="store_true", help=f"do not write {REPORT.name}")
    args = parser.parse_args()
    changed = [f"--batch {args.batch}"] * (args.batch != 200)
    changed += [f"--tries {args.tries}"] * (args.tries != 20) + ["--fifo"] * args.fifo
    command = "make bench-fair" + (f' BENCH_ARGS="{" ".join(changed)}"' if changed else "")

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pv-bench-fair-") as tmp:
        work = Path(tmp)
        env = {
            **bench_env.offline_env(stack, work, "fair"),
            "FAIR_SHARE_ENABLED": "false" if args.fifo else "true",
        }
        with processes.running(env, work / "logs") as system:
            print(f"bench-fair: services up; A queues {args.batch}, B tries {args.tries}")
            try:
                figures = asyncio.run(run(system, env, args.batch, args.tries))
            except BaseException:
                print(system.logs()[-5000:], file=sys.stderr)
                raise
    section = report(figures, command, fair=not args.fifo)
    print(section)
    if not args.no_write:
        write(section)
        print(f"bench-fair: written to {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
