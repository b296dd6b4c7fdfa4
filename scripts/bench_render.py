"""`make bench-render`: seconds per finished ad, on this machine.

- a finished 5 s 720p (16:9) ad made by the local renderer (canvas, two shots, captions,
  end card, music bed, loudness), against the bare ffmpeg commands of the same filter
  graphs run on their own (what the Python around them costs);
- the finishing step alone over a given clip, against its bare ffmpeg command;
- how one video worker's throughput scales with `PREFETCH` (and `MEDIA_CONCURRENCY`):
  the real services, `--jobs` of those ads submitted at once (`scripts/render_scaling.py`).

Each is the median of `--runs` runs, in wall-clock seconds and in CPU seconds (ours: this
process and its ffmpeg children; bare: the ffmpeg processes). CPU time holds steady on a
busy machine where wall time does not, so the ratio is taken from it. Results go to their
own section of docs/benchmarks.md (`scripts/bench.py` keeps it) and to stdout. Target: ours
≤ 1.1 × the bare command.
"""

import argparse
import asyncio
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.brief import Brief  # noqa: E402
from common.media import ffmpeg_exe, probe_video  # noqa: E402
from scripts import render_scaling  # noqa: E402
from services.video.tests.images import mug  # noqa: E402
from video import finishing  # noqa: E402
from video.config import VideoSettings  # noqa: E402
from video.providers import local  # noqa: E402
from video.providers.base import VideoRequest  # noqa: E402
from video.render.ffmpeg import run_ffmpeg  # noqa: E402

REPORT = ROOT / "docs" / "benchmarks.md"
KEEP = "\n<!-- own sections -->"  # what scripts/bench.py keeps when it rewrites the file
HEADING = "## Finished ads (`make bench-render`)"
TARGET = 1.1

BRIEF = Brief(
    hook="Coffee tastes better in stoneware",
    benefits=["Hand-thrown in Portugal", "Holds 350 ml", "Dishwasher safe"],
    cta="Shop now",
    price="€24",
    palette=["#19235a", "#eeece6", "#c0392b"],
    mood="upbeat",
)


class Recorder:
    """run_ffmpeg that remembers the arguments it ran."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    async def __call__(self, args: Sequence[str], **kwargs: Any) -> None:
        self.commands.append(list(args))
        await run_ffmpeg(args, **kwargs)


def cpu(children_only: bool = False) -> float:
    """CPU seconds used so far by this process's finished children (and by itself)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = used.ru_utime + used.ru_stime
    if not children_only:
        own = resource.getrusage(resource.RUSAGE_SELF)
        total += own.ru_utime + own.ru_stime
    return total


def bare(*commands: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds the ffmpeg commands take on their own."""
    started, started_cpu = time.perf_counter(), cpu(children_only=True)
    for args in commands:
        subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args], check=True
        )
    return time.perf_counter() - started, cpu(children_only=True) - started_cpu


async def one_run(work: Path) -> dict[str, float]:
    photo = work / "mug.jpg"
    photo.write_bytes(mug())
    request = VideoRequest(
        job_id="bench",
        image=photo,
        prompt="Slow zoom in on the mug.",
        title="Stoneware Mug",
        aspect_ratio="16:9",
        duration=5,
        seed=1,
        brief=BRIEF,
    )
    recorder = Recorder()
    local.run_ffmpeg = recorder  # type: ignore[assignment]
    finishing.run_ffmpeg = recorder  # type: ignore[assignment]
    settings = VideoSettings()

    async def ignore(fraction: float) -> None:
        pass

    started, started_cpu = time.perf_counter(), cpu()
    clip = await local.LocalProvider(settings).generate(request, work, ignore)
    rendered, rendered_cpu = time.perf_counter(), cpu()
    info = probe_video(clip)
    await finishing.finish(
        clip, request, work, duration=info.duration, fps=info.fps, time_limit=600
    )
    done, done_cpu = time.perf_counter(), cpu()
    render_cmd, finish_cmd = recorder.commands[-2], recorder.commands[-1]
    ad_bare, ad_bare_cpu = bare(render_cmd, finish_cmd)
    finish_bare, finish_bare_cpu = bare(finish_cmd)
    return {
        "ad": done - started,
        "ad_bare": ad_bare,
        "ad_cpu": done_cpu - started_cpu,
        "ad_bare_cpu": ad_bare_cpu,
        "finish": done - rendered,
        "finish_bare": finish_bare,
        "finish_cpu": done_cpu - rendered_cpu,
        "finish_bare_cpu": finish_bare_cpu,
    }


def report(results: list[dict[str, float]], runs: int, rows: list[render_scaling.Row]) -> str:
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    ad = statistics.median(r["ad_cpu"] / r["ad_bare_cpu"] for r in results)
    finish = statistics.median(r["finish_cpu"] / r["finish_bare_cpu"] for r in results)
    load = os.getloadavg()[0]
    lines = [
        HEADING,
        "",
        f"Made by `scripts/bench_render.py` (median of {runs} runs, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load:.1f}).",
        '"Bare" is the same ffmpeg filter graphs run on their own: the difference is our Python',
        "(canvas, captions, end card, music synthesis, loudness measurements). The ratio is of",
        "CPU seconds, which a busy machine does not distort the way it does wall-clock time.",
        "",
        "| what | ours: wall, CPU | bare ffmpeg: wall, CPU | ratio (CPU) | target |",
        "|---|---|---|---|---|",
        f"| finished 5 s 720p (16:9) ad, local renderer | {med['ad']:.2f} s, "
        f"{med['ad_cpu']:.2f} s | {med['ad_bare']:.2f} s, {med['ad_bare_cpu']:.2f} s | "
        f"{ad:.2f}× | ≤ {TARGET}× |",
        f"| finishing step alone over that clip | {med['finish']:.2f} s, "
        f"{med['finish_cpu']:.2f} s | {med['finish_bare']:.2f} s, "
        f"{med['finish_bare_cpu']:.2f} s | {finish:.2f}× | ≤ {TARGET}× |",
        "",
        *(scaling_report(rows) if rows else []),
    ]
    return "\n".join(lines)


def scaling_report(rows: list[render_scaling.Row]) -> list[str]:
    first = rows[0]
    lines = [
        f"### Scaling with `PREFETCH` ({os.cpu_count()} cores)",
        "",
        f"One video worker on the local renderer; {first.jobs} finished 5 s 720p (16:9) ads",
        "submitted at once through the gateway, for each setting in turn (the gateway, the",
        "notifier and the prompt worker stay up; a new video worker each time). Jobs per",
        "minute are over the first `generating` to the last `completed`; a render is one job's",
        "`generating` → `completed` (waiting for a media slot included); CPU is the worker's",
        "own and its ffmpeg children's. The load average (1 min) is the machine's, before →",
        "after: wall-clock figures depend on it, CPU seconds hardly.",
        "",
        "| `PREFETCH` | `MEDIA_CONCURRENCY` | jobs/min | vs the first row | render (median) "
        "| CPU per job | load average |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.setting.prefetch} | {row.setting.media_concurrency} | "
            f"{row.per_minute:.1f} ({row.jobs} in {row.span:.0f} s) | "
            f"{row.per_minute / first.per_minute:.2f}× | {row.render:.1f} s | "
            f"{row.cpu_per_job:.2f} s | {row.load[0]:.1f} → {row.load[1]:.1f} |"
        )
    lines += ["", *SCALING_NOTES, ""]
    return lines


# What the settings mean (video/config.py, video/render/ffmpeg.py), for reading the table.
SCALING_NOTES = [
    "`PREFETCH` is how many deliveries (jobs) the worker holds at once; `MEDIA_CONCURRENCY`",
    "is how many ffmpeg processes it runs at once, whatever the prefetch (`limit_media`, a",
    "semaphore around every `run_ffmpeg`: the render, the finishing pass, the poster).",
    "Defaults with the local renderer: `PREFETCH=2`, `MEDIA_CONCURRENCY=2` (OpenRouter:",
    "`PREFETCH=64`, the same media limit). So above `MEDIA_CONCURRENCY` a higher prefetch",
    "runs no more ffmpeg at once: it only overlaps a job's Python steps (canvas, captions,",
    "end card, music bed, probes, uploads) with other jobs' ffmpeg, and the jobs it holds",
    "wait for a media slot inside their render time. ffmpeg (x264) is multi-threaded, so",
    "one render alone already spreads over both cores.",
]


def write(section: str) -> None:
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    head, _, kept = text.partition(KEEP)
    # Other sections after the marker stay; ours is replaced.
    parts = [p for p in kept.split("\n## ") if p.strip()]
    others = [p if p.startswith("## ") else "## " + p for p in parts]
    others = [p for p in others if not p.startswith(HEADING)]
    REPORT.write_text(head.rstrip("\n") + "\n" + KEEP + "\n\n" + "\n".join([section, *others]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    parser.add_argument(
        "--jobs", type=int, default=8, help="ads submitted at once per setting (default 8)"
    )
    parser.add_argument(
        "--settings",
        default="1 2 4 4/4",
        help='PREFETCH[/MEDIA_CONCURRENCY] to measure (default "1 2 4 4/4"; media 2 unless '
        'given); "" skips the scaling measurement',
    )
    parser.add_argument("--no-write", action="store_true", help=f"do not write {REPORT.name}")
    args = parser.parse_args()
    settings = [
        render_scaling.Setting(int(p), int(m or 2))
        for p, _, m in (s.partition("/") for s in args.settings.split())
    ]
    results = []
    for n in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="pv-bench-render-") as tmp:
            results.append(asyncio.run(one_run(Path(tmp))))
            print(f"run {n + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in results[-1].items()))
    rows = render_scaling.measure(settings, args.jobs) if settings else []
    section = report(results, args.runs, rows)
    print(section)
    if not args.no_write:
        write(section)
        print(f"bench-render: written to {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
