"""What a batch would cost, before anything is queued.

With the OpenRouter video provider each job costs the video model's price per second (from
`GET /videos/models`, `pricing_skus`, at the configured resolution) × its duration, and each
product one prompt call (one per product, whatever its number of variants) at
`PROMPT_COST_ESTIMATE_USD` when the prompt provider is OpenRouter too. The local renderer and
the template prompt writer cost nothing. With `max_cost_usd`, jobs are counted in manifest
order (row by row, variant by variant, a row's prompt with its first job): the first job that
would take the total past the cap, and every one after it, would fail as `budget_exhausted`.
"""

from dataclasses import dataclass
from typing import Any

from common.errors import ApiError, JobError
from common.openrouter import OpenRouter, OpenRouterConfig
from common.video_models import ModelCatalog, price_per_second
from gateway.catalogue.manifest import Row
from gateway.catalogue.variants import ResolvedVariant
from gateway.core.config import GatewaySettings

# A quote waits this long for OpenRouter's model list.
MODELS_TIMEOUT = 15.0


@dataclass(frozen=True)
class Pricing:
    video_provider: str
    video_model: str | None
    video_price_per_second: float  # US dollars
    prompt_provider: str
    prompt_per_call: float
    model: dict[str, Any] | None = None  # as OpenRouter lists it


def _unavailable(message: str) -> ApiError:
    return ApiError(503, "price_unavailable", message, headers={"Retry-After": "30"})


async def current_pricing(settings: GatewaySettings, catalog: ModelCatalog) -> Pricing:
    prompt_per_call = (
        settings.prompt_cost_estimate_usd if settings.prompt_provider == "openrouter" else 0.0
    )
    if settings.video_provider != "openrouter":
        return Pricing(
            settings.video_provider, None, 0.0, settings.prompt_provider, prompt_per_call
        )
    model_id = settings.openrouter_video_model
    try:
        config = OpenRouterConfig.from_settings(settings, timeout=MODELS_TIMEOUT)
        async with OpenRouter(config) as api:
            model = await catalog.get(api, model_id)
    except ValueError as e:  # no API key
        raise _unavailable(f"The video model's price cannot be read: {e}.") from e
    except JobError as e:
        raise _unavailable(f"The video model's price could not be read: {e.message}") from e
    if model is None:
        raise _unavailable(f"OpenRouter does not offer the video model {model_id}.")
    price = price_per_second(model, settings.openrouter_video_resolution)
    if price is None:
        raise _unavailable(f"OpenRouter lists no price for the video model {model_id}.")
    return Pricing("openrouter", model_id, price, settings.prompt_provider, prompt_per_call, model)


def _unsupported(model: dict[str, Any] | None, variant: ResolvedVariant) -> str | None:
    """Why the model cannot make this variant (the job would fail before paying)."""
    if model is None:
        return None
    durations = model.get("supported_durations") or []
    if durations and variant.duration not in durations:
        listed = ", ".join(f"{d} s" for d in durations)
        return f"The video model cannot make {variant.duration}-second clips (it makes {listed})."
    ratios = model.get("supported_aspect_ratios") or []
    if ratios and variant.aspect_ratio not in ratios:
        return f"The video model cannot make {variant.aspect_ratio} clips."
    return None


def _usd(value: float) -> float:
    return round(value, 4)


def quote(
    rows: list[Row],
    variants: list[ResolvedVariant],
    pricing: Pricing,
    max_cost_usd: float | None,
) -> dict[str, Any]:
    """The answer of POST /api/v1/batches/quote for checked rows and variants."""
    per_variant = [pricing.video_price_per_second * v.duration for v in variants]
    unsupported = [_unsupported(pricing.model, v) for v in variants]
    refused: list[dict[str, Any]] = []
    spent = 0.0
    jobs = prompts = 0
    over = False
    for row in rows:
        prompt_counted = False
        for index in range(len(variants)):
            if why := unsupported[index]:
                refused.append(_refusal(row, index, "unsupported_options", why))
                continue
            cost = per_variant[index] + (0.0 if prompt_counted else pricing.prompt_per_call)
            if max_cost_usd is not None and (over or spent + cost > max_cost_usd + 1e-9):
                over = True
                refused.append(
                    _refusal(
                        row,
                        index,
                        "budget_exhausted",
                        f"Past the batch's cost cap of ${max_cost_usd:.2f}.",
                    )
                )
                continue
            spent += cost
            jobs += 1
            if not prompt_counted:
                prompts += 1
                prompt_counted = True
    return {
        "rows": len(rows),
        "variants": [v.public() for v in variants],
        "jobs": jobs,
        "pricing": {
            "video_provider": pricing.video_provider,
            "video_model": pricing.video_model,
            "video_price_per_second_usd": pricing.video_price_per_second,
            "prompt_provider": pricing.prompt_provider,
            "prompt_estimate_usd": pricing.prompt_per_call,
        },
        "cost": {
            "videos_usd": _usd(spent - prompts * pricing.prompt_per_call),
            "prompts_usd": _usd(prompts * pricing.prompt_per_call),
            "total_usd": _usd(spent),
        },
        "max_cost_usd": max_cost_usd,
        "refused": refused,
    }


def _refusal(row: Row, variant: int, code: str, message: str) -> dict[str, Any]:
    return {"row": row.number, "sku": row.sku, "variant": variant, "code": code, "message": message}
