"""Loudness (EBU R128, measured by ffmpeg's `ebur128`): what a file's audio measures, and the
gain that brings it to the target. The bed is measured first, the gain and a limiter go into
the one compose graph, and the finished file is measured again: the stored figures are the
output's own, not the plan's."""

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from common.media import ffmpeg_exe

TARGET_LUFS = -14.0
TRUE_PEAK_MAX = -1.0  # dBTP
# The limiter's sample ceiling, below the true-peak limit: AAC and inter-sample peaks add a
# little on top of it.
LIMIT_DB = -2.0
SILENCE_LUFS = -70.0  # ebur128's floor: nothing is playing

_I = re.compile(r"I:\s+(-?[\d.]+|-inf) LUFS")
_PEAK = re.compile(r"Peak:\s+(-?[\d.]+|-inf) dBFS")


class LoudnessError(Exception):
    pass


@dataclass(frozen=True)
class Loudness:
    integrated: float | None  # LUFS; None for silence
    true_peak: float | None  # dBTP; None for silence

    @property
    def silent(self) -> bool:
        return self.integrated is None


def _value(pattern: re.Pattern[str], text: str) -> float | None:
    found = pattern.findall(text)
    if not found or found[-1] == "-inf":
        return None
    return float(found[-1])


async def measure(path: Path, *, time_limit: float = 60) -> Loudness:
    """Integrated loudness and true peak of the file's first audio stream."""
    process = await asyncio.create_subprocess_exec(
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-i",
        str(path),
        "-map",
        "0:a:0",
        "-af",
        "ebur128=peak=true:framelog=quiet",
        "-f",
        "null",
        "-",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(time_limit):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = stderr.decode(errors="replace")
    if process.returncode != 0 or "Summary:" not in text:
        raise LoudnessError(f"ebur128 could not measure {path.name}: {text[-300:]}")
    summary = text[text.rindex("Summary:") :]
    integrated = _value(_I, summary)
    if integrated is None or integrated <= SILENCE_LUFS:
        return Loudness(None, None)
    return Loudness(integrated, _value(_PEAK, summary))


def gain_db(measured: Loudness, target: float = TARGET_LUFS) -> float:
    """What brings the measured audio to the target (0 for silence)."""
    if measured.integrated is None:
        return 0.0
    return target - measured.integrated


def audio_filter(gain: float) -> str:
    """The gain, then a limiter that only touches peaks above LIMIT_DB (its auto level off),
    resampled to 48 kHz stereo for AAC."""
    limit = 10 ** (LIMIT_DB / 20)
    return (
        f"volume={gain:.2f}dB,"
        f"alimiter=limit={limit:.4f}:level=disabled:attack=5:release=50,"
        "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo"
    )
