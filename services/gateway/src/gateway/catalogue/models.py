"""Request and response models of the catalogue endpoints (the OpenAPI schema)."""

from typing import Literal

from pydantic import BaseModel, Field


class VariantPublic(BaseModel):
    preset: str | None
    aspect_ratio: str
    duration: int
    notes: list[str] = Field(description="Why the length does not suit the preset's platform.")


class QuotePricing(BaseModel):
    video_provider: str
    video_model: str | None
    video_price_per_second_usd: float = Field(description="From OpenRouter's model list.")
    prompt_provider: str
    prompt_estimate_usd: float = Field(description="Per product: one prompt call each.")


class QuoteCost(BaseModel):
    videos_usd: float
    prompts_usd: float
    total_usd: float


class QuoteRefusal(BaseModel):
    row: int
    sku: str
    variant: int = Field(description="Index in `variants`.")
    code: Literal["budget_exhausted", "unsupported_options"]
    message: str


class BatchQuote(BaseModel):
    rows: int = Field(description="Products in the manifest.")
    variants: list[VariantPublic]
    jobs: int = Field(description="Jobs that would be made (rows × variants − refused).")
    pricing: QuotePricing
    cost: QuoteCost = Field(description="The estimate for the jobs that would be made.")
    max_cost_usd: float | None
    refused: list[QuoteRefusal] = Field(
        description="Jobs that would fail: past the cost cap, or a length or ratio the video "
        "model does not make."
    )


class BatchJobError(BaseModel):
    code: str
    message: str


class BatchJob(BaseModel):
    id: str
    variant: int = Field(description="Index in the batch's `variants`.")
    status: str
    error: BatchJobError | None


class BatchRow(BaseModel):
    row: int = Field(description="The manifest's row number (from 1).")
    sku: str
    title: str
    product_id: str | None
    jobs: list[BatchJob] = Field(description="One job per variant, in the variants' order.")


class BatchPublic(BaseModel):
    id: str
    status: Literal["running", "completed", "canceled"]
    created_at: str
    variants: list[VariantPublic]
    max_cost_usd: float | None
    jobs_total: int
    counts: dict[str, int] = Field(description="The batch's jobs by status (every status).")
    cost_usd: float = Field(description="Spent so far: the jobs' prompts and videos.")
    rows: list[BatchRow]
