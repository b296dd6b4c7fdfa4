"""The prompt worker: `uvicorn prompt.main:app --port 8002` (health and metrics on that port)."""

from common.worker import WorkerContext
from prompt.config import PromptSettings
from prompt.handlers import register

settings = PromptSettings()
ctx = WorkerContext.create(settings)
register(ctx, settings)
app = ctx.app()
