"""Settings of the notifier (environment variables, no prefix)."""

from pydantic import Field

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
    # A socket that watches no job and says nothing for this long is closed.
    idle_timeout_seconds: float = Field(default=60, gt=0)
