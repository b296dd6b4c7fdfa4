"""A batch's photos wait in a temporary file: each comes back exactly as it was put,
whatever their number, sizes and order of reading."""

from hypothesis import given
from hypothesis import strategies as st

from gateway.catalogue.photo_spool import PhotoSpool
from gateway.images import NormalizedImage


def image(data: bytes, n: int) -> NormalizedImage:
    return NormalizedImage(data, "jpg", "image/jpeg", 300 + n, 400, f"sha-{n}", "JPEG")


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.binary(max_size=4096), max_size=12))
def test_every_photo_comes_back_as_it_was_put(photos: dict[str, bytes]) -> None:
    put = {name: image(data, n) for n, (name, data) in enumerate(photos.items())}
    with PhotoSpool() as spool:
        for name, value in put.items():
            spool.put(name, value)
        for name in reversed(list(put)):
            assert spool.get(name) == put[name]
    assert spool._file.closed
