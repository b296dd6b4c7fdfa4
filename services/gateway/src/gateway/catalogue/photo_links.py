"""A catalogue's photo links, fetched when the batch is made: through the one SSRF guard
(`common.outbound.OutboundClient`: https only, public addresses only, each redirect
checked again, size and time limits), then checked like an upload (`gateway.images`).

A link that cannot be fetched or is not a usable photo is a problem of every row naming
it (the batch is refused whole), never an error of the request.
"""

import asyncio
from collections.abc import Iterable

from common.errors import ApiError
from common.outbound import OutboundClient, OutboundError
from gateway.catalogue.intake import PhotoSink
from gateway.catalogue.manifest import Problem, Row
from gateway.images import Decoder, NormalizedImage

# Redirects followed per link (each hop checked by the guard again).
MAX_REDIRECTS = 3


class LinkRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def fetch_photo(
    client: OutboundClient, decoder: Decoder, url: str, *, deadline: float
) -> NormalizedImage:
    """The photo at `url`, checked like an upload; LinkRefused saying why not."""
    try:
        response = await client.request("GET", url, deadline=deadline, max_redirects=MAX_REDIRECTS)
    except OutboundError as e:
        raise LinkRefused(f"The link could not be fetched: {e.message}") from e
    if 300 <= response.status_code < 400:
        raise LinkRefused(f"The link redirects more than {MAX_REDIRECTS} times.")
    if response.status_code != 200:
        raise LinkRefused(f"The link answered HTTP {response.status_code}, not a photo.")
    try:
        return await decoder.normalize_bytes(response.content)
    except ApiError as e:
        if e.status == 503:  # the gateway is busy: the request, not the photo
            raise
        raise LinkRefused(f"The link's file is not usable: {e.message}") from e


async def fetch_photos(
    rows: Iterable[Row],
    client: OutboundClient,
    decoder: Decoder,
    sink: PhotoSink,
    *,
    concurrency: int,
    deadline: float,
) -> list[Problem]:
    """Every distinct link of `rows` fetched once, `concurrency` at a time, each photo
    given to `sink` by its link; a problem for each row whose link was refused."""
    by_url: dict[str, list[Row]] = {}
    for row in rows:
        if row.image_url is not None:
            by_url.setdefault(row.image_url, []).append(row)
    slots = asyncio.Semaphore(concurrency)
    problems: list[Problem] = []

    async def one(url: str, named: list[Row]) -> None:
        async with slots:
            try:
                image = await fetch_photo(client, decoder, url, deadline=deadline)
            except LinkRefused as e:
                problems.extend(Problem(row.number, "image", e.message) for row in named)
                return
            await sink(url, image)

    await asyncio.gather(*(one(url, named) for url, named in by_url.items()))
    return problems
