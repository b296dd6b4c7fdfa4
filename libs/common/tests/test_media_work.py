"""Media work runs off the event loop and its CPU is counted under its step."""

import threading
import time

import pytest
from prometheus_client import REGISTRY

from common.media_work import media_work


def counted(step: str) -> float:
    return REGISTRY.get_sample_value("pv_media_cpu_seconds_total", {"step": step}) or 0.0


def busy(seconds: float) -> tuple[float, int]:
    """Burns CPU for about `seconds`; the CPU it used and the thread it ran on."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(i * i for i in range(1000))
    return time.thread_time() - start, threading.get_ident()


async def test_the_cpu_of_the_work_is_counted_under_its_step() -> None:
    before, other = counted("overlays"), counted("fidelity")
    used, thread = await media_work("overlays", busy, 0.05)
    assert thread != threading.get_ident()  # not on the event loop's thread
    assert counted("overlays") - before == pytest.approx(used, rel=0.2)
    assert counted("fidelity") == other


async def test_work_that_fails_is_counted_too() -> None:
    def fails() -> None:
        busy(0.02)
        raise ValueError("unreadable frame")

    before = counted("photo")
    with pytest.raises(ValueError, match="unreadable frame"):
        await media_work("photo", fails)
    assert counted("photo") - before >= 0.02
