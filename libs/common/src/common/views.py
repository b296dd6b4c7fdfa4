"""The public JSON view of a job, shared by the gateway (REST) and the notifier
(WebSocket snapshots), so both show a job the same way."""

from typing import Any
from urllib.parse import quote

from common.downloads import download_name
from common.jobs import Job
from common.presets import JOB_OPTION_DEFAULTS
from common.storage import Storage
from common.tokens import Signer

API_PREFIX = "/api/v1"
# What links a job to its product and batch (gateway/products.py).
PRODUCT_LINKS = ("product_id", "variant", "batch_id", "sku", "row")


async def download_url(
    key: str, storage: Storage, signer: Signer, *, download_name: str | None = None
) -> str:
    """A presigned URL when storage can make one, else an expiring gateway link.
    `download_name` (a safe file name) makes the link save the file under that name."""
    url = await storage.presigned_url(key, signer.download_ttl, download_name)
    if url:
        return url
    link = f"{API_PREFIX}/files/{signer.file_signature(key)}"
    return f"{link}?download={quote(download_name)}" if download_name else link


# What `public_job` reads, as a find projection: a reader that only shows jobs (the
# notifier, on every status event) leaves the rest (owner, client address, the photo's
# key and digest, provider state, ...) in the database. Kept beside the view it serves.
PUBLIC_JOB_FIELDS: dict[str, int] = {
    field: 1
    for field in (
        "status",
        "progress",
        "seq",
        "title",
        "description",
        "options",
        "image.width",
        "image.height",
        "image.content_type",
        "attempts",
        "created_at",
        "updated_at",
        "history",
        "prompt.text",
        "prompt.source",
        "prompt.model",
        "prompt.cost",
        "brief",
        "notes",
        "video",
        "provider_job.cost",
        "error.code",
        "error.message",
        *PRODUCT_LINKS,
    )
}


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def public_job(job: Job, storage: Storage, signer: Signer) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job["_id"],
        "status": job["status"],
        "progress": job["progress"],
        "seq": job["seq"],
        "title": job["title"],
        "description": job["description"],
        # Jobs stored before the ad options existed show their defaults.
        "options": {**JOB_OPTION_DEFAULTS, **job["options"]},
        "image": {k: job["image"][k] for k in ("width", "height", "content_type")},
        "attempts": job.get("attempts", 0),
        "created_at": _iso(job["created_at"]),
        "updated_at": _iso(job["updated_at"]),
        "history": [
            {"seq": h["seq"], "status": h["status"], "progress": h["progress"], "at": _iso(h["at"])}
            for h in job.get("history", [])
        ],
        "prompt": None,
        "brief": job.get("brief"),  # written with the prompt; None until then
        "notes": list(job.get("notes") or []),
        "video": None,
        "error": None,
    }
    if prompt := job.get("prompt"):
        view["prompt"] = {k: prompt.get(k) for k in ("text", "source", "model", "cost")}
    if (video := job.get("video")) and job["status"] == "completed":
        name = download_name(job["title"], video["key"])
        view["video"] = {
            "url": await download_url(video["key"], storage, signer),
            "poster_url": await download_url(video["poster_key"], storage, signer),
            "download_url": await download_url(video["key"], storage, signer, download_name=name),
            "duration": video["duration"],
            "width": video["width"],
            "height": video["height"],
            "size": video["size"],
            "codec": video["codec"],
            "cost": (job.get("provider_job") or {}).get("cost", 0.0),
            # The finished ad (captions, end card, music) or the raw motion clip; its sound;
            # how closely an AI clip kept the product (None for local clips and older jobs).
            "finished": video.get("finished"),
            "audio": video.get("audio"),
            "fidelity": video.get("fidelity"),
            "fidelity_warning": bool(video.get("fidelity_warning")),
            # The job whose clip this is, when this job reused an earlier result.
            "reused_from": video.get("reused_from"),
        }
    if error := job.get("error"):
        view["error"] = {"code": error["code"], "message": error["message"]}
    # A variant of a product (and a batch's row): shown only on the jobs that have them.
    for link in PRODUCT_LINKS:
        if link in job:
            view[link] = job[link]
    return view
