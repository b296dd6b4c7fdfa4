"""The built-in provider: ffmpeg films the product photo on a composed canvas in two shots
(a close detail, then the whole product filling the frame) joined by a cross-fade; the
finishing step adds captions, the end card and music. Offline, free and deterministic: the
same photo, prompt and brief give the same clip."""

import logging
from pathlib import Path

from common.brief import Brief
from common.errors import JobError
from common.media import frame_size
from common.media_work import media_work
from video.config import VideoSettings
from video.finishing import brief_for
from video.finishing.text import hex_rgb
from video.finishing.timeline import plan as plan_timeline
from video.providers.base import CheckpointCallback, ProgressCallback, VideoRequest
from video.render import RenderError
from video.render.canvas import Still, compose, open_photo
from video.render.clip import ClipPlan, Shot, build_command, shot_frames
from video.render.ffmpeg import FfmpegError, FfmpegTimeout, run_ffmpeg
from video.render.motion import choose_move, detail_motion, hero_motion

log = logging.getLogger(__name__)

# The canvas is this many times the frame size: zoompan moves in whole canvas pixels,
# so a finer canvas makes the move smooth (and the detail shot, at about 2x, sharp).
CANVAS_SCALE = 2
# Share of the progress spent before ffmpeg starts (composing the canvas).
PREPARED = 0.1


def focus_of(still: Still, canvas: tuple[int, int], request: VideoRequest) -> tuple[float, float]:
    """Where the detail shot looks, in canvas fractions: the brief's focus for it (shares
    of the photo's product), else the upper part of the product, where labels usually are."""
    product = still.product
    fx, fy = 0.5, 0.38
    for shot in request.brief.shots if request.brief else []:
        if shot.kind == "detail" and shot.focus is not None:
            fx, fy = shot.focus
    return (
        (product.x + product.w * fx) / canvas[0],
        (product.y + product.h * fy) / canvas[1],
    )


class LocalProvider:
    name = "local"

    def __init__(self, settings: VideoSettings) -> None:
        self.fps = settings.render_fps
        self.timeout = settings.render_timeout_seconds

    async def generate(
        self,
        request: VideoRequest,
        workdir: Path,
        progress: ProgressCallback,
        checkpoint: CheckpointCallback | None = None,
    ) -> Path:
        try:
            frame = frame_size(request.aspect_ratio)
        except ValueError as e:
            raise JobError("invalid_options", str(e)) from e
        frames = max(round(request.duration * self.fps), 1)
        canvas_size = (frame[0] * CANVAS_SCALE, frame[1] * CANVAS_SCALE)
        # BMP: written and read by ffmpeg in a fraction of a PNG's time.
        canvas = workdir / "canvas.bmp"

        def prepare() -> tuple[Still, Brief]:
            photo = open_photo(request.image, canvas_size)
            brief = brief_for(request, photo)
            still = compose(photo, canvas_size, [hex_rgb(c) for c in brief.palette])
            still.image.save(canvas, format="BMP")
            return still, brief

        try:
            still, brief = await media_work("photo", prepare)
        except RenderError as e:
            raise JobError("render_failed", str(e)) from e
        await progress(PREPARED)
        timeline = plan_timeline(request.duration, brief)
        hero = hero_motion(choose_move(request.prompt))
        # The brief's shot plan: a detail shot first unless it leaves it out.
        wants_detail = any(shot.kind == "detail" for shot in brief.shots)
        if wants_detail and frames > 2 * round(0.4 * self.fps) + 2:
            detail_n, hero_n = shot_frames(frames, self.fps, timeline.detail_until)
            shots: tuple[Shot, ...] = (
                Shot(detail_motion(focus_of(still, canvas_size, request)), detail_n),
                Shot(hero, hero_n),
            )
        else:
            shots = (Shot(hero, frames),)
        log.info(
            "rendering %dx%d, %d frames, %d shots, hero %s", *frame, frames, len(shots), hero.move
        )
        out = workdir / "clip.mp4"
        plan = ClipPlan(canvas, frame, self.fps, frames, shots, out)

        async def on_frame(done: int) -> None:
            await progress(PREPARED + (1 - PREPARED) * min(done / frames, 1.0))

        try:
            await run_ffmpeg(build_command(plan), time_limit=self.timeout, on_frame=on_frame)
        except FfmpegTimeout as e:
            # A render this small only runs that long on a starved machine: try again later.
            raise JobError("render_timeout", f"The clip took too long: {e}", retryable=True) from e
        except FfmpegError as e:
            raise JobError("render_failed", f"The clip could not be rendered: {e}") from e
        return out
