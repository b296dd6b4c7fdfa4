"""The photos zip of a catalogue, read safely: crafted zips (traversal, symlinks, too many
entries, duplicates, bombs, lying sizes) are refused, and only the photos named are read."""

import io
import random
import stat
import struct
import warnings
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.catalogue.photos_zip import (
    PhotoRefused,
    PhotosZip,
    ZipLimits,
    ZipRefused,
    name_problem,
)

LIMITS = ZipLimits(
    max_bytes=1024 * 1024,
    max_entries=10,
    max_entry_bytes=200_000,
    max_total_bytes=300_000,
    max_ratio=50,
)
RANDOM = random.Random(11)


def noise(size: int) -> bytes:
    """Bytes that do not compress, like a photo's."""
    return RANDOM.randbytes(size)


PHOTO = b"\xff\xd8\xff" + noise(10_000)


def make_zip(
    *entries: tuple[str | zipfile.ZipInfo, bytes], method: int = zipfile.ZIP_DEFLATED
) -> io.BytesIO:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        with zipfile.ZipFile(buf, "w", method) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    buf.seek(0)
    return buf


def opened(
    *entries: tuple[str | zipfile.ZipInfo, bytes], method: int = zipfile.ZIP_DEFLATED
) -> PhotosZip:
    return PhotosZip(make_zip(*entries, method=method), LIMITS)


def refused(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> list[str]:
    with pytest.raises(ZipRefused) as caught:
        opened(*entries)
    return caught.value.problems


def test_photos_are_read_by_file_name_in_any_folder() -> None:
    photos = opened(
        ("a.jpg", PHOTO),
        ("shoot/b.jpg", PHOTO[::-1]),
        ("shoot/", b""),
        ("__MACOSX/shoot/._b.jpg", b"\x00\x05\x16\x07"),
    )
    assert set(photos.entries) == {"a.jpg", "b.jpg"}
    assert photos.read("a.jpg") == PHOTO
    assert photos.read("b.jpg") == PHOTO[::-1]
    assert photos.read_total == 2 * len(PHOTO)
    with pytest.raises(PhotoRefused, match="not in the photos zip"):
        photos.read("c.jpg")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil.jpg", "'..'"),
        ("shoot/../../evil.jpg", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:/Windows/evil.jpg", "absolute"),
        ("shoot\\..\\evil.jpg", "backslash"),
        ("a\x01.jpg", "control"),
    ],
)
def test_names_that_could_escape_refuse_the_zip(name: str, why: str) -> None:
    problems = refused(("good.jpg", PHOTO), (name, PHOTO))
    assert len(problems) == 1
    assert why in problems[0]


def test_an_entry_without_a_name_is_refused() -> None:
    assert name_problem("") == "An entry has no name."


def test_symlinks_and_special_files_are_refused() -> None:
    link = zipfile.ZipInfo("a.jpg")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    fifo = zipfile.ZipInfo("b.jpg")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    problems = refused((link, b"/etc/passwd"), (fifo, b""))
    assert "symbolic link" in problems[0]
    assert "not a regular file" in problems[1]


def test_duplicate_names_are_refused() -> None:
    assert "twice" in refused(("a.jpg", PHOTO), ("a.jpg", b"other"))[0]
    assert "same file name" in refused(("x/a.jpg", PHOTO), ("y/a.jpg", PHOTO))[0]


def test_too_many_entries_or_bytes_or_not_a_zip() -> None:
    many = [(f"{n}.jpg", b"x") for n in range(LIMITS.max_entries + 1)]
    assert "entries" in refused(*many)[0]
    with pytest.raises(ZipRefused, match="larger than"):
        PhotosZip(io.BytesIO(bytes(LIMITS.max_bytes + 1)), LIMITS)
    with pytest.raises(ZipRefused, match="not a readable zip"):
        PhotosZip(io.BytesIO(b"PK\x03\x04 not really"), LIMITS)


def test_a_zip_bomb_is_refused_from_its_declared_sizes_before_inflating() -> None:
    bomb = bytes(150_000)  # deflates ~1000:1
    photos = opened(("bomb.jpg", bomb), ("a.jpg", PHOTO))
    with pytest.raises(PhotoRefused, match="inflates too much"):
        photos.read("bomb.jpg")
    assert photos.read_total == 0
    # What the manifest does not name is never read, whatever it is.
    assert photos.read("a.jpg") == PHOTO


def test_a_photo_larger_than_an_upload_is_refused() -> None:
    big = opened(("big.jpg", noise(200_001)), method=zipfile.ZIP_STORED)
    with pytest.raises(PhotoRefused, match="at most 200,000"):
        big.read("big.jpg")


def test_the_total_read_is_capped() -> None:
    photos = opened(*[(f"{n}.jpg", noise(80_000)) for n in range(5)])
    for n in range(3):
        photos.read(f"{n}.jpg")
    with pytest.raises(PhotoRefused, match="add up to more than 300,000"):
        photos.read("3.jpg")


def _understate_size(buf: io.BytesIO, declared: int) -> io.BytesIO:
    """The zip with its (one) entry's uncompressed size rewritten to `declared`, in the
    local header and the central directory: a bomb that lies about its size."""
    data = bytearray(buf.getvalue())
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, declared)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)
    return io.BytesIO(bytes(data))


def test_a_zip_lying_about_its_sizes_is_refused_while_reading() -> None:
    honest = make_zip(("lie.jpg", bytes(150_000)))
    compressed = zipfile.ZipFile(honest).infolist()[0].compress_size
    photos = PhotosZip(_understate_size(honest, compressed * 2), LIMITS)
    assert photos.entries["lie.jpg"].file_size == compressed * 2  # passes the declared checks
    with pytest.raises(PhotoRefused):
        photos.read("lie.jpg")
    assert photos.read_total == 0


def test_encrypted_and_exotic_entries_are_refused() -> None:
    data = bytearray(make_zip(("locked.jpg", PHOTO)).getvalue())
    for header, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the "encrypted" flag
        data[data.index(header) + at] |= 0x1
    photos = PhotosZip(io.BytesIO(bytes(data)), LIMITS)
    with pytest.raises(PhotoRefused, match="encrypted"):
        photos.read("locked.jpg")
    bz = opened(("a.jpg", PHOTO), method=zipfile.ZIP_BZIP2)
    with pytest.raises(PhotoRefused, match="deflate"):
        bz.read("a.jpg")


def test_a_damaged_entry_is_refused() -> None:
    data = bytearray(make_zip(("a.jpg", PHOTO), method=zipfile.ZIP_STORED).getvalue())
    data[40] ^= 0xFF  # inside the photo's bytes: the CRC no longer matches
    photos = PhotosZip(io.BytesIO(bytes(data)), LIMITS)
    with pytest.raises(PhotoRefused, match="damaged"):
        photos.read("a.jpg")


# ----- properties: whatever the bytes, a refusal, never a crash -----

FUZZ = settings(max_examples=300, deadline=None)
SAMPLE = make_zip(("a.jpg", PHOTO), ("shoot/b.jpg", bytes(3000)), ("c.jpg", b"x")).getvalue()


def _read_everything(data: bytes) -> None:
    try:
        photos = PhotosZip(io.BytesIO(data), LIMITS)
    except ZipRefused as e:
        assert e.problems
        return
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        try:
            photos.read(name)
        except PhotoRefused as e:
            assert e.message
    assert photos.read_total <= LIMITS.max_total_bytes


@FUZZ
@given(st.binary(max_size=3000))
def test_any_bytes_are_refused_not_crashed_on(data: bytes) -> None:
    _read_everything(data)


# Where the zip's headers are: damage there reaches the most of zipfile's code.
HEADERS = [
    at
    for at in range(len(SAMPLE))
    if SAMPLE[at : at + 4] in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06")
]


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(HEADERS), st.integers(0, 46), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    )
)
def test_a_damaged_zip_is_refused_not_crashed_on(changes: list[tuple[int, int, int]]) -> None:
    data = bytearray(SAMPLE)
    for header, offset, value in changes:
        data[min(header + offset, len(data) - 1)] = value
    _read_everything(bytes(data))


@FUZZ
@given(st.integers(0, len(SAMPLE)))
def test_a_truncated_zip_is_refused_not_crashed_on(length: int) -> None:
    _read_everything(SAMPLE[:length])
