"""The ad options of a submission (preset, CTA, price, music, captions, finish) through the
real gateway, broker, database and storage: what a preset fills in, what contradicts it,
what the job says about a length its platform does not favour."""

import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.presets import DURATION_DEFAULT, DURATION_MAX, DURATION_MIN, PRESETS, duration_note
from gateway.models import JobCreate, JobOptions
from gateway.submission import request_fingerprint
from services.gateway.tests.conftest import photo
from services.gateway.tests.test_jobs_api import assert_error

SMALL = photo("JPEG", (320, 256))  # small and quick to decode


async def test_a_preset_fills_the_ratio_and_its_length(gateway) -> None:
    response = await gateway.submit(
        SMALL, preset="tiktok", cta="Shop the drop", price=" €24,90 ", music="off", finish="false"
    )
    assert response.status_code == 202, response.text
    view = response.json()["job"]
    assert view["options"] == {
        "aspect_ratio": "9:16",
        "duration": 9,  # TikTok's shortest best length
        "style": None,
        "preset": "tiktok",
        "cta": "Shop the drop",
        "price": "€24,90",
        "music": "off",
        "captions": "on",
        "finish": False,
    }
    assert view["notes"] == [] and view["brief"] is None
    stored = await gateway.services.db["jobs"].find_one({"_id": view["id"]})
    assert stored["options"] == view["options"] and stored["notes"] == []


async def test_a_length_the_platform_does_not_favour_is_made_with_a_note(gateway) -> None:
    # Amazon ads do best at 15-30 s: the longest clip (10 s) is the nearest.
    response = await gateway.submit(SMALL, preset="amazon", aspect_ratio="16:9")
    assert response.status_code == 202, response.text
    view = response.json()["job"]
    assert (view["options"]["aspect_ratio"], view["options"]["duration"]) == ("16:9", 10)
    assert view["notes"] == ["Amazon ads do best at 15-30 s; made 10 s (clips are 3-10 s long)"]
    # An explicit length is kept, and said when TikTok would not take it.
    response = await gateway.submit(SMALL, preset="tiktok", duration="3")
    view = response.json()["job"]
    assert view["options"]["duration"] == 3
    assert view["notes"] == ["TikTok accepts 5-60 s; this clip is 3 s"]


async def test_a_ratio_against_the_preset_is_refused_in_the_one_error_shape(gateway) -> None:
    response = await gateway.submit(SMALL, preset="youtube", aspect_ratio="9:16", cta="x" * 41)
    error = assert_error(response, 422, "validation_error")
    assert {d["field"] for d in error["details"]} == {"aspect_ratio", "cta"}
    ratio = next(d for d in error["details"] if d["field"] == "aspect_ratio")
    assert "16:9" in ratio["message"]
    await gateway.assert_nothing_left()


async def test_cta_and_price_keep_any_script(gateway) -> None:
    response = await gateway.submit(SMALL, cta="اشترِ الآن 🛒", price="¥3,980")
    assert response.status_code == 202, response.text
    options = response.json()["job"]["options"]
    assert (options["cta"], options["price"]) == ("اشترِ الآن 🛒", "¥3,980")


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


ON_OFF = st.sampled_from(["on", "off", "ON", "loud", ""])
FINISH = st.sampled_from(["true", "false", "1", "0", "maybe"])
TEXT = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), max_size=45)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    preset=_maybe(st.sampled_from([*PRESETS, "myspace"])),
    aspect_ratio=_maybe(st.sampled_from(["9:16", "1:1", "16:9", "4:3"])),
    duration=_maybe(st.integers(DURATION_MIN - 1, DURATION_MAX + 1)),
    cta=_maybe(TEXT),
    price=_maybe(TEXT.map(lambda t: t[:24])),
    music=_maybe(ON_OFF),
    captions=_maybe(ON_OFF),
    finish=_maybe(FINISH),
)
async def test_any_option_values_are_a_job_by_the_rules_or_a_422_naming_them(
    gateway, preset, aspect_ratio, duration, cta, price, music, captions, finish
) -> None:
    fields = {
        "preset": preset,
        "aspect_ratio": aspect_ratio,
        "duration": None if duration is None else str(duration),
        "cta": cta,
        "price": price,
        "music": music,
        "captions": captions,
        "finish": finish,
    }
    response = await gateway.submit(SMALL, **fields)

    # What the rules say about each field: the form's types first (nothing else is looked
    # at while one is wrong), then the text limits and the preset's ratio.
    badly_typed = set()
    if preset is not None and preset not in PRESETS:
        badly_typed.add("preset")
    if aspect_ratio is not None and aspect_ratio not in ("9:16", "1:1", "16:9"):
        badly_typed.add("aspect_ratio")
    if duration is not None and not DURATION_MIN <= duration <= DURATION_MAX:
        badly_typed.add("duration")
    for name, value in (("music", music), ("captions", captions)):
        if value not in (None, "", "on", "off"):
            badly_typed.add(name)
    if finish == "maybe":
        badly_typed.add("finish")
    too_long = {
        name
        for name, value, limit in (("cta", cta, 40), ("price", price, 20))
        if value is not None and len(value.strip()) > limit
    }
    if preset in PRESETS and aspect_ratio not in (None, PRESETS[preset].aspect_ratio):
        too_long.add("aspect_ratio")  # a ratio against the preset

    if badly_typed or too_long:
        error = assert_error(response, 422, "validation_error")
        named = {d["field"] for d in error["details"]}
        assert named == (badly_typed or too_long), error
        return
    assert response.status_code == 202, response.text
    view = response.json()["job"]
    options = view["options"]
    if preset is not None:
        assert options["aspect_ratio"] == PRESETS[preset].aspect_ratio
        expected = duration if duration is not None else PRESETS[preset].default_duration
        assert options["duration"] == expected
        note = duration_note(preset, expected)
        assert view["notes"] == ([note] if note else [])
    else:
        assert options["aspect_ratio"] == (aspect_ratio or "9:16")
        assert options["duration"] == (duration if duration is not None else DURATION_DEFAULT)
        assert view["notes"] == []
    assert options["cta"] == ((cta or "").strip() or None)
    assert options["price"] == ((price or "").strip() or None)
    assert options["music"] == (music or "on") and options["captions"] == (captions or "on")
    assert options["finish"] is (finish not in ("false", "0"))


@pytest.mark.parametrize("field", ["preset", "aspect_ratio"])
async def test_openapi_documents_the_new_fields(gateway, field: str) -> None:
    schema = (await gateway.client.get("/openapi.json")).json()
    body = schema["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]
    form = next(iter(body.values()))["schema"]
    ref = form["$ref"].rsplit("/", 1)[-1]
    properties = schema["components"]["schemas"][ref]["properties"]
    assert {"preset", "cta", "price", "music", "captions", "finish"} <= set(properties)
    assert field in properties
    job = schema["components"]["schemas"]["JobPublic"]["properties"]
    assert "brief" in job and "notes" in job


async def test_a_job_from_before_presets_shows_the_defaults_and_its_brief_once_written(
    gateway,
) -> None:
    accepted = (await gateway.submit(SMALL)).json()
    jobs = gateway.services.db["jobs"]
    # As stored before the ad options existed: none of their keys, no notes.
    unset = {f"options.{key}": "" for key in ("preset", "cta", "price", "music", "captions")}
    await jobs.update_one(
        {"_id": accepted["id"]}, {"$unset": {**unset, "options.finish": "", "notes": ""}}
    )
    headers = {"Authorization": f"Bearer {accepted['token']}"}
    view = (await gateway.client.get(f"/api/v1/jobs/{accepted['id']}", headers=headers)).json()
    assert view["options"]["music"] == "on" and view["options"]["finish"] is True
    assert view["options"]["preset"] is None and view["notes"] == [] and view["brief"] is None

    brief = {
        "hook": "Sturdy red mug",
        "benefits": ["A sturdy red mug"],
        "cta": "Shop now",
        "price": None,
        "palette": ["#c82828", "#fafafa"],
        "mood": "upbeat",
        "shots": [
            {"kind": "detail", "caption": "hook", "focus": [0.5, 0.4]},
            {"kind": "hero", "caption": "benefits", "focus": None},
            {"kind": "end_card", "caption": None, "focus": None},
        ],
    }
    await jobs.update_one({"_id": accepted["id"]}, {"$set": {"brief": brief}})
    view = (await gateway.client.get(f"/api/v1/jobs/{accepted['id']}", headers=headers)).json()
    assert view["brief"] == brief


def test_a_request_without_ad_options_keeps_its_idempotency_fingerprint() -> None:
    old_style = {
        "image": "ab" * 32,
        "title": "Red mug",
        "description": "A sturdy red mug.",
        "options": {"aspect_ratio": "9:16", "duration": 5, "style": None},
    }
    before = hashlib.sha256(
        json.dumps(old_style, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    create = JobCreate(title="Red mug", description="A sturdy red mug.", options=JobOptions())
    assert request_fingerprint(create, "ab" * 32) == before
    # Another CTA is another request: the same key for it is a 409.
    other = create.model_copy(update={"options": JobOptions(cta="Buy it")})
    assert request_fingerprint(other, "ab" * 32) != before
