"""Settings of the notifier (environment variables, no prefix)."""

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from common.client_ip import Network, parse_networks
from common.settings import CommonSettings


class NotifierSettings(CommonSettings):
    service_name: str = "notifier"
    # A server ping this often keeps idle sockets alive through proxies and load balancers.
    heartbeat_seconds: float = Field(default=20, gt=0)
    max_subscriptions_per_socket: int = Field(default=10, ge=1)
    # Client messages are tiny JSON objects; anything larger is refused.
    max_message_bytes: int = Field(default=4096, ge=256)
    # Ops a socket may send per second (bursts of twice that); more closes it (1008).
    max_messages_per_second: float = Field(default=20, gt=0)
    # A socket that watches no unfinished job and says nothing for this long is closed.
    idle_timeout_seconds: float = Field(default=60, gt=0)
    # How often every watched, unfinished job is re-read and its sockets caught up (events
    # can be lost), and every subscription's token checked again (sign-out, expiry).
    resync_seconds: float = Field(default=5, gt=0)
    # Watched jobs one resync pass reads at most (those checked longest ago; all of them
    # after a broker reconnect): with more, each is checked every few passes.
    resync_max_jobs: int = Field(default=2000, ge=1)
    # Open sockets per client address (an IPv6 /64 counts as one), in this replica.
    max_connections_per_ip: int = Field(default=20, ge=1)
    # X-Forwarded-For is believed only from these networks (the ingress controller's).
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(default_factory=list)

    # Outgoing webhooks (notifier.webhooks): how long one attempt may take, the delays
    # between attempts (the last one repeats), when a delivery is given up (after the
    # event) and an endpoint that fails all along is disabled.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_delays: list[float] = Field(
        default=[5, 30, 120, 600, 1800, 3600, 7200, 14400], min_length=1
    )
    webhook_give_up_seconds: float = Field(default=24 * 3600, gt=0)
    webhook_disable_after_seconds: float = Field(default=24 * 3600, gt=0)
    # Requests in flight per replica, and per endpoint (a slow endpoint fills only its own).
    webhook_concurrency: int = Field(default=32, ge=1)
    webhook_endpoint_concurrency: int = Field(default=4, ge=1)
    # How often due deliveries are looked for (new ones from this replica wake it at once).
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    # How long the clip and poster links in a webhook's body work.
    webhook_link_ttl_seconds: int = Field(default=900, ge=60)

    # A claimed delivery's lease: past it, a replica that died mid-send lets go of it
    # (longer than WEBHOOK_TIMEOUT_SECONDS, so a live attempt is never sent twice at once).
    webhook_lease_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> "NotifierSettings":
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("WEBHOOK_LEASE_SECONDS must be longer than WEBHOOK_TIMEOUT_SECONDS")
        return self

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        return parse_networks(value)
