"""Finishing: the motion clip (from any provider) becomes a postable ad, composed by one
ffmpeg command: captions for the hook and the benefits, an end card, a music bed (or the
clip's own sound, or silence) at -14 LUFS, H.264 + AAC with `+faststart`.

One module per concern: `timeline` (when), `text` (fonts and contrast), `captions`,
`endcard`, `music`, `loudness`, `compose` (the ffmpeg command). `finish` ties them.
"""

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from common.brief import DEFAULT_CTA, Brief, clip_words
from common.media_work import media_work
from common.presets import safe_area
from video.finishing.captions import Overlay, render_caption
from video.finishing.compose import AudioSource, Composition, build_command
from video.finishing.endcard import render_end_card
from video.finishing.loudness import Loudness, gain_db, measure
from video.finishing.music import write_bed
from video.finishing.timeline import Timeline, plan
from video.providers.base import VideoRequest
from video.render.canvas import open_photo
from video.render.ffmpeg import run_ffmpeg

log = logging.getLogger(__name__)

FALLBACK_HOOK = "New in store"


@dataclass(frozen=True)
class Finished:
    path: Path
    timeline: Timeline
    audio: dict[str, Any]

    def timeline_fields(self) -> dict[str, Any]:
        """What is kept on the job (internal, not public): when each text is on screen."""
        t = self.timeline
        return {
            "captions": [{"kind": c.kind, "start": c.start, "end": c.end} for c in t.captions],
            "end_card_at": t.end_card_at,
            "hero": list(t.hero),
        }

    @property
    def poster_at(self) -> float:
        """The middle of the hero shot: the product whole, a benefit on it."""
        start, end = self.timeline.hero
        return round((start + end) / 2, 3) if end > start else self.timeline.duration / 2


def palette_of(photo: Image.Image) -> list[str]:
    """Three colours of the photo, most common first (for a job without a brief); a
    cut-out's transparent part is no colour of it."""
    small = np.asarray(photo.convert("RGBA").resize((48, 48), Image.Resampling.BOX))
    opaque = small[small[..., 3] >= 128][:, :3]
    if not len(opaque):
        opaque = np.array([[32, 32, 32]], dtype=np.uint8)
    strip = Image.fromarray(opaque.reshape(1, -1, 3).astype(np.uint8))
    quantised = strip.quantize(colors=3, method=Image.Quantize.MEDIANCUT)
    palette: list[int] = list(quantised.getpalette() or [0, 0, 0, 255, 255, 255])
    counts: list[tuple[int, int]] = sorted(quantised.getcolors() or [], reverse=True)  # type: ignore[arg-type]
    colours = [tuple(palette[3 * i : 3 * i + 3]) for _, i in counts][:3]
    while len(colours) < 2:
        colours.append((32, 32, 32))
    return ["#{:02x}{:02x}{:02x}".format(*c) for c in colours]


def brief_for(request: VideoRequest, photo: Image.Image) -> Brief:
    """The job's brief with the owner's own CTA and price; a plain one (the title as the
    hook, no benefits: nothing invented) for jobs made before briefs existed."""
    brief = request.brief or Brief(
        hook=clip_words(request.title, 7) or FALLBACK_HOOK,
        benefits=[],
        palette=palette_of(photo),
    )
    updates: dict[str, Any] = {}
    if request.cta:
        updates["cta"] = request.cta
    if request.price and not brief.price:
        updates["price"] = request.price
    return brief.model_copy(update=updates) if updates else brief


def has_audio(clip: Path) -> bool:
    with av.open(str(clip)) as container:
        return bool(container.streams.audio)


def audio_info(measured: Loudness | None) -> dict[str, Any]:
    return {
        "codec": "aac",
        "sample_rate": 48_000,
        "channels": 2,
        "loudness_lufs": None if measured is None else measured.integrated,
        "true_peak_dbtp": None if measured is None else measured.true_peak,
    }


async def finish(
    clip: Path,
    request: VideoRequest,
    workdir: Path,
    *,
    duration: float,
    fps: float,
    time_limit: float,
) -> Finished:
    """The finished ad beside the clip in workdir."""
    frame_w, frame_h = await asyncio.to_thread(_frame_size, clip)
    frame = (frame_w, frame_h)
    photo = await media_work("photo", open_photo, request.image, frame)
    brief = brief_for(request, photo)
    safe = safe_area(request.aspect_ratio, request.preset)
    timeline = plan(duration, brief, captions=request.captions != "off")

    def draw() -> tuple[list[Overlay], Path]:
        overlays = [
            render_caption(c, frame, safe, brief.palette, workdir / f"caption-{i}.png")
            for i, c in enumerate(timeline.captions)
        ]
        card = render_end_card(
            photo,
            request.title or brief.hook,
            brief.cta or DEFAULT_CTA,
            brief.price,
            brief.palette,
            frame,
            safe,
            workdir / "end-card.bmp",
        )
        return overlays, card

    overlays, card = await media_work("overlays", draw)
    audio = await audio_source(clip, request, brief, duration, workdir, time_limit)
    out = workdir / "finished.mp4"
    composition = Composition(
        clip=clip,
        duration=duration,
        fps=fps,
        overlays=tuple(overlays),
        end_card=card,
        end_card_at=timeline.end_card_at,
        audio=audio,
        out=out,
    )
    await run_ffmpeg(build_command(composition), time_limit=time_limit)
    measured = None if audio.silent else await measure(out, time_limit=time_limit)
    log.info(
        "finished: %d captions, end card at %.2fs, audio %s",
        len(overlays),
        timeline.end_card_at,
        "silent" if measured is None else f"{measured.integrated} LUFS",
    )
    return Finished(out, timeline, audio_info(measured))


def _frame_size(clip: Path) -> tuple[int, int]:
    with av.open(str(clip)) as container:
        context = container.streams.video[0].codec_context
        return context.width, context.height


async def audio_source(
    clip: Path,
    request: VideoRequest,
    brief: Brief,
    duration: float,
    workdir: Path,
    time_limit: float,
) -> AudioSource:
    """The clip's own sound when its model made some, else the mood's bed; silence when
    music is off (a silent AAC track all the same, so every player behaves alike)."""
    if await asyncio.to_thread(has_audio, clip):
        measured = await measure(clip, time_limit=time_limit)
        if not measured.silent:
            return AudioSource(own=True, gain=gain_db(measured))
    if request.music == "off":
        return AudioSource(silent=True)
    bed = await media_work("music", write_bed, brief.mood, duration, workdir / "bed.wav")
    key = (brief.mood, duration)
    if key not in _BED_LOUDNESS:  # the same samples measure the same: once per process
        _BED_LOUDNESS[key] = await measure(bed, time_limit=time_limit)
    return AudioSource(path=bed, gain=gain_db(_BED_LOUDNESS[key]))


_BED_LOUDNESS: dict[tuple[str, float], Loudness] = {}
