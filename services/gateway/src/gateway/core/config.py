"""Gateway settings: the common ones plus upload limits and what the web client needs."""

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
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

    # Where browsers open the notifier's WebSocket (absolute, or a path on this host).
    public_ws_url: str = "ws://localhost:8001/ws"

    # Sign-in: a one-time code by email, then a session token.
    session_ttl_seconds: int = Field(default=30 * 24 * 3600, gt=0)
    code_ttl_seconds: int = Field(default=600, gt=0)
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

    # Free tier, counted per window (a day unless FREE_WINDOW_SECONDS says otherwise).
    free_window_seconds: int = Field(default=24 * 3600, gt=0)
    free_jobs_per_ip: int = Field(default=100, ge=0)
    free_jobs_per_email: int = Field(default=50, ge=0)
    free_running_jobs_per_email: int = Field(default=5, ge=0)
    # A retry runs the paid stages again: it counts as a video, and a job has only so many.
    retries_per_job: int = Field(default=3, ge=0)
    # Sign-in codes asked for, per window: against mail bombing and code guessing.
    free_codes_per_ip: int = Field(default=50, ge=0)
    free_codes_per_email: int = Field(default=10, ge=0)
    # Sign-in codes tried (right or wrong), per window: against guessing across addresses.
    free_verifies_per_ip: int = Field(default=100, ge=0)

    # X-Forwarded-For is believed only from these networks (the load balancer's).
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(default_factory=list)
    # Origins allowed to call the API from a browser (CORS); empty: same origin only.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

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
