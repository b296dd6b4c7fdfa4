"""Settings shared by every service, read from environment variables.

With no variables set everything points at the embedded local defaults, so
`make run` works on a fresh machine. Services extend `CommonSettings`.
"""

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SIGNING_KEY = "dev-only-signing-key-change-me"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = "product-videos"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefixes the exchange and every queue name, so test sessions share one broker safely.
    amqp_prefix: str = ""
    # Unused queues vanish after this long (x-expires); tests set it so that queues
    # left by a killed test run cannot pile up on a shared broker.
    amqp_queue_expires_seconds: int | None = Field(default=None, ge=1)
    prefetch: int = Field(default=4, ge=1)
    graceful_timeout: float = Field(default=30.0, gt=0)

    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = "product_videos"

    storage_url: str = "file://.data/objects"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None

    # Signs job tokens and download links; must be the same in every service.
    signing_key: SecretStr = SecretStr(DEV_SIGNING_KEY)
    job_token_ttl_seconds: int = 7 * 24 * 3600
    download_url_ttl_seconds: int = 3600

    openrouter_api_key: SecretStr | None = None
    openrouter_base_url: str = "https://openrouter.ai/api/v1"

    # Delayed redelivery tiers for retryable failures, in seconds; one retry queue each.
    retry_delays: list[int] = [5, 30, 120]
    max_attempts: int = Field(default=4, ge=1)

    @cached_property
    def exchange_name(self) -> str:
        return f"{self.amqp_prefix}product_videos"

    def queue_name(self, name: str) -> str:
        return f"{self.amqp_prefix}{name}"

    @property
    def storage_root(self) -> Path:
        """The folder of the filesystem backend (only meaningful for file:// URLs)."""
        return Path(self.storage_url.removeprefix("file://")).expanduser().resolve()
