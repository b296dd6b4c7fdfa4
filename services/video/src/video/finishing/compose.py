"""The one ffmpeg command that finishes an ad: the motion clip, the caption and end-card
overlays (still images, each read only while it is on screen and faded in and out), and the
audio (the bed or the clip's own sound at the target loudness, or silence), encoded as
H.264 High yuv420p + AAC-LC 48 kHz stereo with `+faststart`."""

from dataclasses import dataclass
from pathlib import Path

from video.finishing.captions import Overlay
from video.finishing.loudness import audio_filter
from video.finishing.timeline import FADE
from video.render.h264 import FRAMES, h264_args

END_CARD_FADE = 0.3
AUDIO_BITRATE = "160k"


@dataclass(frozen=True)
class AudioSource:
    """Where the ad's sound comes from: the clip's own audio (`path` None), a bed file, or
    silence (`silent`); `gain` in dB brings it to the target loudness."""

    path: Path | None = None
    own: bool = False
    silent: bool = False
    gain: float = 0.0


@dataclass(frozen=True)
class Composition:
    clip: Path
    duration: float
    fps: float
    overlays: tuple[Overlay, ...]
    end_card: Path | None
    end_card_at: float
    audio: AudioSource
    out: Path


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def build_command(c: Composition) -> list[str]:
    """ffmpeg arguments (after the executable and its logging options)."""
    fps = _num(c.fps)
    inputs = ["-i", str(c.clip)]
    if c.audio.silent:
        inputs += ["-f", "lavfi", "-t", _num(c.duration), "-i", "anullsrc=r=48000:cl=stereo"]
        audio_in = "1:a"
    elif c.audio.own:
        audio_in = "0:a:0"
    else:
        assert c.audio.path is not None
        inputs += ["-i", str(c.audio.path)]
        audio_in = "1:a"
    index = 1 if c.audio.own else 2  # the first overlay's input

    graph = ["[0:v]setsar=1,format=yuv420p[v0]"]
    last = "v0"
    layers: list[tuple[Path, float, float, int, int, bool]] = [
        (o.path, o.start, o.end, o.x, o.y, False) for o in c.overlays
    ]
    if c.end_card is not None:
        # Under the captions: a short clip's hook stays on over it.
        layers.insert(0, (c.end_card, c.end_card_at, c.duration, 0, 0, True))
    for n, (path, start, end, x, y, is_card) in enumerate(layers):
        length = max(end - start, 1 / c.fps)
        inputs += [
            "-itsoffset",
            _num(start),
            "-loop",
            "1",
            "-framerate",
            fps,
            "-t",
            _num(length),
            "-i",
            str(path),
        ]
        fade = END_CARD_FADE if is_card else FADE
        fades = f"fade=t=in:st={_num(start)}:d={_num(fade)}:alpha=1"
        if not is_card:
            fades += f",fade=t=out:st={_num(max(end - FADE, start))}:d={_num(FADE)}:alpha=1"
        graph.append(f"[{index}:v]format=rgba,{fades}[o{n}]")
        graph.append(f"[{last}][o{n}]overlay=x={x}:y={y}:eof_action=pass:format=yuv420[v{n + 1}]")
        last = f"v{n + 1}"
        index += 1
    graph.append(f"[{last}]{FRAMES}[v]")
    duration = _num(c.duration)
    if c.audio.silent:
        graph.append(f"[{audio_in}]aformat=sample_fmts=fltp:channel_layouts=stereo[a]")
    else:
        graph.append(
            f"[{audio_in}]atrim=0:{duration},asetpts=PTS-STARTPTS,apad,"
            f"{audio_filter(c.audio.gain)}[a]"
        )
    return [
        *inputs,
        "-filter_complex",
        ";".join(graph),
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-t",
        duration,
        *h264_args(c.fps),
        "-c:a",
        "aac",
        "-b:a",
        AUDIO_BITRATE,
        "-ar",
        "48000",
        "-ac",
        "2",
        "-movflags",
        "+faststart",
        "-y",
        str(c.out),
    ]
