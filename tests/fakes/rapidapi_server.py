"""A scriptable stand-in for the RapidAPI Instagram Scraper Stable API on loopback.

It speaks the real wire format (form-encoded POST, query-string GET, JSON answers)
over real sockets, so the adapter's urllib3 code, timeouts and header handling are
exercised rather than mocked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `body` is JSON-encoded unless it is already bytes."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    fields: dict[str, str]  # form body for POST, query string for GET
    body: bytes
    # The client's end of the TCP connection: equal ports, one reused connection.
    client_port: int


Responder = Callable[[RecordedRequest], Reply]


class FakeRapidApi:
    """Routes by path. A scripted sequence is consumed in order and its last reply
    repeats, so `script(path, Reply(429))` means "429 forever"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Responder] = {}
        self.requests: list[RecordedRequest] = []
        self.unexpected: list[RecordedRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # A short poll interval: shutdown() waits for the next poll, and the default
        # 0.5 s would dominate a test suite that starts one server per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeRapidApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeRapidApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def route(self, path: str, responder: Responder) -> None:
        with self._lock:
            self._routes[path] = responder

    def script(self, path: str, *replies: Reply) -> None:
        if not replies:
            raise ValueError("script needs at least one reply")
        queue = list(replies)

        def next_reply(_: RecordedRequest) -> Reply:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self.route(path, next_reply)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            responder = self._routes.get(request.path)
            if responder is None:
                self.unexpected.append(request)
                # 501 rather than 404: a missing script must not pass for "not found".
                return Reply(501, {"message": f"fake: nothing scripted for {request.path}"})
            return responder(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive like the real edge, so the adapter's pooled connections are used.
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, the client's
            # delayed ACK would add ~40 ms to every request on a kept-alive socket.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._serve(self.rfile.read(length))

            def _serve(self, body: bytes) -> None:
                parts = urlsplit(self.path)
                raw = parts.query if self.command == "GET" else body.decode("utf-8")
                request = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    fields=dict(parse_qsl(raw, keep_blank_values=True)),
                    body=body,
                    client_port=self.client_address[1],
                )
                reply = fake._answer(request)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = (
                    reply.body
                    if isinstance(reply.body, bytes)
                    else json.dumps(reply.body).encode("utf-8")
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up first (the timeout test): nothing to answer.
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
