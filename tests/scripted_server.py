"""A scriptable loopback HTTP server for fetcher and webhook tests (replies per path, hostile ones too).

It answers GET and POST alike; every POST is kept (path, headers, raw body)
in ``posts``, so a test can check what a webhook receiver got.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union

from scrapers.fetcher import Fetcher, FetchError, FetchSettings


@dataclass(frozen=True)
class ReceivedPost:
    """One POST as the server read it: the raw body, exactly as sent."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived


@dataclass
class Reply:
    """What the server sends for one request to a path."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before the status line
    trickle: float = 0.0  # seconds between body bytes
    chunked: bool = False  # stream the body without Content-Length
    header_drip: float = 0.0  # > 0: send 60 header lines, this many seconds apart


class ScriptedServer:
    """A threaded loopback HTTP server whose replies are scripted per path."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.hits: Counter[str] = Counter()
        self.starts: list[tuple[str, float]] = []
        self.user_agents: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.posts: list[ReceivedPost] = []
        self.posted = threading.Condition(self.lock)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def route(self, path: str, *replies: Reply) -> None:
        """Answer ``path`` with ``replies`` in turn; the last one repeats."""
        self.routes[path] = list(replies)

    def _next_reply(self, path: str) -> Reply:
        with self.lock:
            self.hits[path] += 1
            self.starts.append((path, time.monotonic()))
            replies = self.routes.get(path)
            if not replies:
                return Reply(404, b"not found")
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body as separate writes must not stall

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up on purpose (byte cap, budget, closed pool)

            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received = ReceivedPost(self.path.split("?", 1)[0], {k.lower(): v for k, v in self.headers.items()},
                                        body, time.monotonic())
                with server.posted:
                    server.posts.append(received)
                    server.posted.notify_all()
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                path = self.path.split("?", 1)[0]
                reply = server._next_reply(path)
                with server.lock:
                    server.user_agents.append(self.headers.get("User-Agent", ""))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._send(reply)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _send(self, reply: Reply) -> None:
                time.sleep(reply.delay)
                if reply.header_drip:
                    self.wfile.write(b"HTTP/1.1 %d Drip\r\n" % reply.status)
                    for line in range(60):
                        self.wfile.write(b"X-Drip-%d: x\r\n" % line)
                        self.wfile.flush()
                        time.sleep(reply.header_drip)
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(reply.body), 1000):
                        piece = reply.body[start : start + 1000]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if not reply.trickle:
                    self.wfile.write(reply.body)
                    return
                for byte in reply.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(reply.trickle)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
                pass

        return Handler

    def wait_for_posts(self, count: int, timeout: float, path: str | None = None) -> list[ReceivedPost]:
        """Wait until ``count`` POSTs (to ``path``, if given) arrived; return them all (maybe fewer)."""

        def matching() -> list[ReceivedPost]:
            return [post for post in self.posts if path is None or post.path == path]

        with self.posted:
            self.posted.wait_for(lambda: len(matching()) >= count, timeout)
            return matching()

    def redirect(self, path: str, location: str, status: int = 302, **reply: Any) -> None:
        """Answer ``path`` with a redirect to ``location``."""
        headers = {"Location": location, **reply.pop("headers", {})}
        self.route(path, Reply(status, reply.pop("body", b"moved"), headers, **reply))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()




def fetch(settings: FetchSettings, url: str) -> Union[bytes, FetchError]:
    """Fetch ``url`` with a fresh fetcher; return the body or the FetchError."""
    with Fetcher(settings) as fetcher:
        try:
            return fetcher.get(url)
        except FetchError as exc:
            return exc
