"""Gateway settings: the common ones plus upload limits and what the web client needs."""

from pydantic import Field

from common.settings import CommonSettings

MIB = 1024 * 1024


class GatewaySettings(CommonSettings):
    service_name: str = "gateway"

    max_upload_bytes: int = Field(default=20 * MIB, gt=0)
    # Checked from the image header before any pixel is decoded (decompression bombs).
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    min_image_side: int = Field(default=256, gt=0)
    title_max_length: int = Field(default=120, gt=0)
    description_max_length: int = Field(default=2000, gt=0)
    style_max_length: int = Field(default=60, gt=0)
    idempotency_key_max_length: int = Field(default=200, gt=0)
    # A broker that accepts the connection but never confirms must not hang uploads.
    publish_timeout_seconds: float = Field(default=10.0, gt=0)

    # Where browsers open the notifier's WebSocket (absolute, or a path on this host).
    public_ws_url: str = "ws://localhost:8001/ws"
