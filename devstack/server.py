"""`make run`: the whole system on one machine.

An embedded AWS emulator with the template's tables and queues, the API functions
behind an API Gateway-shaped HTTP server, every SQS event source polled into its
function, and every schedule ticking. The handlers are the deployed ones, called
in-process; they find the emulator only through `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import TYPE_CHECKING, Any

from devstack.apigw import routes
from devstack.containers import ContainerPool, InvocationFailed
from devstack.gateway import (
    MAX_PAYLOAD_BYTES,
    Gateway,
    HttpAnswer,
    Invocable,
    gateway_for,
    stack_api_key,
)
from devstack.harness import local_stack
from devstack.invoke import handler_for
from devstack.template import (
    Stack,
    load_template,
    sibling_client,
)
from devstack.workers import (
    LocalFunction,
    Scheduler,
    function_timeout,
    schedule_sources,
    sqs_sources,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("devstack")
access_log = logging.getLogger("devstack.http")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_API_PORT = 3000
DEFAULT_EMULATOR_PORT = 5055
# Warm API containers at most (Lambda would scale further; a laptop need not), and
# open client connections at most (more wait in the listen backlog).
DEFAULT_API_CONCURRENCY = 4
DEFAULT_MAX_CONNECTIONS = 128


class _PayloadTooLarge(Exception):
    pass


class _ApiServer(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` at once: further
    connections wait in the listen backlog, never refused or dropped."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], gateway: Gateway, *, max_connections: int = 128
    ) -> None:
        self.gateway = gateway
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self._slots.acquire(timeout=0.2):
            if self._stopping.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        self._stopping.set()
        super().shutdown()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, kept-alive clients wait
    # ~40 ms on every answer for the delayed ACK.
    disable_nagle_algorithm = True
    # An idle kept-alive connection gives its slot back after this long.
    timeout = 30
    server: _ApiServer

    def handle_one_request(self) -> None:
        # The standard library's, except that every method reaches the gateway
        # (which answers the ones API Gateway does not know), and an over-long
        # request line is answered 414 before the connection closes.
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414, "Request-URI Too Long")
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():  # answers 400 / 431 itself, via send_error
                return
            self._serve()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        if not raw.strip().isdigit():
            raise ValueError("Content-Length is not a number")
        length = int(raw)
        if length > MAX_PAYLOAD_BYTES:
            raise _PayloadTooLarge
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1026)
            chunk = int(line.split(b";", 1)[0].strip() or b"x", 16)
            if chunk == 0:
                while self.rfile.readline(65537).strip():
                    pass  # trailers
                return b"".join(parts)
            size += chunk
            if size > MAX_PAYLOAD_BYTES:
                raise _PayloadTooLarge
            parts.append(self.rfile.read(chunk))
            self.rfile.readline(3)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _PayloadTooLarge:
            self._send(self.server.gateway.too_large())
            self.close_connection = True  # the body was not read
            return
        except ValueError as exc:
            self.send_error(400, f"Malformed request body: {exc}")
            return
        answer = self.server.gateway.handle(
            self.command, self.path, list(self.headers.items()), body
        )
        self._send(answer)

    def _send(self, answer: HttpAnswer) -> None:
        self.send_response(answer.status)
        for key, value in answer.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The HTTP layer's own refusals (malformed request, 414, 431) in the API's
        # envelope, as JSON like every other answer.
        self.close_connection = True
        if not str(getattr(self, "request_version", "")).startswith("HTTP/1."):
            # An unparseable request defaults to HTTP/0.9, which has no status line.
            self.request_version = "HTTP/1.0"
        detail = message or HTTPStatus(code).phrase
        self._send(
            HttpAnswer(
                code,
                [("Content-Type", "application/json")],
                json.dumps({"success": False, "detail": detail}).encode(),
            )
        )

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.close_connection:
                self._drain()

    def _drain(self) -> None:
        # Closing a socket with unread request bytes makes the kernel send a reset,
        # which can destroy the answer before the client reads it. Read (and drop)
        # what is left for a moment first, as HTTP servers do on an early answer.
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            received = 0
            while received < MAX_PAYLOAD_BYTES:
                chunk = self.connection.recv(65536)
                if not chunk:
                    return
                received += len(chunk)
        except OSError:
            return

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Called for refusals too, before a command was parsed.
        command = getattr(self, "command", "") or "-"
        access_log.info("%s %s -> %s", command, getattr(self, "path", "-")[:200], code)

    def log_message(self, format: str, *args: Any) -> None:
        access_log.warning(format, *args)


# ------------------------------------------------------------------ the stack


class DevStack:
    """The API server, the SQS pollers and the schedulers over an existing stack.

    The emulator, the resources and the environment are the caller's
    (devstack.harness.local_stack): `main` starts a fresh emulator, tests reuse theirs.
    """

    def __init__(
        self,
        stack: Stack,
        sqs: SQSClient,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_API_PORT,
        api_key: str | None = None,
        sweep_interval: float | None = None,
        workers: bool = True,
        schedules: bool = True,
        poll_wait_seconds: int = 1,
        load_handler: Callable[[str], Any] | None = None,
        api_concurrency: int = DEFAULT_API_CONCURRENCY,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.stack = stack
        self.routes = routes(stack.template)
        self.api_key_required = any(r.api_key_required for r in self.routes)
        self.api_key = self._admin_key(api_key, sqs)
        self._sqs = sqs
        self._address = (host, port)
        self._sweep_interval = sweep_interval
        self._workers = workers
        self._schedules = schedules
        # Lambda long-polls for 20 s; a stop waits for the poll in flight, so short here.
        self._poll_wait_seconds = poll_wait_seconds
        self._load_handler = load_handler or (lambda fid: handler_for(fid, stack.template))
        # API functions scale out to processes, as Lambda does (devstack.containers);
        # handlers a test hands in (`load_handler`) run in this process, one at a time.
        self._api_concurrency = 0 if load_handler is not None else api_concurrency
        self._max_connections = max_connections
        self._pools: list[ContainerPool] = []
        self._functions: dict[str, LocalFunction | None] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: _ApiServer | None = None
        # What runs besides the API, as ("Worker" | "Schedule", text), for the banner.
        self.descriptions: list[tuple[str, str]] = []

    def _admin_key(self, given: str | None, sqs: SQSClient) -> str | None:
        """One admin key for the gateway (admin routes) and the API function
        (source=admin, HIGH bulk): the template's, or `given` written into the
        secret the template's key is read from, so both agree."""
        if given is None:
            return stack_api_key(self.stack)
        for secret in filter(None, self.stack.api_key_values().values()):
            sibling_client(sqs, "secretsmanager").put_secret_value(
                SecretId=self.stack.refs[secret], SecretString=given
            )
            self.stack.secrets[secret] = given
        return given

    def function(self, function_id: str) -> LocalFunction | None:
        """The function's one warm container, or None when its code does not import."""
        if function_id not in self._functions:
            try:
                handler = self._load_handler(function_id)
            except Exception as exc:
                log.error(
                    "%s cannot be loaded (%s: %s); its events are not served",
                    function_id,
                    type(exc).__name__,
                    exc,
                )
                log.debug("%s import traceback", function_id, exc_info=exc)
                self._functions[function_id] = None
            else:
                timeout = function_timeout(self.stack.template, function_id)
                self._functions[function_id] = LocalFunction(function_id, handler, timeout)
        return self._functions[function_id]

    @property
    def api_url(self) -> str:
        if self._http is None:
            raise RuntimeError("not started")
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def _api_function(self, function_id: str) -> Invocable | None:
        if not self._api_concurrency:
            return self.function(function_id)
        pool = ContainerPool(
            function_id,
            self.stack.template,
            size=self._api_concurrency,
            timeout_seconds=function_timeout(self.stack.template, function_id),
        )
        try:
            pool.warm()
        except InvocationFailed as exc:
            log.error("%s; its routes are not served", exc)
            return None
        self._pools.append(pool)
        return pool

    def start(self) -> DevStack:
        api_functions = {}
        for function_id in dict.fromkeys(r.function_id for r in self.routes):
            loaded = self._api_function(function_id)
            if loaded is not None:
                api_functions[function_id] = loaded
        gateway = gateway_for(self.stack, api_functions, api_key=self.api_key)
        self._http = _ApiServer(self._address, gateway, max_connections=self._max_connections)
        self._spawn("api", self._serve_http)
        if self._workers:
            self._start_pollers()
        if self._schedules:
            self._start_schedulers()
        return self

    def _serve_http(self) -> None:
        assert self._http is not None
        # Shutdown waits up to one poll interval.
        self._http.serve_forever(poll_interval=0.1)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_pollers(self) -> None:
        for source in sqs_sources(self.stack):
            function = self.function(source.function_id)
            if function is None:
                continue
            for index in range(source.concurrency):
                poller = source.poller(
                    function, sqs=self._sqs, wait_seconds=self._poll_wait_seconds
                )
                self._spawn(
                    f"sqs-{source.function_id}-{source.event_name}-{index}",
                    functools.partial(poller.run, self._stop),
                )
            queue_name = source.queue_arn.rsplit(":", 1)[-1]
            self.descriptions.append(
                (
                    "Worker",
                    f"{source.function_id} <- SQS {queue_name} "
                    f"(batch {source.batch_size}, {source.concurrency} poller(s))",
                )
            )

    def _start_schedulers(self) -> None:
        for source in schedule_sources(self.stack, interval_override=self._sweep_interval):
            function = self.function(source.function_id)
            if function is None:
                continue
            scheduler = Scheduler(
                source.function_id,
                source.interval_seconds,
                function,
                resource_arn=source.resource_arn,
                source=source.source,
            )
            self._spawn(
                f"schedule-{source.function_id}-{source.event_name}",
                functools.partial(scheduler.run, self._stop),
            )
            self.descriptions.append(
                (
                    "Schedule",
                    f"{source.function_id} <- {source.expression}, "
                    f"every {source.interval_seconds:g} s",
                )
            )

    def stop(self) -> None:
        self._stop.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for pool in self._pools:
            pool.close()
        self._pools.clear()
        for thread in self._threads:
            # A poller may be inside a long poll; it sees the stop flag when it returns.
            thread.join(timeout=self._poll_wait_seconds + 2)
        self._threads.clear()

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# ------------------------------------------------------------------ command line


def _env_number(name: str, default: float | None, kind: type[Any]) -> Any:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run the API, the workers and the schedules locally on an embedded AWS emulator.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface for the API and emulator")
    parser.add_argument(
        "--port",
        type=int,
        default=_env_number("VIRALSPOT_PORT", DEFAULT_API_PORT, int),
        help="API port (env VIRALSPOT_PORT, default %(default)s)",
    )
    parser.add_argument(
        "--emulator-port",
        type=int,
        default=_env_number("VIRALSPOT_EMULATOR_PORT", DEFAULT_EMULATOR_PORT, int),
        help="AWS emulator port (env VIRALSPOT_EMULATOR_PORT, default %(default)s)",
    )
    parser.add_argument(
        "--sweep-interval",
        type=float,
        default=_env_number("VIRALSPOT_SWEEP_INTERVAL", None, float),
        metavar="SECONDS",
        help="run every schedule this often instead of its rate() (env VIRALSPOT_SWEEP_INTERVAL)",
    )
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters, as for sam deploy (e.g. Provider=sample)",
    )
    parser.add_argument(
        "--api-concurrency",
        type=int,
        default=_env_number("VIRALSPOT_API_CONCURRENCY", DEFAULT_API_CONCURRENCY, int),
        metavar="N",
        help="most API containers (processes) serving at once "
        "(env VIRALSPOT_API_CONCURRENCY, default %(default)s; 0 = one, in this process)",
    )
    parser.add_argument("--no-workers", action="store_true", help="do not poll the queues")
    parser.add_argument("--no-schedules", action="store_true", help="do not run the schedules")
    args = parser.parse_args(argv)
    if args.sweep_interval is not None and args.sweep_interval <= 0:
        parser.error("--sweep-interval must be positive")
    if args.api_concurrency < 0:
        parser.error("--api-concurrency must be 0 or more")
    overrides: dict[str, str] = {}
    for item in args.parameter_overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--parameter-overrides wants KEY=VALUE, got {item!r}")
        overrides[key] = value
    args.parameters = overrides
    return args


def _port_free(host: str, port: int) -> bool:
    # moto's threaded server waits forever when its port is taken, so look first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _banner(local: DevStack, emulator_url: str) -> str:
    api = local.api_url
    lines = [
        "",
        "ViralSpot intake is running locally.",
        f"  API        {api}",
        f"  Emulator   {emulator_url}   (aws --endpoint-url {emulator_url} sqs list-queues)",
    ]
    if local.api_key_required:
        lines.append(f"  API key    {local.api_key}   (header x-api-key)")
    lines += [f"  {kind:<10} {text}" for kind, text in local.descriptions]
    lines += [
        "",
        "Try:",
        f"  curl -s -X POST {api}/api/profile/natgeo/request",
        f"  curl -s {api}/api/profile/natgeo/status",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    level = (os.environ.get("LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("devstack").setLevel(level)

    template = load_template()
    for port, flag, env in (
        (args.emulator_port, "--emulator-port", "VIRALSPOT_EMULATOR_PORT"),
        (args.port, "--port", "VIRALSPOT_PORT"),
    ):
        if port and not _port_free(args.host, port):
            print(f"Port {port} is taken; choose another with {flag} or {env}.", file=sys.stderr)
            return 1

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with local_stack(
            template=template, parameters=args.parameters, host=args.host, port=args.emulator_port
        ) as harness:
            api_key = os.environ.get("VIRALSPOT_API_KEY") or None
            try:
                local = DevStack(
                    harness.stack,
                    harness.emulator.client("sqs"),
                    host=args.host,
                    port=args.port,
                    api_key=api_key,
                    sweep_interval=args.sweep_interval,
                    workers=not args.no_workers,
                    schedules=not args.no_schedules,
                    api_concurrency=args.api_concurrency,
                ).start()
            except OSError as exc:
                print(f"Cannot serve the API on port {args.port}: {exc} (--port)", file=sys.stderr)
                return 1
            try:
                print(_banner(local, harness.emulator.url), flush=True)
                while not stop.wait(1.0):
                    pass
                log.info("stopping")
            finally:
                local.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
