"""Object storage: a local folder (the embedded default) or S3 / R2 / MinIO.

Keys follow the design: `uploads/{job_id}/source.{ext}`,
`videos/{job_id}/video.mp4`, `videos/{job_id}/poster.jpg`.
"""

import asyncio
import os
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from common.settings import CommonSettings


def upload_key(job_id: str, ext: str) -> str:
    return f"uploads/{job_id}/source.{ext}"


def video_key(job_id: str) -> str:
    return f"videos/{job_id}/video.mp4"


def poster_key(job_id: str) -> str:
    return f"videos/{job_id}/poster.jpg"


def job_id_of_key(key: str) -> str | None:
    """The job a storage key belongs to (`uploads/{job_id}/...`, `videos/{job_id}/...`)."""
    parts = key.split("/")
    return parts[1] if len(parts) == 3 and parts[0] in ("uploads", "videos") else None


class ObjectNotFound(Exception):
    pass


class Storage(Protocol):
    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...
    async def put_file(self, key: str, path: Path, content_type: str) -> None: ...
    async def get_bytes(self, key: str) -> bytes: ...
    async def download(self, key: str, path: Path) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, key: str) -> None: ...
    async def presigned_url(
        self, key: str, expires_in: int, download_name: str | None = None
    ) -> str | None:
        """A direct download URL, or None when the gateway must serve the object.
        With `download_name` the response asks the browser to save it under that name."""
        ...

    async def check(self) -> None:
        """Raise if the storage is not reachable (readiness)."""
        ...


class FileStorage:
    """Objects as files under a root folder; written atomically (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def _write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, key, data)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await asyncio.to_thread(lambda: self._write(key, path.read_bytes()))

    async def get_bytes(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path(key).read_bytes)
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e

    async def download(self, key: str, path: Path) -> None:
        data = await self.get_bytes(key)
        await asyncio.to_thread(path.write_bytes, data)

    async def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    async def presigned_url(
        self, key: str, expires_in: int, download_name: str | None = None
    ) -> str | None:
        return None

    async def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise OSError(f"storage folder is not writable: {self.root}")


class S3Storage:
    """Any S3-compatible service through aioboto3 (AWS S3, Cloudflare R2, MinIO)."""

    def __init__(self, bucket: str, settings: CommonSettings) -> None:
        self.bucket = bucket
        # Imported here: aioboto3 takes seconds to import, and most runs use the folder backend.
        import aioboto3
        from botocore.config import Config

        self.session = aioboto3.Session()
        secret = settings.aws_secret_access_key
        self.client_args: dict[str, Any] = {
            "endpoint_url": settings.s3_endpoint_url,
            "region_name": settings.s3_region,
            "aws_access_key_id": settings.aws_access_key_id,
            "aws_secret_access_key": secret.get_secret_value() if secret else None,
            "config": Config(signature_version="s3v4", retries={"mode": "standard"}),
        }

    @asynccontextmanager
    async def _client(self):  # type: ignore[no-untyped-def]
        async with self.session.client("s3", **self.client_args) as client:
            yield client

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        async with self._client() as s3:
            await s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        async with self._client() as s3:
            await s3.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}
            )

    async def get_bytes(self, key: str) -> bytes:
        async with self._client() as s3:
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=key)
            except ClientError as e:
                if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
                    raise ObjectNotFound(key) from e
                raise
            async with response["Body"] as body:
                return await body.read()

    async def download(self, key: str, path: Path) -> None:
        data = await self.get_bytes(key)
        await asyncio.to_thread(path.write_bytes, data)

    async def exists(self, key: str) -> bool:
        async with self._client() as s3:
            try:
                await s3.head_object(Bucket=self.bucket, Key=key)
            except ClientError as e:
                if e.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                    return False
                raise
            return True

    async def delete(self, key: str) -> None:
        async with self._client() as s3:
            await s3.delete_object(Bucket=self.bucket, Key=key)

    async def presigned_url(
        self, key: str, expires_in: int, download_name: str | None = None
    ) -> str | None:
        params = {"Bucket": self.bucket, "Key": key}
        if download_name:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_name}"'
        async with self._client() as s3:
            url: str = await s3.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in
            )
            return url

    async def check(self) -> None:
        async with self._client() as s3:
            await s3.head_bucket(Bucket=self.bucket)

    async def ensure_bucket(self) -> None:
        async with self._client() as s3:
            try:
                await s3.head_bucket(Bucket=self.bucket)
            except ClientError:
                await s3.create_bucket(Bucket=self.bucket)


def storage_from_settings(settings: CommonSettings) -> FileStorage | S3Storage:
    url = urlparse(settings.storage_url)
    if url.scheme == "file":
        return FileStorage(settings.storage_root)
    if url.scheme == "s3":
        return S3Storage(url.netloc, settings)
    raise ValueError(
        f"STORAGE_URL must be file:///path or s3://bucket, not {settings.storage_url!r}"
    )
