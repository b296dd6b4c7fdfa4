"""Result reuse: the key (a property test over every field) and the lookup against a real
MongoDB-protocol server and file storage."""

import random
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from common.events import JobStatus
from common.jobs import JobRepository, new_job_id
from common.result_reuse import (
    ResultReuse,
    key_material,
    keys_still_used,
    result_key,
    reused_fields,
)
from common.storage import FileStorage, poster_key, video_key

text = st.text(max_size=30)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), text)
fields = st.fixed_dictionaries(
    {
        "owner": text,
        "image_sha256": st.text("0123456789abcdef", min_size=64, max_size=64),
        "title": text,
        "description": text,
        "options": st.fixed_dictionaries(
            {
                "aspect_ratio": st.sampled_from(["9:16", "1:1", "16:9"]),
                "duration": st.integers(3, 10),
                "style": st.none() | text,
                "preset": st.none() | st.sampled_from(["tiktok", "reels", "feed"]),
                "cta": st.none() | text,
                "price": st.none() | text,
                "music": st.sampled_from(["on", "off"]),
                "captions": st.sampled_from(["on", "off"]),
                "finish": st.booleans(),
            }
        ),
        "prompt_stage": st.fixed_dictionaries(
            {"provider": text, "model": text, "template_version": text}
        ),
        "video_stage": st.fixed_dictionaries({"provider": text, "model": text}),
    }
)


def key_of(f: dict[str, Any]) -> str:
    return result_key(key_material(**f))


def shuffled(mapping: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    items = list(mapping.items())
    rng.shuffle(items)
    return {k: shuffled(v, rng) if isinstance(v, dict) else v for k, v in items}


def same_value(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields, st.randoms(use_true_random=False))
def test_equal_fields_give_equal_keys_whatever_their_order(
    f: dict[str, Any], rng: random.Random
) -> None:
    assert key_of(f) == key_of(shuffled(f, rng))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields, st.data())
def test_any_differing_field_gives_another_key(f: dict[str, Any], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(f)))
    changed = {**f}
    if isinstance(f[name], dict):
        inner = data.draw(st.sampled_from(sorted(f[name])))
        value = data.draw(scalar)
        assume(not same_value(value, f[name][inner]))
        changed[name] = {**f[name], inner: value}
    elif name == "image_sha256":
        value = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64))
        assume(value != f[name])
        changed[name] = value
    else:
        value = data.draw(text)
        assume(value != f[name])
        changed[name] = value
    assert key_of(changed) != key_of(f)


def test_a_job_stored_before_an_option_existed_asks_for_its_default() -> None:
    base: dict[str, Any] = {
        "owner": "a@example.com",
        "image_sha256": "a" * 64,
        "title": "Mug",
        "description": "A mug",
        "prompt_stage": {"provider": "template"},
        "video_stage": {"provider": "local"},
    }
    old = key_material(**base, options={"aspect_ratio": "9:16", "duration": 5, "style": None})
    new = key_material(
        **base,
        options={
            "aspect_ratio": "9:16",
            "duration": 5,
            "style": None,
            "preset": None,
            "cta": None,
            "price": None,
            "music": "on",
            "captions": "on",
            "finish": True,
        },
    )
    assert result_key(old) == result_key(new)


# ----- the lookup, on the real database and storage -----

OWNER = "shop@example.com"


async def completed_job(
    repo: JobRepository, storage: FileStorage, key: str, *, status: JobStatus, **extra: Any
) -> dict[str, Any]:
    job_id = new_job_id()
    await storage.put_bytes(video_key(job_id), b"clip", "video/mp4")
    await storage.put_bytes(poster_key(job_id), b"poster", "image/jpeg")
    job, _ = await repo.create(
        {
            "_id": job_id,
            "owner": OWNER,
            "result_key": key,
            "status": status.value,
            "prompt": {"text": "a prompt", "source": "llm", "model": "m", "cost": 0.01},
            "brief": {"hook": "Mug"},
            "video": {"key": video_key(job_id), "poster_key": poster_key(job_id), "size": 4},
            **extra,
        }
    )
    return job


async def test_only_a_completed_job_of_the_same_owner_with_its_clip_stored_is_reused(
    mongo_db: Any, tmp_path: Path
) -> None:
    repo = JobRepository(mongo_db)
    storage = FileStorage(tmp_path)
    reuse = ResultReuse(mongo_db, storage, prompt_stage={}, video_stage={})
    asking = {"_id": new_job_id(), "owner": OWNER}

    for status in (JobStatus.FAILED, JobStatus.CANCELED, JobStatus.GENERATING):
        await completed_job(repo, storage, "k", status=status)
    await completed_job(repo, storage, "k", status=JobStatus.COMPLETED, owner="other@example.com")
    await completed_job(repo, storage, "other-key", status=JobStatus.COMPLETED)
    assert await reuse.earlier_result(asking, "k") is None

    made = await completed_job(repo, storage, "k", status=JobStatus.COMPLETED)
    found = await reuse.earlier_result(asking, "k")
    assert found is not None and found["_id"] == made["_id"]
    # Asked to be made again, or with reuse switched off: never.
    assert await reuse.earlier_result({**asking, "regenerate": True}, "k") is None
    off = ResultReuse(mongo_db, storage, prompt_stage={}, video_stage={}, enabled=False)
    assert await off.earlier_result(asking, "k") is None

    # Its clip gone from storage: not reused (the job is made anew).
    (tmp_path / made["video"]["key"]).unlink()
    assert await reuse.earlier_result(asking, "k") is None


async def test_a_reusing_job_shares_the_clip_and_keeps_it_from_deletion(
    mongo_db: Any, tmp_path: Path
) -> None:
    repo = JobRepository(mongo_db)
    storage = FileStorage(tmp_path)
    made = await completed_job(repo, storage, "k", status=JobStatus.COMPLETED)
    fields = reused_fields(made, "k")
    assert fields["video"]["key"] == made["video"]["key"]  # shared, not copied
    assert fields["video"]["reused_from"] == made["_id"]
    assert fields["prompt"]["cost"] == 0.0 and fields["prompt"]["source"] == "reused"
    assert fields["brief"] == made["brief"]
    keys = [made["video"]["key"], made["video"]["poster_key"]]
    assert await keys_still_used(mongo_db, keys, except_job=made["_id"]) == set()

    reusing, _ = await repo.create({"_id": new_job_id(), "owner": OWNER, **fields})
    assert await keys_still_used(mongo_db, keys, except_job=made["_id"]) == set(keys)
    # A job reusing the reusing job names the job that made the clip.
    assert reused_fields(reusing, "k")["video"]["reused_from"] == made["_id"]
