"""Running ffmpeg: asynchronously, with a time limit, its progress reported by frame,
and its own error message kept for the job's error."""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from common.media import ffmpeg_exe

log = logging.getLogger(__name__)

# ffmpeg's last lines of complaint are the useful ones.
STDERR_LINES = 12


class FfmpegError(Exception):
    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.stderr = stderr


class FfmpegTimeout(FfmpegError):
    pass


async def _read_progress(
    stream: asyncio.StreamReader, on_frame: Callable[[int], Awaitable[None]] | None
) -> None:
    # `-progress pipe:1` writes key=value lines; `frame=N` counts the frames written.
    async for raw in stream:
        key, _, value = raw.decode(errors="replace").strip().partition("=")
        if key == "frame" and value.isdigit() and on_frame is not None:
            await on_frame(int(value))


async def _read_tail(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    async for raw in stream:
        if line := raw.decode(errors="replace").strip():
            tail.append(line)


# ffmpeg processes at once in this process (`limit_media`; MEDIA_CONCURRENCY), and the
# semaphore that holds them, per event loop (tests run one loop after another).
_media = {"concurrency": 2}
_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def limit_media(concurrency: int) -> None:
    """At most `concurrency` ffmpeg processes at once, whatever the prefetch: a worker that
    mostly waits on a provider takes many messages, but its clips are re-encoded a few at
    a time."""
    _media["concurrency"] = concurrency
    _slots.clear()


def _media_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots.clear()  # a loop of the past (a test's) is done with
        _slots[loop] = asyncio.Semaphore(_media["concurrency"])
    return _slots[loop]


async def run_ffmpeg(
    args: Sequence[str],
    *,
    time_limit: float,
    on_frame: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    """Run ffmpeg with `args` (once a media slot is free); raise FfmpegError with its
    message when it fails, and FfmpegTimeout (after killing it) when it runs longer than
    `time_limit` seconds."""
    async with _media_slots():
        await _run_ffmpeg(args, time_limit=time_limit, on_frame=on_frame)


async def _run_ffmpeg(
    args: Sequence[str],
    *,
    time_limit: float,
    on_frame: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        *args,
    ]
    log.debug("ffmpeg %s", " ".join(command[1:]))
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    tail: deque[str] = deque(maxlen=STDERR_LINES)
    try:
        async with asyncio.timeout(time_limit):
            await asyncio.gather(
                _read_progress(process.stdout, on_frame),
                _read_tail(process.stderr, tail),
                process.wait(),
            )
    except TimeoutError as e:
        raise FfmpegTimeout(
            f"ffmpeg did not finish within {time_limit:.0f}s", "\n".join(tail)
        ) from e
    finally:
        # Cancelled, timed out or a failing progress callback: never leave ffmpeg running.
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        stderr = "\n".join(tail)
        reason = tail[-1] if tail else f"exit status {process.returncode}"
        raise FfmpegError(f"ffmpeg failed: {reason}", stderr)
