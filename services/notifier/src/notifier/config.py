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
