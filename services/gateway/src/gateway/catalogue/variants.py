"""Variants: the cuts every product is made in (`{preset | aspect_ratio, duration}`, at most
six), checked against the one table of presets (`common.presets`).

`Variant` is the request model (POST /api/v1/jobs and batches take a JSON list of them);
`resolve` gives each one its ratio and length as a job stores them.
"""

from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from common.errors import ApiError
from common.presets import DURATION_DEFAULT, DURATION_MAX, DURATION_MIN, PRESETS, duration_note
from gateway.models import AspectRatio

MAX_VARIANTS = 6


class Variant(BaseModel):
    """One cut of a product: a platform preset (which names the ratio) or a ratio, and a
    length (default: the preset's, else 5 s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str | None = Field(
        default=None,
        description=f"One of {', '.join(PRESETS)}; gives the aspect ratio.",
        json_schema_extra={"enum": list(PRESETS)},
    )
    aspect_ratio: AspectRatio | None = Field(
        default=None, description="Needed without a preset; with one it must agree."
    )
    duration: int | None = Field(
        default=None,
        ge=DURATION_MIN,
        le=DURATION_MAX,
        description=f"Seconds; default: the preset's default length, else {DURATION_DEFAULT}.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.preset is None:
            if self.aspect_ratio is None:
                raise ValueError("give a preset or an aspect_ratio")
            return self
        preset = PRESETS.get(self.preset)
        if preset is None:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
        if self.aspect_ratio is not None and self.aspect_ratio != preset.aspect_ratio:
            raise ValueError(
                f"the {preset.label} preset is {preset.aspect_ratio}, not {self.aspect_ratio}"
            )
        return self


@dataclass(frozen=True)
class ResolvedVariant:
    """A variant as a job stores it: its ratio and length filled in, and the note the job
    carries when the length does not suit the preset's platform."""

    preset: str | None
    aspect_ratio: str
    duration: int
    note: str | None

    def public(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "aspect_ratio": self.aspect_ratio,
            "duration": self.duration,
            "notes": [self.note] if self.note else [],
        }


def resolve(variant: Variant) -> ResolvedVariant:
    if variant.preset is None:
        assert variant.aspect_ratio is not None  # the model's validator saw to it
        return ResolvedVariant(
            None, variant.aspect_ratio, variant.duration or DURATION_DEFAULT, note=None
        )
    preset = PRESETS[variant.preset]
    duration = variant.duration or preset.default_duration
    return ResolvedVariant(
        preset.name, preset.aspect_ratio, duration, duration_note(preset.name, duration)
    )


def _unique(variants: list[Variant]) -> list[Variant]:
    seen: set[ResolvedVariant] = set()
    for index, variant in enumerate(variants):
        resolved = resolve(variant)
        if resolved in seen:
            raise ValueError(f"variant {index} repeats an earlier one")
        seen.add(resolved)
    return variants


class Variants(BaseModel):
    """The `variants` of a request: 1 to 6 distinct cuts."""

    variants: list[Variant] = Field(min_length=1, max_length=MAX_VARIANTS)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        _unique(self.variants)
        return self


_LIST = TypeAdapter(list[Any])


def _location(loc: tuple[int | str, ...]) -> str:
    """`variants`, `variants[2]`, `variants[2].duration` from a pydantic error location."""
    path = "variants"
    for part in loc[1:]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def variant_problems(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "row": None,
            "field": _location(problem["loc"]),
            "message": str(problem["msg"]).removeprefix("Value error, "),
        }
        for problem in error.errors(include_url=False)
    ]


def parse_variants(text: str | None) -> list[ResolvedVariant]:
    """The `variants` form field (a JSON list) as resolved variants; without it, one
    variant of the defaults. 422 listing every problem."""
    if text is None or not text.strip():
        return [resolve(Variant(aspect_ratio="9:16"))]
    try:
        items = _LIST.validate_json(text)
    except ValidationError:
        raise invalid_variants(
            [{"row": None, "field": "variants", "message": "A JSON list of variants."}]
        ) from None
    try:
        checked = Variants(variants=items)
    except ValidationError as e:
        raise invalid_variants(variant_problems(e)) from None
    return [resolve(v) for v in checked.variants]


def invalid_variants(details: list[dict[str, Any]]) -> ApiError:
    return ApiError(422, "validation_error", "The variants are not valid.", details=details)
