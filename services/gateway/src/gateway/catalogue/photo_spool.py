"""A batch's checked photos, kept in a temporary file (not in memory) until every row is
known to be good: 500 re-encoded photos of several megabytes each would otherwise sit in
the gateway's memory together. The file is deleted when the spool is closed.
"""

import dataclasses
import tempfile
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from gateway.images import NormalizedImage


@dataclass(frozen=True)
class _Spooled:
    image: NormalizedImage  # without its bytes
    offset: int
    length: int


class PhotoSpool:
    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._photos: dict[str, _Spooled] = {}

    def put(self, name: str, image: NormalizedImage) -> None:
        offset = self._file.seek(0, 2)
        self._file.write(image.data)
        self._photos[name] = _Spooled(dataclasses.replace(image, data=b""), offset, len(image.data))

    def get(self, name: str) -> NormalizedImage:
        spooled = self._photos[name]
        self._file.seek(spooled.offset)
        return dataclasses.replace(spooled.image, data=self._file.read(spooled.length))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
