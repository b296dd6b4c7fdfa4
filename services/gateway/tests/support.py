"""Helpers for streaming uploads (a request body that counts what the server pulled) and
for reading the web client's modules as a browser would."""

import re
from collections.abc import AsyncIterator

import httpx

# The start of a multipart form whose photo streams on after it.
FORM_HEAD = (
    b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff"
)
MULTIPART = {"Content-Type": "multipart/form-data; boundary=b"}
MIB = 1024 * 1024


class Stream:
    """A request body from a generator (so no Content-Length: chunked) that counts the
    bytes it has handed to the client, i.e. what the server made it send."""

    def __init__(self, total: int, head: bytes = FORM_HEAD, chunk: int = 64 * 1024) -> None:
        self.head, self.total, self.chunk = head, total, chunk
        self.yielded = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.yielded += len(self.head)
        yield self.head
        while self.yielded < self.total:
            self.yielded += self.chunk
            yield bytes(self.chunk)


_IMPORT = re.compile(r'^import [^;]*? from "\./([a-z-]+\.js)";', re.M | re.S)


async def web_modules(client: httpx.AsyncClient, entry: str = "/js/app.js") -> dict[str, str]:
    """Every ES module the web client loads, from its entry module through each relative
    `import ... from "./x.js"`, by path; each one served as JavaScript (browsers refuse a
    module of any other type under `nosniff`)."""
    found: dict[str, str] = {}
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in found:
            continue
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/javascript"), path
        found[path] = response.text
        todo += [f"/js/{name}" for name in _IMPORT.findall(response.text)]
    return found
