"""An open-loop HTTP load generator: requests on a fixed schedule, latency counted from when each was due.

Why open loop
    A closed-loop client (send, wait for the answer, send the next) sends
    nothing while the server stalls, so a 100 ms stall shows up as one slow
    request instead of the ten that a steady stream of browsers would have
    waited through ("coordinated omission"). Here every request has a due
    time ``start + i / rate`` fixed in advance; it is sent at that time
    whatever earlier requests are doing, and its latency is
    ``answer time - due time``. A request that could not even be sent on time
    (every connection busy) therefore still counts its wait.

Why asyncio and raw sockets
    The generator runs on the same 2-core machine as the server it measures,
    so it must cost little: one thread, one event loop, keep-alive
    connections, a hand-written HTTP/1.1 request and a minimal response
    reader (``Content-Length``, chunked, or read to close). No parsing of the
    body beyond its length unless the caller asks for it.

Only the standard library is used, so importing it costs nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

Clock = Callable[[], float]


@dataclass
class Sample:
    """One scheduled request: when it was due, when its answer was complete, and how it went."""

    kind: str  # which series it belongs to ("job_status", "page")
    due: float
    sent: Optional[float] = None  # when the generator got to it: shows whether the generator kept up
    answered: Optional[float] = None
    status: Optional[int] = None
    error: Optional[str] = None

    @property
    def latency(self) -> Optional[float]:
        """Seconds from the due time to the complete answer; None when there was none."""
        return None if self.answered is None else self.answered - self.due

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 400


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def due_time(start: float, rate: float, index: int) -> float:
    """The ``index``-th request's due time on a schedule of ``rate`` requests per second."""
    return start + index / rate


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


async def _read_body(reader: asyncio.StreamReader, status: int, headers: dict[str, str]) -> tuple[bytes, bool]:
    """Return the body and whether the connection may be used again."""
    if status in (204, 304) or 100 <= status < 200:
        return b"", True  # no body, whatever the headers say (RFC 9112 6.3)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"])), True
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks), True
            chunks.append(chunk[:-2])
    return await reader.read(), False  # no length: the body ends with the connection


class HttpClient:
    """Keep-alive HTTP/1.1 connections to one loopback server, at most ``max_connections`` at once."""

    def __init__(self, host: str, port: int, headers: Optional[dict[str, str]] = None,
                 timeout: float = 10.0, max_connections: int = 64) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._head = f"Host: {host}:{port}\r\n{extra}"
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def _connection(self, reuse: bool) -> tuple[_Connection, bool]:
        if reuse and self._idle:
            return self._idle.pop(), True
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(reader, writer), False

    async def _exchange(self, connection: _Connection, method: str, path: str, body: bytes,
                        headers: str) -> Response:
        request = f"{method} {path} HTTP/1.1\r\n{self._head}{headers}Content-Length: {len(body)}\r\n\r\n"
        connection.writer.write(request.encode("latin-1") + body)
        await connection.writer.drain()
        head = await connection.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        payload, reusable = await _read_body(connection.reader, int(status), headers)
        keep = reusable and version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if keep:
            self._idle.append(connection)
        else:
            connection.close()
        return Response(int(status), headers, payload)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Optional[dict[str, str]] = None) -> Response:
        """Send one request and read its answer, within ``timeout`` seconds (waiting for a slot included)."""
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        async with asyncio.timeout(self.timeout), self._slots:  # one deadline, no extra task per request
            for reuse in (True, False):
                connection, reused = await self._connection(reuse)
                try:
                    return await self._exchange(connection, method, path, body, extra)
                except (asyncio.IncompleteReadError, ConnectionError):
                    connection.close()
                    if not reused:
                        raise
                    # The server closed an idle keep-alive connection (gunicorn after 2 s), as
                    # browsers meet it too: they retry on a fresh connection, and so do we, once.
                except BaseException:
                    connection.close()  # half-read answers must never be reused
                    raise
            raise AssertionError("unreachable: the fresh connection's attempt returns or raises")

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        for connection in self._idle:
            connection.close()
        self._idle.clear()


async def _timed(client: HttpClient, sample: Sample, path: str, clock: Clock,
                 etags: Optional[dict[str, str]]) -> None:
    sample.sent = clock()
    # Like the admin page: send the last answer's ETag, so an unchanged job may be answered 304.
    headers = {"If-None-Match": etags[path]} if etags is not None and path in etags else None
    try:
        response = await client.request("GET", path, headers=headers)
        sample.status = response.status
        if etags is not None and response.status == 200 and "etag" in response.headers:
            etags[path] = response.headers["etag"]
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        sample.error = type(exc).__name__
    sample.answered = clock()


@dataclass
class Stream:
    """A schedule of requests to one kind of path: ``rate`` per second, paths from ``path_for(index)``."""

    kind: str
    client: HttpClient
    rate: float
    path_for: Callable[[int], str]
    conditional: bool = False  # send If-None-Match with the ETag of the last 200 for the same path
    samples: list[Sample] = field(default_factory=list)
    etags: dict[str, str] = field(default_factory=dict)


async def run_streams(streams: list[Stream], until: Callable[[], bool],
                      max_seconds: float, clock: Clock = time.perf_counter) -> None:
    """Send every stream's requests at their due times until ``until()`` or ``max_seconds``; await all answers.

    ``until`` is asked before each send, so a phase ends at the first due time
    after its condition holds. Samples are appended to each stream as they are sent.
    """
    start = clock()
    pending: set[asyncio.Task] = set()

    async def schedule(stream: Stream) -> None:
        index = 0
        while True:
            due = due_time(start, stream.rate, index)
            if due - start > max_seconds:
                return
            wait = due - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            if until():
                return
            sample = Sample(stream.kind, due)
            stream.samples.append(sample)
            task = asyncio.create_task(_timed(stream.client, sample, stream.path_for(index), clock,
                                              stream.etags if stream.conditional else None))
            pending.add(task)
            task.add_done_callback(pending.discard)
            index += 1

    await asyncio.gather(*(schedule(stream) for stream in streams))
    if pending:
        await asyncio.gather(*pending)
