"""The ffmpeg command of the local clip: two shots over the composed canvas (zoompan on a
canvas several times the frame size, so the moves do not jitter), each eased from rest to
rest, joined by a cross-fade: a close detail of the product, then the whole product (the
hero shot). Encoded as H.264 that every browser plays from the first byte; the finishing
step adds the text, the end card and the sound."""

from dataclasses import dataclass
from pathlib import Path

from video.render.h264 import FRAMES, h264_args
from video.render.motion import Motion

CROSSFADE = 0.4  # seconds between the detail and the hero shot


@dataclass(frozen=True)
class Shot:
    motion: Motion
    frames: int


@dataclass(frozen=True)
class ClipPlan:
    canvas: Path  # the composed still, a multiple of the frame size
    frame: tuple[int, int]
    fps: int
    frames: int  # of the whole clip
    shots: tuple[Shot, ...]
    out: Path

    @property
    def fade_frames(self) -> int:
        return round(CROSSFADE * self.fps) if len(self.shots) > 1 else 0


def shot_frames(total: int, fps: int, detail_until: float) -> tuple[int, int]:
    """Frames of the detail and the hero shot: they overlap by the cross-fade and add up
    to the clip's length exactly."""
    fade = round(CROSSFADE * fps)
    detail = min(max(round(detail_until * fps) + fade // 2, fade + 1), total - 1)
    return detail, total - detail + fade


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def zoompan(motion: Motion, frames: int, frame: tuple[int, int], fps: int) -> str:
    """The zoompan filter: `on` is the output frame number, eased from first to last."""
    start, end = motion.start, motion.end
    last = max(frames - 1, 1)
    p = f"(on/{last})"
    e = f"({p}*{p}*(3-2*{p}))"

    def between(a: float, b: float) -> str:
        return _num(a) if a == b else f"({_num(a)}+{_num(b - a)}*{e})"

    zoom = between(start.zoom, end.zoom)
    x = f"{between(start.cx, end.cx)}*iw-iw/zoom/2"
    y = f"{between(start.cy, end.cy)}*ih-ih/zoom/2"
    width, height = frame
    return f"zoompan=z='{zoom}':x='{x}':y='{y}':d={frames}:s={width}x{height}:fps={fps}"


def build_command(plan: ClipPlan) -> list[str]:
    """ffmpeg arguments (after the executable and its logging options)."""
    n = len(plan.shots)
    # RGB to BT.709 limited-range YUV once, as the output is tagged.
    graph = [
        "[0:v]scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"
        + (f",split={n}" if n > 1 else "")
        + "".join(f"[c{i}]" for i in range(n))
    ]
    for i, shot in enumerate(plan.shots):
        graph.append(
            f"[c{i}]{zoompan(shot.motion, shot.frames, plan.frame, plan.fps)},setsar=1[s{i}]"
        )
    last = "s0"
    offset = 0
    for i in range(1, n):
        offset += plan.shots[i - 1].frames - plan.fade_frames
        graph.append(
            f"[{last}][s{i}]xfade=transition=fade:duration={_num(plan.fade_frames / plan.fps)}"
            f":offset={_num(offset / plan.fps)}[x{i}]"
        )
        last = f"x{i}"
    graph.append(f"[{last}]{FRAMES}[v]")
    return [
        "-i",
        str(plan.canvas),
        "-filter_complex",
        ";".join(graph),
        "-map",
        "[v]",
        "-frames:v",
        str(plan.frames),
        *h264_args(plan.fps),
        "-movflags",
        "+faststart",
        "-an",
        "-y",
        str(plan.out),
    ]
