"""Settings shared by every service, read from environment variables.

With no variables set everything points at the embedded local defaults, so
`make run` works on a fresh machine. Services extend `CommonSettings`.
"""

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SIGNING_KEY = "dev-only-signing-key-change-me"
# The shortest SIGNING_KEY production accepts (`openssl rand -hex 32` gives 64 characters).
MIN_SIGNING_KEY_LENGTH = 32


def list_from_env(value: Any) -> Any:
    """A JSON list, or the friendlier comma-separated form (`10.0.0.0/8, 192.168.0.0/16`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = "product-videos"
    # `production` (the Helm chart's default) refuses to start with unsafe settings
    # (`production_problems`); `development` (the default here, `make run`) allows them.
    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    # The gateway's and the notifier's port for /healthz, /readyz with detail and /metrics,
    # which the ingress does not route to (common/ops.py); unset: not served. The workers
    # serve them on their one port.
    ops_port: int | None = Field(default=None, ge=1, lt=65536)
    ops_host: str = "127.0.0.1"

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefixes the exchange and every queue name, so test sessions share one broker safely.
    amqp_prefix: str = ""
    # Unused queues vanish after this long (x-expires); tests set it so that queues
    # left by a killed test run cannot pile up on a shared broker.
    amqp_queue_expires_seconds: int | None = Field(default=None, ge=1)
    # How quorum queues dead-letter (retries coming back, poison messages to the DLQ).
    # at-least-once survives a broker crash mid-move; the test suites use at-most-once
    # because RabbitMQ 3.10's at-least-once dead-letter workers crashed under the churn of
    # hundreds of queues declared and deleted per run (the reconciler re-drives a lost one).
    amqp_dead_letter_strategy: Literal["at-least-once", "at-most-once"] = "at-least-once"
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
    # Job tokens (Authorization header and WebSocket only, never in a URL) live days; the
    # links in URLs (signed file links, presigned S3 URLs) only minutes.
    job_token_ttl_seconds: int = 7 * 24 * 3600
    download_url_ttl_seconds: int = Field(default=600, gt=0, le=3600)

    openrouter_api_key: SecretStr | None = None
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    # Attribution headers sent to OpenRouter (HTTP-Referer, X-Title); optional.
    openrouter_referer: str | None = None
    openrouter_title: str | None = "Product Videos"
    # Webhook mode (optional): OpenRouter calls this URL (the gateway's
    # /api/v1/webhooks/openrouter) when a video job ends, signed with the secret.
    openrouter_webhook_url: str | None = None
    openrouter_webhook_secret: SecretStr | None = None

    # Outgoing requests to URLs users gave (webhooks, photo URLs; common/outbound.py):
    # true also allows http and private or loopback targets. Development and tests only.
    outbound_allow_private: bool = False

    # Delayed redelivery tiers for retryable failures, in seconds; one retry queue each.
    retry_delays: list[int] = [5, 30, 120]
    max_attempts: int = Field(default=4, ge=1)

    # Fair shares of each worker pool between owners (common/fairness.py): false is plain
    # first come, first served (the benchmark's baseline).
    fair_share_enabled: bool = True

    # The reconciler (common/reconciler.py, run by every worker, one replica acting at a
    # time): how often it looks, and after how long without a change a non-final job
    # whose event may be lost is driven on again.
    reconcile_enabled: bool = True
    reconcile_interval_seconds: float = Field(default=15.0, gt=0)
    reconcile_stale_seconds: float = Field(default=300.0, gt=0)
    # The longest a job may stay in each non-final status; past it the job fails as
    # `timeout` ("timed out in <status>").
    stage_deadlines: dict[str, float] = {
        "queued": 3600.0,
        "prompting": 900.0,
        "prompt_ready": 3600.0,
        "generating": 3600.0,
        "storing": 900.0,
    }

    @model_validator(mode="after")
    def _safe_in_production(self) -> Self:
        if self.environment == "production" and (problems := self.production_problems()):
            raise ValueError(
                f"{self.service_name} refuses to start with ENVIRONMENT=production: "
                + " ".join(problems)
                + " (ENVIRONMENT=development allows it, for a machine of your own.)"
            )
        return self

    def production_problems(self) -> list[str]:
        """What makes these settings unsafe in production, one sentence each. Services
        add their own (the gateway: mail); every rule lives here or in a service's config."""
        problems = []
        key = self.signing_key.get_secret_value()
        if key == DEV_SIGNING_KEY:
            problems.append(
                "SIGNING_KEY is the development key, which anyone can read in the source: "
                "set a random one (openssl rand -hex 32), the same in every service."
            )
        elif len(key) < MIN_SIGNING_KEY_LENGTH:
            problems.append(
                f"SIGNING_KEY is {'empty' if not key else 'too short'}: it needs at least "
                f"{MIN_SIGNING_KEY_LENGTH} characters (openssl rand -hex 32)."
            )
        # The SSRF guard (common/outbound.py): private addresses are for development only.
        if self.outbound_allow_private:
            problems.append(
                "OUTBOUND_ALLOW_PRIVATE=true lets user-given URLs reach private networks: "
                "leave it unset in production."
            )
        return problems

    @cached_property
    def exchange_name(self) -> str:
        return f"{self.amqp_prefix}product_videos"

    def queue_name(self, name: str) -> str:
        return f"{self.amqp_prefix}{name}"

    @property
    def storage_root(self) -> Path:
        """The folder of the filesystem backend (only meaningful for file:// URLs)."""
        return Path(self.storage_url.removeprefix("file://")).expanduser().resolve()
