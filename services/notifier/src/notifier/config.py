"""Settings of the notifier (environment variables, no prefix)."""

from typing import Annotated, Any

from pydantic import Field, field_validator
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
    # Open sockets per client address (an IPv6 /64 counts as one), in this replica.
    max_connections_per_ip: int = Field(default=20, ge=1)
    # X-Forwarded-For is believed only from these networks (the ingress controller's).
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(default_factory=list)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        return parse_networks(value)
