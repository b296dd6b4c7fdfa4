"""The `photos` zip of a catalogue, read safely.

Nothing is ever extracted to disk: a photo is read into memory by the name the manifest gives.
The zip's directory is checked first, whole: at most so many entries, no name that could
escape a folder (`..`, an absolute path, a drive, a backslash), no symlinks or other special
files, no name twice (entries in folders are found by their file name, so that must be unique
too). Then only the photos the manifest names are read, each refused when its declared size
or its declared inflation ratio is over the limit, and again while it is read, counting the
bytes that actually come out (a zip may lie about its sizes), as is the total of every photo
read. Each photo then goes through the same checks as an upload (gateway/images.py).
"""

import re
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO

from gateway.core.config import GatewaySettings

READ_CHUNK = 64 * 1024
# What zipfile raises on a damaged or hostile archive (found by fuzzing: a bad version, a
# negative offset, a name that is not UTF-8, fields that run past the end, ...).
BROKEN = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    IndexError,
    NotImplementedError,
    RuntimeError,
)
# Folders some zip tools add beside the photos; their entries are never photos.
IGNORED_FOLDERS = ("__MACOSX/",)
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ZipLimits:
    max_bytes: int  # the zip as uploaded
    max_entries: int
    max_entry_bytes: int  # one photo, inflated
    max_total_bytes: int  # every photo read, inflated
    max_ratio: float  # inflated size / compressed size of one entry

    @classmethod
    def from_settings(cls, s: GatewaySettings) -> "ZipLimits":
        return cls(
            max_bytes=s.batch_photos_max_bytes,
            max_entries=s.batch_photos_max_entries,
            max_entry_bytes=s.max_upload_bytes,
            max_total_bytes=s.batch_photos_max_total_bytes,
            max_ratio=s.batch_photos_max_ratio,
        )


class ZipRefused(Exception):
    """The zip as a whole is refused: nothing in it is read."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class PhotoRefused(Exception):
    """One photo of the zip cannot be used."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def name_problem(name: str) -> str | None:
    """Why an entry's name is unsafe (None: it is a plain relative path)."""
    if not name:
        return "An entry has no name."
    if "\\" in name:
        return f"{name!r}: backslashes are not allowed in names."
    if name.startswith("/") or _DRIVE.match(name):
        return f"{name!r}: absolute paths are not allowed."
    if ".." in name.split("/"):
        return f"{name!r}: '..' is not allowed in names."
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"{name!r}: control characters are not allowed in names."
    return None


def _file_type(info: zipfile.ZipInfo) -> int:
    """The entry's Unix file type bits (0 when the zip does not say: a plain file)."""
    return stat.S_IFMT(info.external_attr >> 16)


def _base_name(name: str) -> str:
    return name.rsplit("/", 1)[-1]


class PhotosZip:
    """An opened photos zip whose directory passed the checks; `read(name)` gives a photo.

    Synchronous (zipfile): call it in a thread. `file` must be seekable."""

    def __init__(self, file: IO[bytes], limits: ZipLimits) -> None:
        self.limits = limits
        self.read_total = 0
        size = file.seek(0, 2)
        file.seek(0)
        if size > limits.max_bytes:
            raise ZipRefused([f"The photos zip is larger than {limits.max_bytes:,} bytes."])
        try:
            self._zip = zipfile.ZipFile(file)
            infos = self._zip.infolist()
        except BROKEN as e:
            raise ZipRefused([f"The photos file is not a readable zip ({e})."]) from e
        if len(infos) > limits.max_entries:
            raise ZipRefused(
                [f"The photos zip has {len(infos):,} entries; at most {limits.max_entries:,}."]
            )
        self.entries = self._check_directory(infos)

    def _check_directory(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        problems: list[str] = []
        names: set[str] = set()
        entries: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if why := name_problem(name):
                problems.append(why)
                continue
            if name in names:
                problems.append(f"{name!r} is in the zip twice.")
                continue
            names.add(name)
            kind = _file_type(info)
            if kind == stat.S_IFLNK:
                problems.append(f"{name!r} is a symbolic link; only files are accepted.")
                continue
            if info.is_dir() or kind == stat.S_IFDIR or name.startswith(IGNORED_FOLDERS):
                continue
            if kind not in (0, stat.S_IFREG):
                problems.append(f"{name!r} is not a regular file.")
                continue
            base = _base_name(name)
            if base in entries:
                problems.append(
                    f"{entries[base].filename!r} and {name!r} have the same file name; "
                    "photos are found by file name, so each must be unique."
                )
                continue
            entries[base] = info
        if problems:
            raise ZipRefused(problems)
        return entries

    def close(self) -> None:
        self._zip.close()

    def read(self, name: str) -> bytes:
        """The photo the manifest calls `name` (a file name; found in any folder)."""
        info = self.entries.get(name)
        if info is None:
            raise PhotoRefused(f"{name!r} is not in the photos zip.")
        limits = self.limits
        if info.flag_bits & 0x1:
            raise PhotoRefused(f"{name!r} is encrypted in the zip.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PhotoRefused(f"{name!r} is compressed with a method other than deflate.")
        if info.file_size > limits.max_entry_bytes:
            raise PhotoRefused(
                f"{name!r} is {info.file_size:,} bytes; a photo has at most "
                f"{limits.max_entry_bytes:,}."
            )
        if info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise PhotoRefused(f"{name!r} inflates too much to be a photo (a zip bomb?).")
        if self.read_total + info.file_size > limits.max_total_bytes:
            raise PhotoRefused(self._over_total())
        # The declared sizes may lie: count what actually comes out.
        cap = min(limits.max_entry_bytes, limits.max_ratio * max(info.compress_size, 1))
        chunks: list[bytes] = []
        count = 0
        try:
            with self._zip.open(info) as entry:
                while chunk := entry.read(READ_CHUNK):
                    count += len(chunk)
                    if count > cap or count > info.file_size:
                        raise PhotoRefused(
                            f"{name!r} inflates to more than it declares (a zip bomb?)."
                        )
                    if self.read_total + count > limits.max_total_bytes:
                        raise PhotoRefused(self._over_total())
                    chunks.append(chunk)
        except BROKEN as e:
            raise PhotoRefused(f"{name!r} is damaged in the zip ({e}).") from e
        self.read_total += count
        return b"".join(chunks)

    def _over_total(self) -> str:
        return (
            f"The photos read from the zip add up to more than "
            f"{self.limits.max_total_bytes:,} bytes."
        )
