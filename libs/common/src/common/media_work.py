"""Media work in the service's own process (drawing captions and the end card, decoding
frames for the fidelity score, preparing a photo or a music bed): run on a worker thread,
off the event loop, with its CPU counted by step (`pv_media_cpu_seconds_total`), so a
job's media and its bookkeeping (events, database, HTTP) can be told apart on the
dashboard and in `make bench`. ffmpeg runs as child processes: its CPU is theirs."""

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from common.metrics import MEDIA_CPU

T = TypeVar("T")
# The steps, each a series from the start (a dashboard shows 0, not nothing).
STEPS = ("photo", "overlays", "music", "fidelity")


async def media_work(step: str, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` on a worker thread, its CPU time counted under `step` (in STEPS)."""

    def measured() -> T:
        start = time.thread_time()
        try:
            return work(*args)
        finally:
            MEDIA_CPU.labels(step=step).inc(time.thread_time() - start)

    return await asyncio.to_thread(measured)
