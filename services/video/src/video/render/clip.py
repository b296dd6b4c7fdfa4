"""The ffmpeg command of a clip: the camera move over the canvas (zoompan on a canvas
several times the frame size, so the move does not jitter), the title card faded in and
out over it, encoded as H.264 that every browser plays from the first byte."""

from dataclasses import dataclass
from pathlib import Path

from video.render.motion import Motion
from video.render.titlecard import TitleCard

CARD_IN = 0.2  # the card starts fading in here (seconds)
CARD_FADE = 0.5
CARD_OUT_LATEST = 2.4  # it starts fading out here at the latest…
CARD_OUT_SHARE = 0.6  # …or at this share of a short clip


@dataclass(frozen=True)
class CardTiming:
    fade_in: float
    fade_out: float
    fade: float = CARD_FADE

    @property
    def gone(self) -> float:
        return self.fade_out + self.fade


def card_timing(duration: float) -> CardTiming:
    fade_out = max(min(CARD_OUT_LATEST, duration * CARD_OUT_SHARE), CARD_IN + CARD_FADE)
    return CardTiming(CARD_IN, fade_out)


@dataclass(frozen=True)
class ClipPlan:
    canvas: Path  # the composed still, `canvas_scale` times the frame size
    frame: tuple[int, int]
    fps: int
    frames: int
    motion: Motion
    card: TitleCard | None
    out: Path
    crf: int = 20
    preset: str = "veryfast"


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def zoompan(plan: ClipPlan) -> str:
    """The zoompan filter: `on` is the output frame number, eased from first to last."""
    start, end = plan.motion.start, plan.motion.end
    last = max(plan.frames - 1, 1)
    p = f"(on/{last})"
    e = f"({p}*{p}*(3-2*{p}))"

    def between(a: float, b: float) -> str:
        return _num(a) if a == b else f"({_num(a)}+{_num(b - a)}*{e})"

    zoom = between(start.zoom, end.zoom)
    x = f"{between(start.cx, end.cx)}*iw-iw/zoom/2"
    y = f"{between(start.cy, end.cy)}*ih-ih/zoom/2"
    width, height = plan.frame
    return f"zoompan=z='{zoom}':x='{x}':y='{y}':d={plan.frames}:s={width}x{height}:fps={plan.fps}"


def build_command(plan: ClipPlan) -> list[str]:
    """ffmpeg arguments (after the executable and its logging options)."""
    duration = plan.frames / plan.fps
    inputs = ["-i", str(plan.canvas)]
    # RGB to BT.709 limited-range YUV once, as the output is tagged.
    graph = [
        "[0:v]scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
        f"{zoompan(plan)},setsar=1[cam]"
    ]
    last = "cam"
    if plan.card is not None:
        timing = card_timing(duration)
        inputs += ["-loop", "1", "-framerate", str(plan.fps), "-i", str(plan.card.path)]
        graph.append(
            f"[1:v]format=rgba,"
            f"fade=t=in:st={_num(timing.fade_in)}:d={_num(timing.fade)}:alpha=1,"
            f"fade=t=out:st={_num(timing.fade_out)}:d={_num(timing.fade)}:alpha=1[card]"
        )
        graph.append(
            f"[cam][card]overlay=x=0:y={plan.card.y}:format=yuv420:"
            f"enable='between(t,{_num(timing.fade_in)},{_num(timing.gone)})'[titled]"
        )
        last = "titled"
    graph.append(f"[{last}]format=yuv420p[v]")
    return [
        *inputs,
        "-filter_complex",
        ";".join(graph),
        "-map",
        "[v]",
        "-frames:v",
        str(plan.frames),
        "-c:v",
        "libx264",
        "-preset",
        plan.preset,
        "-crf",
        str(plan.crf),
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(plan.fps * 2),
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "tv",
        "-movflags",
        "+faststart",
        "-an",
        "-y",
        str(plan.out),
    ]
