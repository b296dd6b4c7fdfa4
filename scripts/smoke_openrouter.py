"""`make smoke-openrouter`: one real clip through both OpenRouter providers, against the
real API, with the same code the workers run (the prompt writer, then the video provider
polled until the clip is there). It spends real money: about $0.01 for the prompt and the
video model's price for one clip (Seedance 2.0 at 720p: roughly $0.35 for 5 s).

Without OPENROUTER_API_KEY it says what it would do and exits 0.

    OPENROUTER_API_KEY=sk-or-... make smoke-openrouter
    uv run python scripts/smoke_openrouter.py --photo mug.jpg --title "Stoneware mug"
"""

import argparse
import asyncio
import hashlib
import io
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from common.errors import JobError
from common.media import probe_video
from prompt import photo_facts
from prompt.config import PromptSettings
from prompt.providers.base import PromptRequest, VideoOptions
from prompt.providers.openrouter import OpenRouterPromptProvider
from video.config import VideoSettings
from video.providers.base import PollLater, VideoRequest
from video.providers.openrouter import OpenRouterVideoProvider

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".data" / "smoke" / "openrouter.mp4"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, help="a product photo (default: a drawn mug)")
    parser.add_argument("--title", default="Stoneware coffee mug")
    parser.add_argument("--description", default="Hand-glazed stoneware mug in deep blue, 350 ml.")
    parser.add_argument("--aspect-ratio", default="9:16", choices=["9:16", "1:1", "16:9"])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    return parser.parse_args()


def drawn_mug() -> bytes:
    """A plain product shot: a blue mug on a light backdrop."""
    image = Image.new("RGB", (1024, 1024), (236, 232, 226))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle([330, 300, 650, 760], radius=40, fill=(28, 52, 120))
    draw.ellipse([600, 420, 760, 620], outline=(28, 52, 120), width=36)
    draw.ellipse([330, 270, 650, 330], fill=(40, 68, 150))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def plan(args: argparse.Namespace) -> None:
    prompt, video = PromptSettings(), VideoSettings()
    print("OPENROUTER_API_KEY is not set: nothing is sent. With a key this would:")
    print(f"  1. POST {prompt.openrouter_base_url}/chat/completions with the photo")
    print(f"     ({args.photo or 'a drawn mug'}) to {prompt.openrouter_prompt_model},")
    print("     asking for a video prompt as JSON (prompt, camera_motion, mood);")
    print(f"  2. GET /videos/models and check {video.openrouter_video_model} makes a")
    print(f"     {args.duration}-second {args.aspect_ratio} clip;")
    print("  3. POST /videos with the photo as first_frame (one paid job), then poll")
    print(f"     GET /videos/{{id}} every {video.openrouter_poll_interval_seconds:g}s or so;")
    print(f"  4. download /videos/{{id}}/content?index=0 to {args.out} and print the cost.")


async def smoke(args: argparse.Namespace) -> int:
    photo = args.photo.read_bytes() if args.photo else drawn_mug()
    options = VideoOptions(args.aspect_ratio, args.duration)
    writer = OpenRouterPromptProvider(PromptSettings())
    print(f"Writing the prompt with {writer.model} ...")
    written = await writer.write(
        PromptRequest(
            job_id="smoke",
            title=args.title,
            description=args.description,
            options=options,
            facts=photo_facts.describe(photo),
            image=photo,
            content_type="image/jpeg",
        )
    )
    print(f"  ${written.cost:.4f}: {written.text}")

    provider = OpenRouterVideoProvider(VideoSettings())
    saved: dict[str, Any] = {}

    async def checkpoint(data: dict[str, Any]) -> None:
        saved.clear()
        saved.update({"provider": provider.name, **data})

    async def progress(fraction: float) -> None:
        print(f"  {40 + round(45 * fraction)}%")

    with tempfile.TemporaryDirectory(prefix="smoke-") as tmp:
        workdir = Path(tmp)
        source = workdir / "source.jpg"
        source.write_bytes(photo)
        request = VideoRequest(
            job_id="smoke",
            image=source,
            prompt=written.text,
            title=args.title,
            aspect_ratio=args.aspect_ratio,
            duration=args.duration,
            seed=int.from_bytes(hashlib.sha256(photo).digest()[:4], "big") & 0x7FFFFFFF,
        )
        print(f"Making the clip with {provider.model} ...")
        started = time.monotonic()
        while True:
            try:
                clip = await provider.generate(
                    replace(request, provider_job=saved or None), workdir, progress, checkpoint
                )
                break
            except PollLater as later:
                print(f"  {later.status} after {time.monotonic() - started:.0f}s")
                await asyncio.sleep(later.seconds)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, args.out)
    info = probe_video(args.out)
    cost = float(saved.get("cost") or 0.0)
    print(f"Done: {args.out} ({info.width}x{info.height}, {info.duration:.1f}s, {info.codec})")
    print(f"Cost: prompt ${written.cost:.4f} + video ${cost:.4f} = ${written.cost + cost:.4f}")
    return 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = arguments()
    if PromptSettings().openrouter_api_key is None:
        plan(args)
        return 0
    try:
        return asyncio.run(smoke(args))
    except JobError as e:
        print(f"Failed ({e.code}): {e.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
