"""The local renderer's parts: geometry, camera moves, the canvas, the title card, ffmpeg."""


class RenderError(Exception):
    """The clip cannot be made from this input (a permanent failure); says why."""
