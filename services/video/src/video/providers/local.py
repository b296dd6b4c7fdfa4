"""The built-in provider: ffmpeg moves a camera over the still photo and adds the title
card. Offline, free and deterministic: the same photo, prompt and title give the same clip."""

import asyncio
import logging
from pathlib import Path

from common.errors import JobError
from common.media import frame_size
from video.config import VideoSettings
from video.providers.base import CheckpointCallback, ProgressCallback, VideoRequest
from video.render import RenderError
from video.render.canvas import compose_canvas
from video.render.clip import ClipPlan, build_command
from video.render.ffmpeg import FfmpegError, FfmpegTimeout, run_ffmpeg
from video.render.motion import choose_move, motion_for
from video.render.titlecard import render_title_card

log = logging.getLogger(__name__)

# The canvas is this many times the frame size: zoompan moves in whole canvas pixels,
# so a finer canvas makes the move smooth.
CANVAS_SCALE = 3
# Share of the progress spent before ffmpeg starts (composing the canvas and card).
PREPARED = 0.1


class LocalProvider:
    name = "local"

    def __init__(self, settings: VideoSettings) -> None:
        self.fps = settings.render_fps
        self.timeout = settings.render_timeout_seconds
        self.font_path = settings.title_font_path

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
        motion = motion_for(choose_move(request.prompt))
        canvas_size = (frame[0] * CANVAS_SCALE, frame[1] * CANVAS_SCALE)
        canvas = workdir / "canvas.png"
        try:
            await asyncio.to_thread(
                compose_canvas, request.image, motion.product_area(), canvas_size, canvas
            )
        except RenderError as e:
            raise JobError("render_failed", str(e)) from e
        card = await asyncio.to_thread(
            render_title_card, request.title, frame, workdir / "title.png", self.font_path
        )
        await progress(PREPARED)
        log.info(
            "rendering %dx%d, %d frames, %s%s",
            *frame,
            frames,
            motion.move,
            ", with a title card" if card else "",
        )
        out = workdir / "clip.mp4"
        plan = ClipPlan(canvas, frame, self.fps, frames, motion, card, out)

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
