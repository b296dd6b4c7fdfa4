"""The finished ad, checked from the pixels and samples of real ffmpeg output (never from
the renderer's own report): streams, loudness, captions inside the safe area with readable
contrast, the end card in the last 1.5-2 s, the product filling the frame, every preset's
size and length, music off, finish=false, and an OpenRouter clip finished the same way."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from common.brief import Brief
from common.media import FRAME_SIZES, probe_video
from common.presets import PRESETS, safe_area
from services.video.tests.images import PRODUCT, bottle
from video.config import VideoSettings
from video.fidelity import FRAME_SIDE, frames, score, score_frames
from video.finishing import Finished, finish
from video.finishing.captions import font_sizes
from video.finishing.loudness import TARGET_LUFS, measure
from video.finishing.text import contrast
from video.providers.base import VideoRequest
from video.providers.local import LocalProvider
from video.providers.openrouter import OpenRouterVideoProvider
from video.render.ffmpeg import run_ffmpeg

BRIEF = Brief(
    hook="Cold drinks stay cold all day",
    benefits=["Keeps ice for 24 hours", "Leak-proof lid"],
    cta="Shop now",
    price="$29",
    palette=["#c0392b", "#f4f2ee", "#1d2b4f"],
    mood="upbeat",
)


def request(photo: Path, aspect: str, duration: int, **options: object) -> VideoRequest:
    return VideoRequest(
        job_id="job-ad",
        image=photo,
        prompt="Slow zoom in on the bottle.",
        title="Trail Bottle",
        aspect_ratio=aspect,
        duration=duration,
        seed=3,
        brief=BRIEF,
        **options,  # type: ignore[arg-type]
    )


async def _ignore(fraction: float) -> None:
    pass


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@dataclass
class Ad:
    raw: Path
    finished: Finished
    request: VideoRequest

    @property
    def path(self) -> Path:
        return self.finished.path


async def make_ad(workdir: Path, aspect: str, duration: int, **options: object) -> Ad:
    photo = _write(workdir / "bottle.png", bottle())
    req = request(photo, aspect, duration, **options)
    raw = await LocalProvider(VideoSettings()).generate(req, workdir, _ignore)
    info = probe_video(raw)
    done = await finish(raw, req, workdir, duration=info.duration, fps=info.fps, time_limit=240)
    return Ad(raw, done, req)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ads")


@pytest.fixture(scope="module")
async def tall_ad(workdir: Path) -> Ad:
    """One 5 s 9:16 ad, shared by the assertions on it."""
    return await make_ad(workdir / "tall", "9:16", 5)


def frame_at(path: Path, t: float) -> np.ndarray:
    """The frame shown at t seconds, RGB."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        wanted = round(t * fps)
        for n, frame in enumerate(container.decode(video=0)):
            if n == wanted:
                return np.asarray(frame.to_image().convert("RGB"), dtype=np.int16)
    raise AssertionError(f"no frame at {t}s")


def changed(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean absolute difference of two frames inside box (left, top, right, bottom)."""
    left, top, right, bottom = box
    return float(np.abs(a[top:bottom, left:right] - b[top:bottom, left:right]).mean())


def outside(box: tuple[int, int, int, int], frame: tuple[int, int]) -> np.ndarray:
    mask = np.ones((frame[1], frame[0]), dtype=bool)
    left, top, right, bottom = box
    mask[top:bottom, left:right] = False
    return mask


async def test_streams_are_h264_and_aac_48k_stereo_at_minus_14_lufs(tall_ad: Ad) -> None:
    with av.open(str(tall_ad.path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (video.codec_context.width, video.codec_context.height) == (720, 1280)
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == 48_000 and audio.codec_context.channels == 2
    assert probe_video(tall_ad.path).duration == pytest.approx(5, abs=0.1)
    measured = await measure(tall_ad.path)
    assert measured.integrated == pytest.approx(TARGET_LUFS, abs=1.0)
    assert measured.true_peak is not None and measured.true_peak <= -1.0
    assert tall_ad.finished.audio["loudness_lufs"] == pytest.approx(measured.integrated)


async def test_captions_show_inside_the_safe_area_when_planned_and_read_clearly(
    tall_ad: Ad,
) -> None:
    frame = FRAME_SIZES["9:16"]
    box = safe_area("9:16").box(*frame)
    hook, *benefits = tall_ad.finished.timeline.captions
    assert hook.start <= 1.5 and hook.end - hook.start >= 1.2 + 0.0
    for caption in (hook, *benefits):
        t = (caption.start + caption.end) / 2
        ad, raw = frame_at(tall_ad.path, t), frame_at(tall_ad.raw, t)
        assert changed(ad, raw, box) > 4, f"no caption at {t}s"
        # Nothing outside the safe area changed (encoding noise only).
        assert np.abs(ad - raw)[outside(box, frame)].mean() < 2.0
        # White text on its plate: the brightest and the typical changed pixels contrast.
        diff = np.abs(ad - raw).sum(axis=2) > 60
        region = ad[diff]
        lum = region.mean(axis=1)
        text = tuple(int(v) for v in region[lum >= np.percentile(lum, 97)].mean(axis=0))
        plate = tuple(int(v) for v in np.median(region[lum <= np.percentile(lum, 50)], axis=0))
        assert contrast(text, plate) >= 4.5, (text, plate)  # type: ignore[arg-type]
    # Before the hook fades in, the frame is the clip's own.
    assert changed(frame_at(tall_ad.path, 0), frame_at(tall_ad.raw, 0), box) < 2.0


async def test_the_end_card_covers_the_last_one_and_a_half_to_two_seconds(tall_ad: Ad) -> None:
    frame = FRAME_SIZES["9:16"]
    strip = (0, frame[1] - 120, frame[0], frame[1])  # below the safe area: no caption there
    duration = probe_video(tall_ad.path).duration
    times = [round(duration - 2.3 + i / 10, 2) for i in range(23)]
    shown = [
        t for t in times if changed(frame_at(tall_ad.path, t), frame_at(tall_ad.raw, t), strip) > 12
    ]
    assert shown, "no end card"
    first = shown[0]
    assert 1.5 - 0.35 <= duration - first <= 2.0 + 0.05  # the card fades in over 0.3 s
    assert shown == [t for t in times if t >= first]  # and stays to the end


async def test_the_product_fills_the_frame_in_the_hero_shot(tall_ad: Ad) -> None:
    start, end = tall_ad.finished.timeline.hero
    image = frame_at(tall_ad.raw, (start + end) / 2 + 0.3)
    red = np.abs(image - np.array(PRODUCT)).max(axis=2) < 40
    rows, cols = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    height = rows[-1] - rows[0] + 1
    width = cols[-1] - cols[0] + 1
    frame_h = FRAME_SIZES["9:16"][1]
    # The bottle is tall: its height spans at least 70 % of the frame's height.
    assert height >= 0.7 * frame_h, (width, height)
    assert rows[0] > 0 and rows[-1] < frame_h - 1  # whole, not cut
    # Not stretched: the photo's bottle is 0.4 x 0.8 of a 600 x 900 photo.
    assert width / height == pytest.approx((0.4 * 600) / (0.8 * 900), rel=0.06)


def test_caption_font_sizes_meet_the_phone_minimum() -> None:
    for aspect, share in (("9:16", 0.035), ("16:9", 0.045), ("1:1", 0.045)):
        frame = FRAME_SIZES[aspect]
        assert min(font_sizes(frame, "benefit")) >= share * frame[1] - 0.5


@pytest.fixture(scope="module")
async def raw_clips(workdir: Path) -> dict[str, tuple[Path, VideoRequest]]:
    """One short raw clip per aspect ratio, for finishing with every preset."""
    clips = {}
    for aspect in FRAME_SIZES:
        folder = workdir / f"raw-{aspect.replace(':', 'x')}"
        photo = _write(folder / "bottle.png", bottle(cut_out=True))
        req = request(photo, aspect, 3)
        clips[aspect] = (await LocalProvider(VideoSettings()).generate(req, folder, _ignore), req)
    return clips


@pytest.mark.parametrize("preset", list(PRESETS))
async def test_each_preset_gives_its_frame_size_and_length(
    raw_clips: dict[str, tuple[Path, VideoRequest]], workdir: Path, preset: str
) -> None:
    aspect = PRESETS[preset].aspect_ratio
    raw, req = raw_clips[aspect]
    folder = _dir(workdir / f"preset-{preset}")
    req = VideoRequest(**{**req.__dict__, "preset": preset})
    done = await finish(raw, req, folder, duration=3.0, fps=30, time_limit=240)
    info = probe_video(done.path)
    assert (info.width, info.height) == FRAME_SIZES[aspect]
    assert info.duration == pytest.approx(3, abs=0.1)
    hook = done.timeline.captions[0]
    t = (hook.start + min(hook.end, done.timeline.end_card_at)) / 2
    box = PRESETS[preset].safe.box(*FRAME_SIZES[aspect])
    ad, before = frame_at(done.path, t), frame_at(raw, t)
    assert changed(ad, before, box) > 3
    assert np.abs(ad - before)[outside(box, FRAME_SIZES[aspect])].mean() < 2.0


async def test_music_off_gives_a_silent_aac_track(
    raw_clips: dict[str, tuple[Path, VideoRequest]], workdir: Path
) -> None:
    raw, req = raw_clips["1:1"]
    folder = _dir(workdir / "silent")
    req = VideoRequest(**{**req.__dict__, "music": "off", "captions": "off"})
    done = await finish(raw, req, folder, duration=3.0, fps=30, time_limit=240)
    with av.open(str(done.path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert (await measure(done.path)).silent
    assert done.audio["loudness_lufs"] is None
    assert done.timeline.captions == ()


async def test_a_clip_with_its_own_sound_keeps_it_levelled_even_with_music_off(
    raw_clips: dict[str, tuple[Path, VideoRequest]], workdir: Path
) -> None:
    raw, req = raw_clips["16:9"]
    folder = _dir(workdir / "own-sound")
    voiced = folder / "voiced.mp4"
    # The clip with a quiet 440 Hz tone of its own, as a model that makes audio would.
    await run_ffmpeg(
        [
            "-i",
            str(raw),
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=3",
            "-filter_complex",
            "[1:a]volume=-30dB[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            "-y",
            str(voiced),
        ],
        time_limit=120,
    )
    req = VideoRequest(**{**req.__dict__, "music": "off"})
    done = await finish(voiced, req, folder, duration=3.0, fps=30, time_limit=240)
    measured = await measure(done.path)
    assert measured.integrated == pytest.approx(TARGET_LUFS, abs=1.0)
    assert not (folder / "bed.wav").exists()  # no music bed was made: the tone is kept


@pytest.fixture(scope="module")
def fake_model_clip(workdir: Path) -> Iterator[Path]:
    """What the fake OpenRouter serves for a 3 s 9:16 job (a test pattern, not the photo)."""
    from tests.support.fake_openrouter import CLIP_SIZES, FakeOpenRouter

    folder = workdir / "openrouter"
    folder.mkdir()
    fake = FakeOpenRouter(folder)
    raw = folder / "openrouter.mp4"
    raw.write_bytes(fake._clip(*CLIP_SIZES["9:16"], 3))
    yield raw


async def test_an_openrouter_clip_is_finished_the_same_way_and_scored(
    fake_model_clip: Path, raw_clips: dict[str, tuple[Path, VideoRequest]], workdir: Path
) -> None:
    folder = fake_model_clip.parent
    _, req = raw_clips["9:16"]
    provider = OpenRouterVideoProvider(VideoSettings(openrouter_api_key="unused"))
    conformed = await provider.conform(fake_model_clip, req, folder / "conformed.mp4")
    info = probe_video(conformed)
    done = await finish(
        conformed, req, folder, duration=info.duration, fps=info.fps, time_limit=240
    )
    with av.open(str(done.path)) as container:
        assert container.streams.audio[0].codec_context.sample_rate == 48_000
    assert probe_video(done.path).duration == pytest.approx(3, abs=0.1)
    t = done.timeline.captions[0].start + 0.5
    assert (
        changed(frame_at(done.path, t), frame_at(conformed, t), safe_area("9:16").box(720, 1280))
        > 4
    )
    # A test pattern keeps nothing of the bottle; the local clip of it keeps it well.
    assert score(req.image, conformed) < 0.45
    local_raw, _ = raw_clips["9:16"]
    assert score(req.image, local_raw) > score(req.image, conformed)


def fully_decoded(clip: Path) -> list[Image.Image]:
    """The clip's first and middle frames, every frame decoded with every filter."""
    with av.open(str(clip)) as container:
        decoded = [frame.to_image() for frame in container.decode(video=0)]
    return [decoded[0], decoded[len(decoded) // 2]]


async def test_the_quick_decoding_scores_as_the_full_one(
    fake_model_clip: Path, raw_clips: dict[str, tuple[Path, VideoRequest]]
) -> None:
    """The score decodes for a thumbnail (no deblocking, most B-frames skipped, frames
    converted small): the owner sees the same fidelity as from every frame decoded in
    full, on a clip that keeps the product and on one that keeps nothing of it."""
    clips = [(clip, req.image) for clip, req in raw_clips.values()]
    clips.append((fake_model_clip, raw_clips["9:16"][1].image))
    for clip, photo in clips:
        quick, full = frames(clip), fully_decoded(clip)
        assert [f.width / f.height for f in quick] == pytest.approx(
            [f.width / f.height for f in full], rel=0.01
        )
        assert max(quick[0].size) == min(max(full[0].size), FRAME_SIDE)
        assert score_frames(photo, quick) == pytest.approx(score_frames(photo, full), abs=0.02), (
            clip
        )


def encoding(clip: Path) -> tuple[Any, ...]:
    """Profile, pixel format, colour tags (1: BT.709; range 1: limited) and the longest
    wait for a keyframe (x264 adds one at a cut), in seconds."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        keyframes = [
            round(float(frame.time or 0), 1)
            for frame in container.decode(stream)
            if frame.key_frame
        ]
        tags = (codec.color_primaries, codec.color_trc, codec.colorspace, codec.color_range)
        ends = [*keyframes, float(stream.duration * stream.time_base)]  # type: ignore[operator]
        wait = max(b - a for a, b in itertools.pairwise(ends))
        return (codec.profile, codec.pix_fmt, tags, round(wait, 1))


async def test_every_clip_we_store_has_one_encoding(
    tall_ad: Ad, raw_clips: dict[str, tuple[Path, VideoRequest]], workdir: Path
) -> None:
    """The local render, the finished ad and a model's clip scaled to its frame (here
    30 fps and a few pixels off) are High profile 4:2:0, tagged BT.709, and seek from a
    keyframe every two seconds (a player must not guess their colours)."""
    model = workdir / "model-30fps.mp4"
    await run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=size=724x1286:rate=30", "-t", "3", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-y", str(model)],
        time_limit=120,
    )  # fmt: skip
    provider = OpenRouterVideoProvider(VideoSettings(openrouter_api_key="unused"))
    _, req = raw_clips["9:16"]
    conformed = await provider.conform(model, req, workdir / "model-conformed.mp4")
    assert probe_video(conformed).width == 720

    bt709 = (1, 1, 1, 1)
    for clip in (raw_clips["9:16"][0], tall_ad.path, conformed):
        profile, pix_fmt, tags, wait = encoding(clip)
        assert (profile, pix_fmt, tags) == ("High", "yuv420p", bt709), clip.name
        assert wait <= 2.0, clip.name
