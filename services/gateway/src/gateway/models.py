"""Request and response models: what the OpenAPI schema documents."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AspectRatio = Literal["9:16", "1:1", "16:9"]
ASPECT_RATIOS: tuple[AspectRatio, ...] = ("9:16", "1:1", "16:9")
DEFAULT_ASPECT_RATIO: AspectRatio = "9:16"
DURATION_MIN, DURATION_MAX, DURATION_DEFAULT = 3, 10, 5


class JobOptions(BaseModel):
    aspect_ratio: AspectRatio = DEFAULT_ASPECT_RATIO
    duration: int = Field(default=DURATION_DEFAULT, ge=DURATION_MIN, le=DURATION_MAX)
    style: str | None = None


class JobCreate(BaseModel):
    """The validated fields of an upload (the photo travels beside them)."""

    title: str
    description: str
    options: JobOptions


class ImagePublic(BaseModel):
    width: int
    height: int
    content_type: str


class HistoryEntry(BaseModel):
    seq: int
    status: str
    progress: int
    at: str


class PromptPublic(BaseModel):
    text: str | None = None
    source: str | None = None
    model: str | None = None
    cost: float | None = None


class VideoPublic(BaseModel):
    url: str = Field(description="Expiring link to the MP4 file.")
    poster_url: str = Field(description="Expiring link to the poster JPEG.")
    download_url: str = Field(
        description="Expiring link that saves the MP4 as `<slugified title>.mp4`."
    )
    duration: float
    width: int
    height: int
    size: int
    codec: str
    cost: float | None = Field(
        default=None, description="What the video provider charged, in US dollars (0 locally)."
    )


class JobErrorPublic(BaseModel):
    code: str
    message: str


class JobPublic(BaseModel):
    """A job as its owner sees it (`common.views.public_job`)."""

    # Fields added to the shared view later still reach clients.
    model_config = ConfigDict(extra="allow")

    id: str
    status: str
    progress: int = Field(ge=0, le=100)
    seq: int
    title: str
    description: str
    options: JobOptions
    image: ImagePublic
    attempts: int
    created_at: str
    updated_at: str
    history: list[HistoryEntry]
    prompt: PromptPublic | None = None
    video: VideoPublic | None = None
    error: JobErrorPublic | None = None


class JobAccepted(BaseModel):
    id: str
    status: str
    token: str = Field(description="Grants read access to this job (Bearer or ?token=).")
    job: JobPublic


class DurationLimits(BaseModel):
    min: int
    max: int
    default: int


class UploadLimits(BaseModel):
    max_upload_bytes: int
    max_image_pixels: int
    min_image_side: int
    title_max_length: int
    description_max_length: int
    style_max_length: int
    image_types: list[str]


class ClientConfig(BaseModel):
    ws_url: str
    aspect_ratios: list[str]
    default_aspect_ratio: str
    durations: DurationLimits
    max_upload_bytes: int
    limits: UploadLimits


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The one shape of every error this API answers."""

    error: ErrorDetail


# Every 429 says when to come back.
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting the error shape for these statuses."""
    return {
        status: {"model": ErrorResponse, **({"headers": _RETRY_AFTER} if status == 429 else {})}
        for status in statuses
    }


class EmailSignIn(BaseModel):
    email: str = Field(
        max_length=320,
        description="Where the one-time code is sent.",
        json_schema_extra={"format": "email"},
    )


class CodeSent(BaseModel):
    email: str
    expires_in: int = Field(description="Seconds the code stays valid.")
    resend_after: int = Field(description="Seconds before another code may be asked for.")


class CodeVerification(BaseModel):
    email: str = Field(max_length=320, json_schema_extra={"format": "email"})
    code: str = Field(pattern=r"^[0-9]{6}$", description="The 6-digit code from the email.")


class SessionPublic(BaseModel):
    token: str = Field(description="The session token: `Authorization: Bearer <token>`.")
    email: str
    expires_at: str


class Me(BaseModel):
    email: str


class JobToken(BaseModel):
    token: str = Field(description="The job's one valid job token; every earlier one was revoked.")


class JobListed(JobPublic):
    token: str = Field(description="The job token, for links to share or play this one job.")


class JobsPublic(BaseModel):
    jobs: list[JobListed] = Field(description="The caller's jobs, newest first.")
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next page; null on the last page."
    )
