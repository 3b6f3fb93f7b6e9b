"""A tiny HTTP server for a folder of feed files on 127.0.0.1, with ETag and Last-Modified.

The demo serves the bundled sample feeds with it, so `watchfloor demo` exercises the real fetch path
(HTTP, conditional GET, parsing) without the internet.
"""

from __future__ import annotations

import hashlib
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TYPES = {
    ".xml": "application/rss+xml",
    ".rss": "application/rss+xml",
    ".rdf": "application/rdf+xml",
    ".atom": "application/atom+xml",
}


class _Handler(BaseHTTPRequestHandler):
    server_version = "WatchfloorFeeds/1"
    root: Path
    mtime: str

    def do_GET(self) -> None:
        name = self.path.split("?", 1)[0].lstrip("/")
        path = (self.root / name).resolve()
        if not name or path.parent != self.root or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag or self.headers.get("If-Modified-Since") == self.mtime:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", TYPES.get(path.suffix, "application/xml") + "; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", self.mtime)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class FeedServer:
    """`with FeedServer(folder) as server:` serves `server.url(name)` until the block ends."""

    def __init__(self, root: Path) -> None:
        handler = type("Handler", (_Handler,), {"root": root.resolve(), "mtime": formatdate(usegmt=True)})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="feed-server", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
