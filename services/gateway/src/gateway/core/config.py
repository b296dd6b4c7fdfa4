"""Gateway settings: the common ones plus upload limits and what the web client needs."""

from typing import Annotated, Any, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from common.client_ip import Network, parse_networks
from common.settings import CommonSettings, list_from_env

MIB = 1024 * 1024


class GatewaySettings(CommonSettings):
    service_name: str = "gateway"

    max_upload_bytes: int = Field(default=20 * MIB, gt=0)
    # Checked from the image header before any pixel is decoded (decompression bombs).
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    # Photos decoded at once per process: each takes up to ~8 bytes per pixel meanwhile.
    decode_concurrency: int = Field(default=2, ge=1)
    min_image_side: int = Field(default=256, gt=0)
    title_max_length: int = Field(default=120, gt=0)
    description_max_length: int = Field(default=2000, gt=0)
    style_max_length: int = Field(default=60, gt=0)
    idempotency_key_max_length: int = Field(default=200, gt=0)
    # A broker that accepts the connection but never confirms must not hang uploads.
    publish_timeout_seconds: float = Field(default=10.0, gt=0)

    # Catalogues (docs/catalogues.md): a manifest of products and an optional zip of photos.
    batch_max_rows: int = Field(default=500, ge=1)
    batch_manifest_max_bytes: int = Field(default=4 * MIB, gt=0)
    sku_max_length: int = Field(default=100, gt=0)
    # The photos zip as uploaded, and what is in it: entries listed, each photo and every
    # photo read together once inflated, and how far one entry may inflate (zip bombs).
    batch_photos_max_bytes: int = Field(default=256 * MIB, gt=0)
    batch_photos_max_entries: int = Field(default=2000, ge=1)
    batch_photos_max_total_bytes: int = Field(default=512 * MIB, gt=0)
    batch_photos_max_ratio: float = Field(default=100.0, gt=1)
    # Photo links of a manifest, fetched when the batch is made (common/outbound.py's
    # guard): how many at once, and how long each may take, redirects included.
    batch_links_concurrency: int = Field(default=8, ge=1)
    batch_link_timeout_seconds: float = Field(default=15.0, gt=0)
    # The quote: which providers the workers use and what they cost. The same variables
    # (and the same rule when unset) as the prompt and video workers read.
    video_provider: str = ""
    prompt_provider: str = ""
    openrouter_video_model: str = "bytedance/seedance-2.0"
    openrouter_video_resolution: str = "720p"
    openrouter_models_ttl_seconds: float = Field(default=3600, ge=0)
    # What one prompt call (one per product) is estimated to cost on OpenRouter, in US
    # dollars: a vision model's reply of a few hundred tokens (the real cost is recorded).
    prompt_cost_estimate_usd: float = Field(default=0.003, ge=0)

    # Where browsers open the notifier's WebSocket (absolute, or a path on this host).
    public_ws_url: str = "ws://localhost:8001/ws"

    # Sign-in: a one-time code by email, then a session token.
    session_ttl_seconds: int = Field(default=30 * 24 * 3600, gt=0)
    code_ttl_seconds: int = Field(default=600, gt=0)
    # Wrong tries of one code per requesting network (and 4 times that from all together).
    code_max_attempts: int = Field(default=5, ge=1)
    code_resend_seconds: int = Field(default=60, ge=0)
    # Without SMTP_HOST the code is written to the gateway's log (development).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: bool = False  # implicit TLS (usually port 465)
    smtp_starttls: bool | None = None  # None: upgrade when the server offers it
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    mail_from: str = "Product Videos <no-reply@localhost>"
    # API keys an owner may hold at once.
    api_keys_per_owner: int = Field(default=20, ge=1)
    # Webhook endpoints an owner may register.
    webhook_endpoints_per_owner: int = Field(default=10, ge=1)

    # Free tier, counted per window (a day unless FREE_WINDOW_SECONDS says otherwise).
    free_window_seconds: int = Field(default=24 * 3600, gt=0)
    free_jobs_per_ip: int = Field(default=100, ge=0)
    free_jobs_per_email: int = Field(default=50, ge=0)
    free_running_jobs_per_email: int = Field(default=5, ge=0)
    # A retry runs the paid stages again: it counts as a video, and a job has only so many.
    retries_per_job: int = Field(default=3, ge=0)
    # Sign-in codes asked for, per window: against mail bombing and code guessing.
    free_codes_per_ip: int = Field(default=50, ge=0)
    free_codes_per_email: int = Field(default=10, ge=0)  # per mailbox and requesting network
    # Sign-in codes tried (right or wrong), per window: against guessing across addresses.
    free_verifies_per_ip: int = Field(default=100, ge=0)
    # Photos refused as unusable (damaged, not an image, too many pixels) per user and
    # window: who keeps sending them is refused (429) before any more are decoded.
    refused_photos_per_email: int = Field(default=10, ge=0)
    refused_photos_window_seconds: int = Field(default=600, gt=0)

    # X-Forwarded-For is believed only from these networks (the load balancer's).
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(default_factory=list)
    # Origins allowed to call the API from a browser (CORS); empty: same origin only.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @model_validator(mode="after")
    def _choose_providers(self) -> Self:
        paid = "openrouter" if self.openrouter_api_key else ""
        self.video_provider = self.video_provider or paid or "local"
        self.prompt_provider = self.prompt_provider or paid or "template"
        return self

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if not self.smtp_host:
            problems.append(
                "SMTP_HOST is not set, so sign-in codes would only be written to the log: "
                "set SMTP_HOST (and SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD)."
            )
        elif not self.smtp_tls and self.smtp_starttls is not True:
            problems.append(
                "SMTP without encryption: sign-in codes would cross the network readable "
                "(an optional STARTTLS can be stripped). Set SMTP_STARTTLS=true (port 587) "
                "or SMTP_TLS=true (port 465)."
            )
        return problems

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        return parse_networks(value)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        return list_from_env(value)
