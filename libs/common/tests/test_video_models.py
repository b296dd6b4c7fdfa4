"""A video model's price per second from OpenRouter's `pricing_skus`."""

from common.video_models import price_per_second


def skus(*pairs: tuple[str, object]) -> dict[str, object]:
    return {"pricing_skus": [{"sku": sku, "price_per_second": price} for sku, price in pairs]}


def test_the_sku_of_the_resolution_else_the_dearest() -> None:
    model = skus(("video-480p", "0.04"), ("video-720p", "0.07"), ("video-1080p", 0.12))
    assert price_per_second(model, "720p") == 0.07
    assert price_per_second(model, "1080p") == 0.12
    assert price_per_second(model, "4k") == 0.12  # not listed: an estimate errs high
    assert price_per_second(skus(("video-1720p", "9"), ("video", "0.05")), "720p") == 9


def test_no_usable_price() -> None:
    assert price_per_second({}, "720p") is None
    assert price_per_second(skus(("video-720p", "free")), "720p") is None
    assert price_per_second(skus(("video-720p", "nan"), ("x", True), ("y", -1)), "720p") is None
    assert price_per_second({"pricing_skus": ["0.07", None]}, "720p") is None
