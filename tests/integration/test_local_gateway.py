"""The local gateway over real sockets: requests of any size are answered, never
dropped; routes match on the raw path; every refusal is JSON; API calls run in
concurrent containers."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.emulator import Emulator
from devstack.gateway import MAX_PAYLOAD_BYTES, gateway_for
from devstack.server import DevStack
from devstack.template import Stack

pytestmark = pytest.mark.server


@pytest.fixture
def local(stack: Stack, emulator: Emulator) -> Iterator[DevStack]:
    running = DevStack(
        stack, emulator.client("sqs"), port=0, workers=False, schedules=False, api_concurrency=2
    )
    with running:
        yield running


def port_of(local: DevStack) -> int:
    return int(local.api_url.rsplit(":", 1)[1])


def exchange(local: DevStack, raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Send raw bytes, read one HTTP answer (the server may close right after)."""
    with socket.create_connection(("127.0.0.1", port_of(local)), timeout=30) as sock:
        # The server may answer early and stop reading; its answer is still there.
        with contextlib.suppress(OSError):
            sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        return response.status, dict(response.getheaders()), json.loads(body) if body else None


def test_an_over_long_request_line_is_414(local: DevStack) -> None:
    status, headers, body = exchange(
        local, b"GET /api/profile/" + b"a" * 70_000 + b"/status HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == 414
    assert headers["Content-Type"] == "application/json"
    assert body["success"] is False


@pytest.mark.parametrize(
    "headers",
    [b"X-Big: " + b"a" * 70_000 + b"\r\n", b"".join(b"X-%d: 1\r\n" % i for i in range(150))],
    ids=["one huge header", "150 headers"],
)
def test_huge_headers_are_431(local: DevStack, headers: bytes) -> None:
    status, _, body = exchange(
        local, b"GET /api/health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    )
    assert status == 431
    assert body["success"] is False


def test_a_body_over_api_gateways_quota_is_413_without_reading_it(local: DevStack) -> None:
    head = (
        b"POST /api/profile/bulk-request HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n"
    )
    status, _, body = exchange(local, head + b"{" * 100_000)
    assert status == 413
    assert body["success"] is False


def test_the_quota_is_the_same_413_in_process_and_before_routing(local: DevStack) -> None:
    # In process: no function is even loaded, as nothing may reach one.
    gateway = gateway_for(local.stack, {}, api_key="k")
    over = b"{" * (MAX_PAYLOAD_BYTES + 1)
    for path in ("/api/profile/bulk-request", "/nowhere"):
        answer = gateway.handle("POST", path, [], over)
        assert answer.status == 413, path
        assert answer.header("x-amzn-ErrorType") == "RequestTooLargeException"
    head = (
        b"POST /nowhere HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n"
    )
    status, headers, _ = exchange(local, head + b"{" * 100_000)
    assert status == 413
    assert headers["x-amzn-ErrorType"] == "RequestTooLargeException"


def test_a_body_over_the_apis_cap_is_413_from_the_function(local: DevStack) -> None:
    payload = json.dumps({"usernames": ["a" * 20_000]}).encode()
    head = b"POST /api/profile/bulk-request HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    status, _, body = exchange(local, head % len(payload) + payload)
    assert status == 413
    assert "bytes" in body["detail"]


def test_a_chunked_body_is_read(local: DevStack) -> None:
    payload = b'{"usernames": ["natgeo"]}'
    chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    status, _, body = exchange(
        local,
        b"POST /api/profile/bulk-request HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: APPLICATION/JSON; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks,
    )
    assert status == 200, body
    assert body["data"]["succeeded"] == 1


@pytest.mark.parametrize("length", [b"-1", b"ten", b"1e3"])
def test_a_malformed_content_length_is_400(local: DevStack, length: bytes) -> None:
    status, _, body = exchange(
        local, b"POST /api/profile/bulk-request HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n"
    )
    assert status == 400
    assert body["success"] is False


def test_a_malformed_request_line_is_400_json(local: DevStack) -> None:
    status, _, body = exchange(local, b"NOT AN HTTP REQUEST\r\n\r\n")
    assert status == 400
    assert body["success"] is False


def test_routes_match_on_the_raw_path(local: DevStack) -> None:
    status, _, body = exchange(
        local, b"GET /api/profile/natgeo%2Fstatus HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == 400, body  # the {username} route, with a name holding '/'
    status, _, body = exchange(local, b"GET /api/profile/%40NatGeo/status HTTP/1.1\r\n\r\n")
    assert status == 200, body
    assert body["data"]["status"] == "not_found"


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"FROB /api/health HTTP/1.1", 403),
        (b"TRACE /api/health HTTP/1.1", 403),
        (b"GET /api/nothing HTTP/1.1", 403),
        (b"DELETE /api/profile/natgeo HTTP/1.1", 405),
        (b"PUT /api/viral-ideas/redrive HTTP/1.1", 405),
    ],
)
def test_unknown_methods_are_answered_as_api_gateway_does(
    local: DevStack, request_line: bytes, status: int
) -> None:
    answer, headers, body = exchange(local, request_line + b"\r\nHost: x\r\n\r\n")
    assert answer == status
    assert body["success"] is False
    if status == 403:
        assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    else:
        assert "Allow" in headers


def test_a_wrong_key_on_an_admin_route_is_the_gateways_403_envelope(local: DevStack) -> None:
    status, headers, body = exchange(
        local,
        b"POST /api/viral-ideas/process-pending HTTP/1.1\r\nx-api-key: nope\r\n"
        b"Content-Length: 0\r\n\r\n",
    )
    assert status == 403
    assert body == {"success": False, "detail": "Forbidden"}
    assert headers["x-amzn-ErrorType"] == "ForbiddenException"


def test_the_gateway_and_the_function_share_one_admin_key(local: DevStack) -> None:
    assert local.api_key
    key = b"x-api-key: " + local.api_key.encode() + b"\r\n"
    admin = (
        b"POST /api/viral-ideas/process-pending HTTP/1.1\r\n" + key + b"Content-Length: 0\r\n\r\n"
    )
    assert exchange(local, admin)[0] == 200
    high = b"POST /api/profile/natgeo/request?source=admin HTTP/1.1\r\n" + key + b"\r\n"
    status, _, body = exchange(local, high)
    assert status == 200, body
    assert body["data"]["priority"] == "HIGH"


def test_keep_alive_survives_refusals(local: DevStack) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port_of(local), timeout=30)
    for method, path, expected in (
        ("DELETE", "/api/health", 405),
        ("GET", "/api/nothing", 403),
        ("POST", "/api/profile/bad%20name/request", 400),
        ("GET", "/api/health", 200),
    ):
        connection.request(method, path)
        response = connection.getresponse()
        response.read()
        assert response.status == expected, (method, path)
    connection.close()


def test_api_calls_run_in_more_than_one_container(local: DevStack) -> None:
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port_of(local), timeout=60)
        barrier.wait()
        for n in range(3):
            connection.request("POST", f"/api/profile/load_{index}_{n}/request")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [200] * 24
    (pool,) = local._pools
    assert pool.started == 2  # the bound, reached: calls overlapped
