"""Files of the filesystem storage, behind signed, expiring links.

With S3 storage the links are presigned URLs of the bucket, so nothing is served here.
"""

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from itsdangerous import SignatureExpired

from common.downloads import safe_download_name
from common.errors import ApiError
from common.logs import job_id_var
from common.storage import FileStorage, job_id_of_key
from common.tokens import InvalidToken
from common.views import API_PREFIX
from gateway.api.deps import ServicesDep
from gateway.models import error_responses

router = APIRouter(prefix=f"{API_PREFIX}/files", tags=["files"])

_NOT_FOUND = ApiError(404, "file_not_found", "No such file.")


@router.get(
    "/{signature}",
    response_class=FileResponse,
    summary="A stored file (supports Range requests)",
    responses={
        200: {"description": "The file.", "content": {"video/mp4": {}, "image/jpeg": {}}},
        206: {"description": "Part of the file (Range request)."},
        **error_responses(403, 404),
    },
)
async def get_file(
    signature: str,
    services: ServicesDep,
    download: Annotated[
        str | None, Query(max_length=200, description="Save under this file name.")
    ] = None,
) -> FileResponse:
    try:
        key = services.signer.key_from_file_signature(signature)
    except InvalidToken as e:
        if isinstance(e.__cause__, SignatureExpired):
            raise ApiError(403, "link_expired", "This download link has expired.") from e
        raise ApiError(403, "invalid_link", "This download link is not valid.") from e
    job_id_var.set(job_id_of_key(key))  # the download's log lines name its job
    storage = services.storage
    if not isinstance(storage, FileStorage):
        raise _NOT_FOUND
    try:
        path = storage.path(key)
    except ValueError:
        raise _NOT_FOUND from None
    if not path.is_file():
        raise _NOT_FOUND
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {"Cache-Control": f"private, max-age={services.signer.download_ttl}"}
    if download:
        return FileResponse(
            path,
            media_type=media_type,
            filename=safe_download_name(download, key),
            content_disposition_type="attachment",
            headers=headers,
        )
    return FileResponse(path, media_type=media_type, headers=headers)
