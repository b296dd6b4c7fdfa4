"""JSON logs with the job id on every line that concerns a job."""

import contextvars
import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from faststream.message import StreamMessage
from starlette.requests import Request

job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)
# What FastStream passes with its lines ("Received", "Processed"): which message, where.
BROKER_CONTEXT = ("exchange", "queue", "message_id")
# FastStream's consumer log lines go through the root handler (one format) under this name.
BROKER_LOGGER = logging.getLogger("faststream.access.rabbit")


def message_job_id() -> str | None:
    """The `job_id` in the body of the message FastStream is handling in this context.

    FastStream 0.7 keeps that message in a context variable named "message" of the
    broker's (or its app's) ContextRepo, which a logger has no reference to; so it is
    looked up among the variables of the current context (a handful)."""
    for var, value in contextvars.copy_context().items():
        if var.name == "message" and isinstance(value, StreamMessage):
            try:
                body = json.loads(value.body)
            except (TypeError, ValueError):
                return None
            job_id = body.get("job_id") if isinstance(body, dict) else None
            return job_id if isinstance(job_id, str) and job_id else None
    return None


class MessageJobId(logging.Filter):
    """Names the job on FastStream's own lines about a message ("Received", "Processed",
    a handler's exception): they are written outside the handler, before `job_id_var` is
    set and after it is reset, with only the message id. Every event carries `job_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None and job_id_var.get() is None:
            job_id = message_job_id()
            if job_id:
                record.job_id = job_id
        return True


BROKER_LOGGER.addFilter(MessageJobId())


async def bind_job_id(request: Request) -> None:
    """A FastAPI dependency: the request's `job_id` path parameter goes on every log line
    of the request, its access log line included. Async, so it runs in the request's own
    task and the context variable stays set for the rest of the request."""
    job_id = request.path_params.get("job_id")
    if job_id:
        job_id_var.set(str(job_id))


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None) or job_id_var.get()
        if job_id:
            entry["job_id"] = job_id
        for key in BROKER_CONTEXT:
            if value := getattr(record, key, None):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job_id = getattr(record, "job_id", None) or job_id_var.get()
        fields = [f"job_id={job_id}"] if job_id else []
        fields += [f"{k}={v}" for k in BROKER_CONTEXT[1:] if (v := getattr(record, k, None))]
        return " ".join([line, *fields])


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs and library chatter share the same handler and format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "faststream.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
