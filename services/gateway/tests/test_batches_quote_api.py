"""POST /api/v1/batches/quote on a real gateway (broker, database, storage) with the fake
OpenRouter: the whole request checked (every bad row in one 422, nothing stored), the cost
from the video model's listed price, the cost cap, and what the model cannot make."""

import io
import json
import os
import zipfile
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.gateway.tests.conftest import Gateway, photo
from tests.support.fake_openrouter import FakeOpenRouter, Fault

QUOTE = "/api/v1/batches/quote"
PRICE = 0.07  # the fake's seedance price per second at 720p
PROMPT = 0.003  # PROMPT_COST_ESTIMATE_USD's default
MIB = 1024 * 1024


def manifest(*rows: dict[str, str], header: str = "sku,title,description,image") -> bytes:
    names = header.split(",")
    lines = [header] + [",".join(row.get(name, "") for name in names) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def row(n: int, image: str | None = None) -> dict[str, str]:
    return {
        "sku": f"SKU-{n}",
        "title": f"Mug {n}",
        "description": "A sturdy mug.",
        "image": image or f"mug-{n}.jpg",
    }


def photos_zip(**files: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"shoot/{name}", data)
    return buf.getvalue()


async def quote(
    gateway: Gateway,
    manifest_data: bytes,
    photos: bytes | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    files: dict[str, Any] = {"manifest": ("products.csv", manifest_data, "text/csv")}
    if photos is not None:
        files["photos"] = ("photos.zip" if photos else "", photos, "application/zip")
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    auth = await gateway.auth() if headers is None else headers
    return await gateway.client.post(QUOTE, files=files, data=data, headers=auth)


@pytest.fixture
def paid(start_gateway: Callable[..., Any], fake: FakeOpenRouter) -> Callable[..., Any]:
    """A gateway whose workers use OpenRouter for prompts and clips (the fake)."""

    def start(**overrides: Any) -> Any:
        return start_gateway(
            video_provider="openrouter",
            prompt_provider="openrouter",
            openrouter_api_key=SecretStr(fake.api_key),
            openrouter_base_url=fake.base_url,
            openrouter_models_ttl_seconds=0,
            **overrides,
        )

    return start


@pytest.fixture
async def paid_gateway(paid: Callable[..., Any]) -> AsyncIterator[Gateway]:
    async with paid() as running:
        yield running


async def test_a_local_batch_costs_nothing_and_nothing_is_stored(gateway: Gateway) -> None:
    rows = [row(1), row(2), row(3, "https://shop.example/p/3.jpg")]
    # Larger than the 1 MiB of other request bodies; what the manifest does not name is
    # never read.
    zipped = photos_zip(
        **{"mug-1.jpg": photo(), "mug-2.jpg": photo(fmt="PNG"), "notes.bin": os.urandom(MIB)}
    )
    assert len(zipped) > MIB
    variants = [{"preset": "reels"}, {"preset": "feed"}]
    response = await quote(gateway, manifest(*rows), zipped, variants=variants)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rows"] == 3
    assert body["jobs"] == 6
    assert body["cost"] == {"videos_usd": 0, "prompts_usd": 0, "total_usd": 0}
    assert body["pricing"]["video_provider"] == "local"
    assert [v["aspect_ratio"] for v in body["variants"]] == ["9:16", "1:1"]
    assert body["refused"] == []
    await gateway.assert_nothing_left()


async def test_the_openrouter_price_times_length_and_variants_plus_prompts(
    paid_gateway: Gateway, fake: FakeOpenRouter
) -> None:
    rows = [row(n, f"https://shop.example/{n}.jpg") for n in range(1, 4)]
    variants = [{"preset": "reels", "duration": 5}, {"aspect_ratio": "16:9", "duration": 8}]
    response = await quote(paid_gateway, manifest(*rows), variants=variants)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["jobs"] == 6
    assert body["pricing"] == {
        "video_provider": "openrouter",
        "video_model": "bytedance/seedance-2.0",
        "video_price_per_second_usd": PRICE,
        "prompt_provider": "openrouter",
        "prompt_estimate_usd": PROMPT,
    }
    assert body["cost"]["videos_usd"] == pytest.approx(3 * PRICE * (5 + 8))
    assert body["cost"]["prompts_usd"] == pytest.approx(3 * PROMPT)  # one call per product
    assert body["cost"]["total_usd"] == pytest.approx(3 * (PRICE * 13 + PROMPT))
    assert len(fake.calls("GET /videos/models")) == 1
    assert fake.calls("POST /videos") == [] and fake.calls("POST /chat/completions") == []
    await paid_gateway.assert_nothing_left()


async def test_the_cost_cap_says_which_jobs_would_be_refused(paid_gateway: Gateway) -> None:
    rows = [row(n, f"https://shop.example/{n}.jpg") for n in range(1, 4)]
    variants = [{"aspect_ratio": "9:16", "duration": 5}, {"aspect_ratio": "1:1", "duration": 8}]
    # Row 1 costs 0.35 + 0.56 + a prompt; row 2's first clip would pass $1.
    response = await quote(paid_gateway, manifest(*rows), variants=variants, max_cost_usd="1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["jobs"] == 2
    assert body["cost"]["total_usd"] == pytest.approx(PRICE * 13 + PROMPT)
    assert body["max_cost_usd"] == 1
    assert [(r["row"], r["sku"], r["variant"], r["code"]) for r in body["refused"]] == [
        (2, "SKU-2", 0, "budget_exhausted"),
        (2, "SKU-2", 1, "budget_exhausted"),
        (3, "SKU-3", 0, "budget_exhausted"),
        (3, "SKU-3", 1, "budget_exhausted"),
    ]


async def test_lengths_the_model_does_not_make_would_be_refused(
    paid_gateway: Gateway, fake: FakeOpenRouter
) -> None:
    fake.models[0]["supported_durations"] = [5, 10]
    variants = [{"aspect_ratio": "9:16", "duration": 5}, {"aspect_ratio": "9:16", "duration": 8}]
    response = await quote(
        paid_gateway, manifest(row(1, "https://shop.example/1.jpg")), variants=variants
    )
    body = response.json()
    assert body["jobs"] == 1
    assert [(r["variant"], r["code"]) for r in body["refused"]] == [(1, "unsupported_options")]
    assert "8-second" in body["refused"][0]["message"]


async def test_no_price_to_be_had_is_a_503(paid_gateway: Gateway, fake: FakeOpenRouter) -> None:
    fake.fail("GET /videos/models", Fault(status=500, message="down"))
    response = await quote(paid_gateway, manifest(row(1, "https://shop.example/1.jpg")))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "price_unavailable"
    assert "Retry-After" in response.headers
    fake.models[0]["pricing_skus"] = []
    response = await quote(paid_gateway, manifest(row(1, "https://shop.example/1.jpg")))
    assert response.status_code == 503
    assert "no price" in response.json()["error"]["message"]


async def test_every_bad_row_in_one_422_and_nothing_stored(gateway: Gateway) -> None:
    rows = [
        row(1),  # fine
        row(2),  # not in the zip
        row(3),  # in the zip, but not an image
        row(4),  # in the zip, too small
        row(5, "../mug-1.jpg"),
        row(1, "https://shop.example/1.jpg"),  # the same sku again
        {**row(7, "http://shop.example/7.jpg"), "title": ""},
    ]
    zipped = photos_zip(
        **{
            "mug-1.jpg": photo(),
            "mug-3.jpg": b"<html>not a photo</html>",
            "mug-4.jpg": photo(size=(100, 100)),
        }
    )
    variants = [{"preset": "reels", "aspect_ratio": "1:1"}]
    response = await quote(gateway, manifest(*rows), zipped, variants=variants)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    found = [(d["row"], d["field"]) for d in error["details"]]
    assert found == [
        (None, "variants[0]"),
        (2, "image"),
        (3, "image"),
        (4, "image"),
        (5, "image"),
        (6, "sku"),
        (7, "title"),
        (7, "image"),
    ]
    messages = {(d["row"], d["field"]): d["message"] for d in error["details"]}
    assert "not in the photos zip" in messages[(2, "image")]
    assert "JPEG, PNG or WebP" in messages[(3, "image")]
    assert "at least 256 pixels" in messages[(4, "image")]
    await gateway.assert_nothing_left()


async def test_an_unsafe_zip_or_missing_zip(gateway: Gateway) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("../mug-1.jpg", photo())
    response = await quote(gateway, manifest(row(1)), buf.getvalue())
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert [(d["row"], d["field"]) for d in details] == [(None, "photos")]
    assert "'..'" in details[0]["message"]

    for empty in (None, b""):  # no photos part, or a form's file input left empty
        response = await quote(gateway, manifest(row(1)), empty)
        details = response.json()["error"]["details"]
        assert [(d["row"], d["field"]) for d in details] == [(1, "image")]
        assert "no photos zip" in details[0]["message"]


async def test_limits_and_sign_in(start_gateway: Callable[..., Any]) -> None:
    limits = {"batch_max_rows": 2, "batch_manifest_max_bytes": 300, "batch_photos_max_bytes": 5000}
    async with start_gateway(**limits) as gateway:
        rows = [row(n, f"https://shop.example/{n}.jpg") for n in range(1, 4)]
        response = await quote(gateway, manifest(*rows))
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["message"] == (
            "At most 2 rows per batch (this manifest has 3)."
        )
        big = manifest(*[row(n, f"https://shop.example/{n}.jpg") for n in range(1, 9)])
        response = await quote(gateway, big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "upload_too_large"
        for size in (6000, 200_000):  # within the form's overhead, and past it
            response = await quote(gateway, manifest(row(1)), photos_zip(a=os.urandom(size)))
            assert response.status_code == 413
            assert response.json()["error"]["code"] == "upload_too_large"
        response = await quote(gateway, manifest(row(1)), headers={})
        assert response.status_code == 401


async def test_the_quote_is_documented(gateway: Gateway) -> None:
    schema = (await gateway.client.get("/openapi.json")).json()
    operation = schema["paths"][QUOTE]["post"]
    assert set(operation["responses"]) >= {"200", "401", "413", "422", "503"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/BatchQuote"}
    assert {"QuoteRefusal", "QuoteCost", "VariantPublic"} <= set(schema["components"]["schemas"])


async def test_an_api_key_quotes_only_with_the_batches_scope(gateway: Gateway) -> None:
    async def key_with(scopes: list[str]) -> dict[str, str]:
        created = await gateway.client.post(
            "/api/v1/api-keys",
            json={"name": "shop sync", "scopes": scopes},
            headers=await gateway.auth(),
        )
        assert created.status_code == 201, created.text
        return {"Authorization": f"Bearer {created.json()['key']}"}

    refused = await quote(
        gateway,
        manifest(row(1, "https://shop.example/1.jpg")),
        headers=await key_with(["jobs:write"]),
    )
    assert refused.status_code == 403, refused.text
    assert "batches:write" in refused.json()["error"]["message"]
    allowed = await quote(
        gateway,
        manifest(row(1, "https://shop.example/1.jpg")),
        headers=await key_with(["batches:write"]),
    )
    assert allowed.status_code == 200, allowed.text
