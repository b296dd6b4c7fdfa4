"""Which edits still reuse a prompt, and which ask for a new one."""

from prompt.providers.base import VideoOptions
from prompt.reuse import reuse_key

SHA = "a" * 64


def key(**changes: object) -> str:
    args: dict[str, object] = {
        "image_sha256": SHA,
        "title": "Stoneware Mug",
        "description": "Hand-thrown mug, speckled glaze.",
        "options": VideoOptions("9:16", 5, None),
        "template_version": "t1",
        "provider": "template",
        "model": "template-t1",
        "owner": "me@example.com",
    }
    return reuse_key(**{**args, **changes})  # type: ignore[arg-type]


def test_case_whitespace_and_unicode_form_do_not_matter() -> None:
    assert key() == key(title="  stoneware   MUG ")
    assert key() == key(description="Hand-thrown mug,\n  speckled GLAZE.")
    # "é" composed and decomposed are the same text.
    assert key(title="Caf\u00e9 Mug") == key(title="Cafe\u0301 mug")


def test_another_photo_text_option_version_or_model_is_another_prompt() -> None:
    base = key()
    assert base != key(image_sha256="b" * 64)
    assert base != key(options=VideoOptions("9:16", 6, None))
    assert base != key(options=VideoOptions("16:9", 5, None))
    assert base != key(options=VideoOptions("9:16", 5, "luxury"))
    assert base != key(description="Hand-thrown mug, matte glaze.")
    assert base != key(template_version="t2")
    assert base != key(provider="openrouter", model="google/gemini-2.5-flash")
    # Another owner's identical product is another prompt, unless reuse is shared.
    assert base != key(owner="you@example.com")
    assert key(owner=None) != base and key(owner=None) == key(owner=None)
