"""Request and response models: what the OpenAPI schema documents."""

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from common.brief import CTA_MAX_CHARS, PRICE_MAX_CHARS, Brief
from common.presets import DURATION_DEFAULT, DURATION_MAX, DURATION_MIN, PRESETS

AspectRatio = Literal["9:16", "1:1", "16:9"]
ASPECT_RATIOS: tuple[AspectRatio, ...] = ("9:16", "1:1", "16:9")
DEFAULT_ASPECT_RATIO: AspectRatio = "9:16"
# The names of `common.presets.PRESETS` (spelled out for the OpenAPI schema and mypy).
PresetName = Literal["tiktok", "reels", "shorts", "feed", "youtube", "amazon"]
assert set(get_args(PresetName)) == set(PRESETS), "PresetName must list common.presets"
OnOff = Literal["on", "off"]


class JobOptions(BaseModel):
    aspect_ratio: AspectRatio = DEFAULT_ASPECT_RATIO
    duration: int = Field(default=DURATION_DEFAULT, ge=DURATION_MIN, le=DURATION_MAX)
    style: str | None = None
    preset: PresetName | None = Field(
        default=None, description="The platform the ad is for (ratio, length, text-safe area)."
    )
    cta: str | None = Field(
        default=None, max_length=CTA_MAX_CHARS, description="The end card's call to action."
    )
    price: str | None = Field(
        default=None, max_length=PRICE_MAX_CHARS, description="The price shown, as typed."
    )
    music: OnOff = "on"
    captions: OnOff = "on"
    finish: bool = Field(default=True, description="false: the raw motion clip, no ad.")


class JobCreate(BaseModel):
    """The validated fields of an upload (the photo travels beside them)."""

    title: str
    description: str
    options: JobOptions
    # Made again even when the owner had exactly this made before (no result reuse).
    regenerate: bool = False


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


class AudioPublic(BaseModel):
    codec: str
    sample_rate: int
    channels: int
    loudness_lufs: float | None = Field(
        description="Integrated loudness (EBU R128), -14 for a music bed; null for silence."
    )
    true_peak_dbtp: float | None


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
    finished: bool | None = Field(
        default=None,
        description="true: the finished ad (captions, end card, music); false: the raw motion "
        "clip (`finish=false`). null for jobs made before finishing existed.",
    )
    audio: AudioPublic | None = Field(default=None, description="The sound track, measured.")
    fidelity: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="How closely an AI clip keeps the product photo (SSIM of the product "
        "region); null for the local renderer.",
    )
    fidelity_warning: bool = Field(
        default=False, description="The product may have drifted: watch before posting."
    )
    reused_from: str | None = Field(
        default=None,
        description="The earlier job of the same owner whose clip and poster this job reused "
        "(the same inputs and options): nothing was made or paid for again. None when made.",
    )


class JobErrorPublic(BaseModel):
    code: str
    message: str


class JobPublic(BaseModel):
    """A job as its owner sees it (`common.views.public_job`). A variant of a product
    (`variants`) also has `product_id` (its product: one photo, one prompt and brief) and
    `variant` (its index in the request's `variants`); a batch's job also `batch_id`, `sku`
    and `row` (the manifest's row number). Jobs without them leave these keys out."""

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
    brief: Brief | None = Field(
        default=None, description="The ad's creative brief, written with the prompt."
    )
    notes: list[str] = Field(
        default_factory=list,
        description="What the owner should know about the job (a length outside the preset's).",
    )
    video: VideoPublic | None = None
    error: JobErrorPublic | None = None


class JobAccepted(BaseModel):
    id: str
    status: str
    token: str = Field(description="Grants read access to this job (Bearer or ?token=).")
    job: JobPublic


class ProductAccepted(JobAccepted):
    """A request with `variants`: the first variant's job at the top (as without
    `variants`), the product and every variant's job in `jobs`."""

    product_id: str = Field(description="The product: one photo, one prompt and brief.")
    jobs: list[JobAccepted] = Field(description="One job per variant, in the request's order.")


class DurationLimits(BaseModel):
    min: int
    max: int
    default: int


class PresetPublic(BaseModel):
    name: PresetName
    label: str
    aspect_ratio: AspectRatio
    durations: DurationLimits = Field(description="The lengths a job of this preset can ask for.")
    best: tuple[int, int] = Field(description="The seconds that perform best on the platform.")


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
    presets: list[PresetPublic]
    cta_max_length: int
    price_max_length: int


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
    credential: Literal["session", "api_key"] = "session"
    scopes: list[str] | None = Field(
        default=None, description="An API key's scopes; null for a session (everything)."
    )


class JobToken(BaseModel):
    token: str = Field(description="The job's one valid job token; every earlier one was revoked.")


class JobListed(JobPublic):
    token: str = Field(description="The job token, for links to share or play this one job.")


class JobsPublic(BaseModel):
    jobs: list[JobListed] = Field(description="The caller's jobs, newest first.")
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next page; null on the last page."
    )


ApiScope = Literal["jobs:read", "jobs:write", "batches:write", "webhooks:manage"]


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the key is for.")
    scopes: list[ApiScope] = Field(
        min_length=1, max_length=4, description="What the key may do (at least one scope)."
    )


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    scopes: list[str]
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: str
    last_used_at: str | None = Field(description="Within a minute; null if never used.")


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself (`pv_live_…`): shown this once, never again.")


class ApiKeysPublic(BaseModel):
    keys: list[ApiKeyPublic] = Field(description="The owner's keys, newest first.")


class SessionListed(BaseModel):
    id: str = Field(description="Names the session in this list (not a credential).")
    created_at: str
    expires_at: str
    current: bool = Field(description="The session making this request.")


class SessionsPublic(BaseModel):
    sessions: list[SessionListed] = Field(description="Signed-in sessions, newest first.")


WebhookEventType = Literal["job.completed", "job.failed", "batch.completed"]


class WebhookEndpointCreate(BaseModel):
    url: str = Field(
        max_length=2000, description="Where deliveries are POSTed: `https://`, a public host."
    )
    events: list[WebhookEventType] = Field(min_length=1, max_length=10)
    description: str | None = Field(default=None, max_length=200)


class WebhookEndpointChange(BaseModel):
    url: str | None = Field(default=None, max_length=2000)
    events: list[WebhookEventType] | None = Field(default=None, min_length=1, max_length=10)
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = Field(
        default=None, description="false disables the endpoint; true enables it again."
    )


class WebhookEndpointPublic(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="Why it was disabled, if it was.")
    failing_since: str | None = Field(description="Every delivery has failed since then.")
    created_at: str
    updated_at: str


class WebhookEndpointCreated(WebhookEndpointPublic):
    secret: str = Field(description="The signing secret (`whsec_…`): shown this once.")


class WebhookEndpointsPublic(BaseModel):
    endpoints: list[WebhookEndpointPublic]


class WebhookSecret(BaseModel):
    secret: str = Field(description="The new signing secret, shown this once.")
    previous_expires_at: str | None = Field(
        description="Until then the previous secret signs too (24 h)."
    )


class DeliveryAttempt(BaseModel):
    at: str
    status_code: int | None = Field(description="The endpoint's answer; null if none came.")
    duration_ms: int
    error: str | None


class WebhookDeliveryPublic(BaseModel):
    id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    type: str
    job_id: str | None = Field(description="The job of a `job.*` event.")
    batch_id: str | None = Field(description="The batch of a `batch.completed` event.")
    status: Literal["pending", "delivering", "delivered", "failed"]
    created_at: str
    next_attempt_at: str | None
    attempts: list[DeliveryAttempt]


class WebhookDeliveriesPublic(BaseModel):
    deliveries: list[WebhookDeliveryPublic] = Field(description="Newest first.")
