"""Errors: the one JSON error shape of the API, and how job failures are classified.

`JobError` is what a provider or handler raises to say how a job should fail;
`ApiError` is what the HTTP services answer with. Both carry a stable `code`.

A failed job shows its owner the stable message of its code (`user_message`), never a
`JobError`'s own text: that is the detail for operators (a provider's answer, ffmpeg's
output, a storage endpoint, a file path) and goes to the log, with the job id.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class JobError(Exception):
    """A job-level failure. `retryable` ones are retried with delay, others fail the job.
    `message` is the detail for the log; the job's owner reads `user_message(code)`."""

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


_AI = "The AI service we use"
# What the owner of a failed job reads, per error code.
USER_MESSAGES: dict[str, str] = {
    # The photo and the options.
    "invalid_image": "The photo could not be read; please upload another one.",
    "source_missing": "The uploaded photo is no longer available; please upload it again.",
    "product_missing": "The product this video is a variant of is gone; please submit it again.",
    "invalid_options": "These video options cannot be rendered; please choose others.",
    "unsupported_options": "The video model cannot make a clip of this length or aspect "
    "ratio; please choose another.",
    # Making the prompt and the clip.
    "prompt_missing": "The video prompt is missing; please retry.",
    "invalid_llm_reply": f"{_AI} did not write a usable video prompt; please retry.",
    "render_failed": "The clip could not be rendered from this photo.",
    "render_timeout": "Rendering the clip took too long; please retry.",
    "invalid_video": "The generated clip was not usable; please retry.",
    # The AI provider (prompts and clips).
    "provider_unavailable": f"{_AI} is unavailable right now; please retry later.",
    "provider_rate_limited": f"{_AI} is busy right now; please retry later.",
    "provider_timeout": f"{_AI} took too long to make the clip; please retry.",
    "provider_unconfirmed": f"{_AI} did not confirm the clip was started; retry the job "
    "to send it again.",
    "provider_bad_request": f"{_AI} refused this request.",
    "provider_forbidden": f"{_AI} refused this photo or text; please try another.",
    "provider_payload_too_large": f"{_AI} found this request too large; please try a "
    "smaller photo.",
    "provider_not_found": f"{_AI} could not find what it was asked for; please retry.",
    "provider_error": f"{_AI} gave an unexpected answer; please retry.",
    "provider_failed": f"{_AI} could not make this clip.",
    "provider_cancelled": f"{_AI} canceled this clip; please retry.",
    "provider_expired": f"{_AI} dropped this clip before it was made; please retry.",
    # How the service itself is set up.
    "provider_unauthorized": "Video generation is not available right now (a configuration "
    "problem on our side).",
    "unsupported_model": "Video generation is not available right now (a configuration "
    "problem on our side).",
    "insufficient_credits": "Video generation is paused (our credits with the AI service "
    "are used up); please try again later.",
    # Spending caps on paid clips (video/budget.py); nothing was paid for.
    "budget_exhausted": "The daily budget for AI clips has been reached; nothing was "
    "charged. Please retry the job after midnight UTC.",
    "paid_clip_limit": "This account has reached its daily limit of AI clips; nothing was "
    "charged. Please retry the job after midnight UTC.",
    # Our own infrastructure.
    "storage_unavailable": "Our file storage was unavailable; please retry in a moment.",
    "storage_refused": "Our file storage refused the file; please retry later.",
    "infrastructure_unavailable": "A part of our service was unavailable; please retry in "
    "a moment.",
    "queue_unavailable": "The job could not be queued; please retry in a moment.",
    "timeout": "The job took too long and was stopped; please retry.",
    "internal_error": "Something went wrong on our side.",
}
DEFAULT_USER_MESSAGE = "The video could not be made."


def user_message(code: str) -> str:
    """The stable message a job's owner reads for `code`."""
    return USER_MESSAGES.get(code, DEFAULT_USER_MESSAGE)


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message", "details"?}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of `app` use the one JSON shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "header")),
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        return JSONResponse(
            error_body("validation_error", "The request is not valid.", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side."), status_code=500
        )
