"""What the web client needs to know, and the public probes: health and readiness without
detail (the detail and the metrics are on the ops port, `common.ops`)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from common.brief import CTA_MAX_CHARS, PRICE_MAX_CHARS
from common.health import readiness as common_readiness
from common.ops import PublicReadiness
from common.presets import DURATION_DEFAULT, DURATION_MAX, DURATION_MIN, PRESETS, durations
from common.views import API_PREFIX
from gateway.api.deps import SettingsDep
from gateway.images import ACCEPTED_TYPES
from gateway.models import ASPECT_RATIOS, DEFAULT_ASPECT_RATIO, ClientConfig

config_router = APIRouter(prefix=API_PREFIX, tags=["meta"])
probes_router = APIRouter(tags=["meta"])


@config_router.get("/config", response_model=ClientConfig, summary="Settings for clients")
async def client_config(settings: SettingsDep) -> dict[str, Any]:
    return {
        "ws_url": settings.public_ws_url,
        "aspect_ratios": list(ASPECT_RATIOS),
        "default_aspect_ratio": DEFAULT_ASPECT_RATIO,
        "durations": {"min": DURATION_MIN, "max": DURATION_MAX, "default": DURATION_DEFAULT},
        "max_upload_bytes": settings.max_upload_bytes,
        "limits": {
            "max_upload_bytes": settings.max_upload_bytes,
            "max_image_pixels": settings.max_image_pixels,
            "min_image_side": settings.min_image_side,
            "title_max_length": settings.title_max_length,
            "description_max_length": settings.description_max_length,
            "style_max_length": settings.style_max_length,
            "image_types": list(ACCEPTED_TYPES),
        },
        "presets": [
            {
                "name": p.name,
                "label": p.label,
                "aspect_ratio": p.aspect_ratio,
                "durations": durations(p),
                "best": list(p.best),
            }
            for p in PRESETS.values()
        ],
        "cta_max_length": CTA_MAX_CHARS,
        "price_max_length": PRICE_MAX_CHARS,
    }


@probes_router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@probes_router.get("/readyz", summary="Readiness, without detail (detail: the ops port)")
async def readyz(request: Request) -> JSONResponse:
    public: PublicReadiness = request.app.state.public_readiness
    return public.response(await public())


async def readiness(app: Any) -> tuple[bool, dict[str, str]]:
    """Broker, database and storage, each with its state: only for the ops port."""
    services = getattr(app.state, "services", None)
    if services is None:
        return False, {"startup": "not started"}
    return await common_readiness(services.broker, services.db, services.storage)
