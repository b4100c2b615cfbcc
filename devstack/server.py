"""`make run`: the whole system on one machine.

An embedded AWS emulator with the template's tables and queues, the API functions
behind an API Gateway-shaped HTTP server, every SQS event source polled into its
function, and every schedule ticking. The handlers are the deployed ones, called
in-process; they find the emulator only through `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from devstack.apigw import Route, match, proxy_event, routes
from devstack.emulator import EMULATOR_ENV, Emulator
from devstack.invoke import handler_for
from devstack.template import TEMPLATE_PATH, Stack, create_stack, load_template, resources_of_type
from devstack.workers import (
    LocalFunction,
    Scheduler,
    SqsPoller,
    function_timeout,
    log_invocation_error,
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
API_KEY_HEADER = "x-api-key"

# What the template's Api Cors section says today; used when it says nothing.
DEFAULT_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET,POST,OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type,X-Api-Key",
}
_CORS_KEYS = {
    "AllowOrigin": "Access-Control-Allow-Origin",
    "AllowMethods": "Access-Control-Allow-Methods",
    "AllowHeaders": "Access-Control-Allow-Headers",
    "MaxAge": "Access-Control-Max-Age",
    "AllowCredentials": "Access-Control-Allow-Credentials",
}


def cors_headers(stack: Stack) -> dict[str, str]:
    """CORS headers from the template's AWS::Serverless::Api `Cors` property."""
    for api in resources_of_type(stack.template, "AWS::Serverless::Api").values():
        cors = api.get("Properties", {}).get("Cors")
        if cors is None:
            continue
        cors = stack.resolve(cors)
        if isinstance(cors, str):
            cors = {"AllowOrigin": cors}
        headers = dict(DEFAULT_CORS)
        for key, header in _CORS_KEYS.items():
            if key in cors:
                # SAM wants these quoted ("'*'"), as API Gateway mapping values are.
                headers[header] = str(cors[key]).strip("'")
        return headers
    return dict(DEFAULT_CORS)


# ------------------------------------------------------------------ gateway


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def _json_answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> HttpAnswer:
    return HttpAnswer(
        status=status,
        headers=[("Content-Type", "application/json"), *(headers or {}).items()],
        body=json.dumps(body).encode("utf-8"),
    )


class Gateway:
    """API Gateway (REST, Lambda proxy) in front of the template's API functions:
    routing, API keys, CORS, the proxy event and the proxy response."""

    def __init__(
        self,
        api_routes: Sequence[Route],
        functions: Mapping[str, LocalFunction],
        *,
        api_key: str | None = None,
        cors: Mapping[str, str] | None = None,
    ) -> None:
        self._routes = list(api_routes)
        self._functions = dict(functions)
        self._api_key = api_key
        self._cors = dict(cors or DEFAULT_CORS)
        if api_key is None and any(r.api_key_required for r in self._routes):
            raise ValueError("a route requires an API key but none was given")

    def handle(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> HttpAnswer:
        """One HTTP request (target = path and query, still percent-encoded)."""
        answer = self._handle(method.upper(), target, headers, body)
        if answer.header("Access-Control-Allow-Origin") is None:
            origin = ("Access-Control-Allow-Origin", self._cors["Access-Control-Allow-Origin"])
            answer = HttpAnswer(answer.status, [*answer.headers, origin], answer.body)
        return answer

    def _handle(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> HttpAnswer:
        path = target.split("?", 1)[0]
        if method == "OPTIONS":
            if any(route.pattern.match(path) for route in self._routes):
                return HttpAnswer(200, list(self._cors.items()), b"")
            return self._missing_token()
        found = match(self._routes, method, path)
        if found is None:
            return self._missing_token()
        route, params = found
        if route.api_key_required and not self._key_ok(headers):
            return _json_answer(
                403, {"message": "Forbidden"}, {"x-amzn-ErrorType": "ForbiddenException"}
            )
        function = self._functions.get(route.function_id)
        if function is None:
            log.error("%s is not loaded; %s %s cannot be served", route.function_id, method, path)
            return self._internal_error()
        event = proxy_event(
            method,
            target,
            resource=route.resource,
            path_parameters=params,
            headers=dict(headers),
            body=body or None,
        )
        if route.api_key_required:
            # API Gateway tells the function which key let the request through.
            event["requestContext"]["identity"]["apiKey"] = self._api_key
            event["requestContext"]["identity"]["apiKeyId"] = "local"
        try:
            result = function.invoke(event)
        except Exception as exc:
            log_invocation_error(route.function_id, f"{method} {path}", exc)
            return self._internal_error()
        return self._from_proxy_response(route.function_id, result)

    def _key_ok(self, headers: Sequence[tuple[str, str]]) -> bool:
        given = next((v for k, v in headers if k.lower() == API_KEY_HEADER), None)
        return (
            given is not None
            and self._api_key is not None
            and hmac.compare_digest(given.encode(), self._api_key.encode())
        )

    @staticmethod
    def _missing_token() -> HttpAnswer:
        return _json_answer(
            403,
            {"message": "Missing Authentication Token"},
            {"x-amzn-ErrorType": "MissingAuthenticationTokenException"},
        )

    @staticmethod
    def _internal_error() -> HttpAnswer:
        # What API Gateway answers when the Lambda integration fails.
        return _json_answer(502, {"message": "Internal server error"})

    def _from_proxy_response(self, function_id: str, result: Any) -> HttpAnswer:
        if not isinstance(result, dict) or "statusCode" not in result:
            log.error("%s returned a malformed Lambda proxy response", function_id)
            return self._internal_error()
        pairs: list[tuple[str, str]] = [
            (str(k), str(v)) for k, v in (result.get("headers") or {}).items()
        ]
        for key, values in (result.get("multiValueHeaders") or {}).items():
            for value in values or []:
                if (str(key), str(value)) not in pairs:
                    pairs.append((str(key), str(value)))
        if not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("Content-Type", "application/json"))
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
        return HttpAnswer(int(result["statusCode"]), pairs, body)


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, kept-alive clients wait
    # ~40 ms on every answer for the delayed ACK.
    disable_nagle_algorithm = True
    server: _ApiServer

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        body = self.rfile.read(length) if length > 0 else b""
        answer = self.server.gateway.handle(
            self.command, self.path, list(self.headers.items()), body
        )
        self.send_response(answer.status)
        for key, value in answer.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        access_log.info("%s %s -> %s", self.command, self.path, code)

    def log_message(self, format: str, *args: Any) -> None:
        access_log.warning(format, *args)


# ------------------------------------------------------------------ the stack


def stack_environment(
    stack: Stack, emulator_url: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """One process hosts every function, so it gets the union of their environments."""
    base = os.environ if base is None else base
    env: dict[str, str] = {}
    for function_id in resources_of_type(stack.template, "AWS::Serverless::Function"):
        for key, value in stack.function_environment(function_id).items():
            if key in env and env[key] != value:
                log.warning("%s: %s=%s overrides %s", function_id, key, value, env[key])
            env[key] = value
    env.update(EMULATOR_ENV)
    env["AWS_ENDPOINT_URL"] = emulator_url
    env["POWERTOOLS_DEV"] = "false"
    env["LOG_LEVEL"] = base.get("LOG_LEVEL") or "INFO"
    return env


def apply_environment(env: Mapping[str, str]) -> None:
    # Anything that could send a handler's AWS call somewhere other than the
    # emulator goes: a named profile, per-service endpoints, or the switch that
    # makes botocore ignore AWS_ENDPOINT_URL.
    for key in list(os.environ):
        if key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") or (
            key.startswith("AWS_ENDPOINT_URL_")
        ):
            del os.environ[key]
    os.environ.update(env)


def add_layers_to_path(template: dict[str, Any], template_dir: Path = TEMPLATE_PATH.parent) -> None:
    """Lambda puts layers on sys.path; so does the local stack, from the template."""
    for layer in resources_of_type(template, "AWS::Serverless::LayerVersion").values():
        content = layer.get("Properties", {}).get("ContentUri")
        if isinstance(content, str):
            path = str((template_dir / content).resolve())
            if path not in sys.path:
                sys.path.insert(0, path)


class LocalStack:
    """The API server, the SQS pollers and the schedulers over an existing stack.

    The emulator and the environment are the caller's: `main` starts a fresh
    emulator, tests reuse theirs.
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
    ) -> None:
        self.stack = stack
        self.routes = routes(stack.template)
        self.api_key_required = any(r.api_key_required for r in self.routes)
        self.api_key = api_key or (secrets.token_urlsafe(24) if self.api_key_required else None)
        self._sqs = sqs
        self._address = (host, port)
        self._sweep_interval = sweep_interval
        self._workers = workers
        self._schedules = schedules
        # Lambda long-polls for 20 s; a stop waits for the poll in flight, so short here.
        self._poll_wait_seconds = poll_wait_seconds
        self._load_handler = load_handler or (lambda fid: handler_for(fid, stack.template))
        self._functions: dict[str, LocalFunction | None] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: _ApiServer | None = None
        # What runs besides the API, as ("Worker" | "Schedule", text), for the banner.
        self.descriptions: list[tuple[str, str]] = []

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

    def start(self) -> LocalStack:
        api_functions = {}
        for function_id in dict.fromkeys(r.function_id for r in self.routes):
            loaded = self.function(function_id)
            if loaded is not None:
                api_functions[function_id] = loaded
        gateway = Gateway(
            self.routes, api_functions, api_key=self.api_key, cors=cors_headers(self.stack)
        )
        self._http = _ApiServer(self._address, gateway)
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
                poller = SqsPoller(
                    source.function_id,
                    source.queue_url,
                    source.queue_arn,
                    source.batch_size,
                    function,
                    sqs=self._sqs,
                    report_batch_item_failures=source.report_batch_item_failures,
                    wait_seconds=self._poll_wait_seconds,
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
        for thread in self._threads:
            # A poller may be inside a long poll; it sees the stop flag when it returns.
            thread.join(timeout=self._poll_wait_seconds + 2)
        self._threads.clear()

    def __enter__(self) -> LocalStack:
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
    parser.add_argument("--no-workers", action="store_true", help="do not poll the queues")
    parser.add_argument("--no-schedules", action="store_true", help="do not run the schedules")
    args = parser.parse_args(argv)
    if args.sweep_interval is not None and args.sweep_interval <= 0:
        parser.error("--sweep-interval must be positive")
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


def _banner(local: LocalStack, emulator_url: str) -> str:
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
    add_layers_to_path(template)
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
    emulator = Emulator(host=args.host, port=args.emulator_port).start()
    local: LocalStack | None = None
    try:
        stack = create_stack(
            emulator.client("dynamodb"),
            emulator.client("sqs"),
            template=template,
            parameters=args.parameters,
        )
        apply_environment(stack_environment(stack, emulator.url))
        api_key = os.environ.get("VIRALSPOT_API_KEY") or None
        try:
            local = LocalStack(
                stack,
                emulator.client("sqs"),
                host=args.host,
                port=args.port,
                api_key=api_key,
                sweep_interval=args.sweep_interval,
                workers=not args.no_workers,
                schedules=not args.no_schedules,
            ).start()
        except OSError as exc:
            print(f"Cannot serve the API on port {args.port}: {exc} (--port)", file=sys.stderr)
            return 1
        print(_banner(local, emulator.url), flush=True)
        while not stop.wait(1.0):
            pass
        log.info("stopping")
    finally:
        if local is not None:
            local.stop()
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
