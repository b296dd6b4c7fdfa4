"""A shop's image server on loopback, for a catalogue's photo links: plain HTTP (the
gateway fetches it with OUTBOUND_ALLOW_PRIVATE=true), each path answering a file, a
status or a redirect, and every request counted."""

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "image/jpeg"
    location: str | None = None


@dataclass
class PhotoServer:
    port: int
    answers: dict[str, Answer] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def file(self, path: str, body: bytes, content_type: str = "image/jpeg") -> str:
        self.answers[path] = Answer(body=body, content_type=content_type)
        return self.url(path)

    def status(self, path: str, status: int) -> str:
        self.answers[path] = Answer(status=status, body=b"nothing here", content_type="text/plain")
        return self.url(path)

    def redirect(self, path: str, to: str) -> str:
        self.answers[path] = Answer(status=302, location=to)
        return self.url(path)


@contextmanager
def photo_server() -> Iterator[PhotoServer]:
    server = PhotoServer(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests[self.path] += 1
            answer = server.answers.get(self.path, Answer(404, b"not found", "text/plain"))
            self.send_response(answer.status)
            if answer.location:
                self.send_header("Location", answer.location)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
