"""The video worker: `uvicorn video.main:app --port 8003` (health and metrics on that port)."""

from common.worker import WorkerContext
from video.config import VideoSettings
from video.handlers import register

settings = VideoSettings()
ctx = WorkerContext.create(settings)
register(ctx, settings)
app = ctx.app()
