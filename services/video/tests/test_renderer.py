"""The local renderer's clips: browser-ready H.264 of the exact size and duration and a
poster of the same size (the product's size and the finished ad: test_finishing.py)."""

from dataclasses import replace
from pathlib import Path

import av
import pytest
from PIL import Image

from common.brief import Brief, Shot
from common.errors import JobError
from common.media import FRAME_SIZES, probe_video
from services.video.tests.images import PRODUCT, bottle, mug
from video.config import VideoSettings
from video.poster import extract_poster, poster_time
from video.providers.base import VideoRequest
from video.providers.local import LocalProvider
from video.render.motion import Move, choose_move
from video.validation import check_clip

FPS = 30


@pytest.fixture
def provider(settings: object) -> LocalProvider:
    return LocalProvider(VideoSettings())


def request_for(
    photo: Path, *, aspect: str = "9:16", duration: int = 3, prompt: str = "Slow zoom in."
) -> VideoRequest:
    return VideoRequest(
        job_id="job-1",
        image=photo,
        prompt=prompt,
        title="Stoneware Mug — كوب 🍵",
        aspect_ratio=aspect,
        duration=duration,
        seed=7,
    )


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level atoms in file order."""
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8].decode("latin-1")
        if size == 1:  # a 64-bit size follows
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        boxes.append(kind)
        if size < 8:
            break
        offset += size
    return boxes


def frames(path: Path, *indices: int) -> list[Image.Image]:
    wanted, found = set(indices), {}
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n in wanted:
                found[n] = frame.to_image()
    return [found[i] for i in indices]


@pytest.mark.parametrize("duration", [3, 7])
@pytest.mark.parametrize("aspect", list(FRAME_SIZES))
async def test_clip_is_h264_faststart_of_exact_size_and_duration(
    provider: LocalProvider, tmp_path: Path, aspect: str, duration: int
) -> None:
    photo = write(tmp_path / "mug.jpg", mug())
    seen: list[float] = []

    async def progress(fraction: float) -> None:
        seen.append(fraction)

    request = request_for(photo, aspect=aspect, duration=duration)
    clip = await provider.generate(request, tmp_path, progress)

    info = probe_video(clip)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height) == FRAME_SIZES[aspect]
    assert info.duration == pytest.approx(duration, abs=0.1)
    assert info.frames == duration * FPS
    boxes = top_level_boxes(clip)
    assert boxes.index("moov") < boxes.index("mdat")  # playable before fully downloaded
    with av.open(str(clip)) as container:
        assert not container.streams.audio
    check_clip(info, request)  # what the worker checks before storing

    assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)

    poster = await extract_poster(clip, tmp_path / "poster.jpg", at=poster_time(info.duration))
    with Image.open(poster) as image:
        assert image.format == "JPEG" and image.size == FRAME_SIZES[aspect]


async def test_an_unreadable_photo_is_a_clear_permanent_failure(
    provider: LocalProvider, tmp_path: Path
) -> None:
    photo = write(tmp_path / "photo.png", b"\x89PNG\r\n\x1a\n but not really a png")
    with pytest.raises(JobError) as failure:
        await provider.generate(request_for(photo), tmp_path, _ignore)
    assert failure.value.code == "render_failed" and not failure.value.retryable
    assert "product photo" in failure.value.message


async def test_a_truncated_photo_is_a_clear_permanent_failure(
    provider: LocalProvider, tmp_path: Path
) -> None:
    photo = write(tmp_path / "photo.jpg", mug()[:2000])
    with pytest.raises(JobError) as failure:
        await provider.generate(request_for(photo), tmp_path, _ignore)
    assert failure.value.code == "render_failed" and not failure.value.retryable


async def test_a_clip_of_the_wrong_shape_is_refused(
    provider: LocalProvider, tmp_path: Path
) -> None:
    photo = write(tmp_path / "mug.jpg", mug())
    request = request_for(photo, aspect="1:1", duration=3)
    clip = await provider.generate(request, tmp_path, _ignore)
    info = probe_video(clip)
    for wrong in (
        request_for(photo, aspect="16:9", duration=3),
        request_for(photo, aspect="1:1", duration=5),
    ):
        with pytest.raises(JobError) as failure:
            check_clip(info, wrong)
        assert failure.value.code == "invalid_video"
    assert choose_move(request.prompt) is Move.ZOOM_IN


async def _ignore(fraction: float) -> None:
    pass


@pytest.mark.parametrize("shots", [None, ["hero", "end_card"]])
async def test_the_detail_shot_opens_the_clip_unless_the_brief_leaves_it_out(
    provider: LocalProvider, tmp_path: Path, shots: list[str] | None
) -> None:
    photo = write(tmp_path / "bottle.png", bottle())
    brief = Brief(hook="Cold all day", benefits=[], palette=["#c0392b", "#f4f2ee"])
    if shots:
        brief = brief.model_copy(update={"shots": [Shot(kind=k) for k in shots]})  # type: ignore[arg-type]
    request = replace(request_for(photo, aspect="1:1", duration=3), brief=brief)
    clip = await provider.generate(request, tmp_path, _ignore)
    (first,) = frames(clip, 0)
    red = [
        (x, y)
        for y in range(0, 720, 8)
        for x in range(0, 720, 8)
        if all(abs(a - b) < 40 for a, b in zip(first.getpixel((x, y)), PRODUCT, strict=False))
    ]
    rows = {y for _, y in red}
    # The whole bottle (its cap and base inside the frame) or a close detail filling it.
    whole = min(rows) > 0 and max(rows) < 712
    assert whole == bool(shots)
