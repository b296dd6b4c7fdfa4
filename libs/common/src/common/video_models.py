"""OpenRouter's video models (`GET /videos/models`): the list, kept for a while, and what a
model charges per second of clip. Read by the gateway's quote and the video provider (its
checks before a paid submission and the spending caps' estimate), so both price alike.
"""

import asyncio
import math
import re
import time
from typing import Any

from common.openrouter import OpenRouter


class ModelCatalog:
    """`GET /videos/models`, kept in this process for `ttl` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._models: dict[str, dict[str, Any]] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, api: OpenRouter, model_id: str) -> dict[str, Any] | None:
        async with self._lock:
            if time.monotonic() - self._read_at > self.ttl:
                answer = await api.call("GET", "/videos/models")
                models = answer.get("data") or []
                self._models = {
                    str(m["id"]): m for m in models if isinstance(m, dict) and "id" in m
                }
                self._read_at = time.monotonic()
            return self._models.get(model_id)


def _price(sku: Any) -> float | None:
    value = sku.get("price_per_second") if isinstance(sku, dict) else None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    try:
        price = float(value)
    except ValueError:
        return None
    return price if math.isfinite(price) and price >= 0 else None


def price_per_second(model: dict[str, Any], resolution: str) -> float | None:
    """US dollars per second of clip at `resolution`, from the model's `pricing_skus`
    (`[{"sku": "video-720p", "price_per_second": "0.07"}]`): the sku naming the resolution,
    else the dearest one listed (an estimate errs high); None when no price is listed."""
    skus = [sku for sku in model.get("pricing_skus") or [] if _price(sku) is not None]
    if not skus:
        return None
    wanted = re.compile(rf"(^|[^0-9]){re.escape(resolution)}($|[^0-9a-z])", re.I)
    for sku in skus:
        if wanted.search(str(sku.get("sku", ""))):
            return _price(sku)
    return max(p for sku in skus if (p := _price(sku)) is not None)
