"""The local stack enforces the API key on the admin routes, as API Gateway does.

`python -m devstack` (what `make run` starts) is run as a separate process with a
known VIRALSPOT_API_KEY, on free loopback ports, without workers or schedules.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
KEY = "local-admin-key-5f0c1a"
ADMIN = ("/api/viral-ideas/process-pending", "/api/viral-ideas/redrive")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def call(method: str, url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=b"", method=method, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture(scope="module")
def local_stack() -> Iterator[str]:
    port, emulator_port = free_port(), free_port()
    env = {
        **os.environ,
        "VIRALSPOT_API_KEY": KEY,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)]),
    }
    process = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
        [
            sys.executable,
            "-m",
            "devstack",
            "--port",
            str(port),
            "--emulator-port",
            str(emulator_port),
            "--no-workers",
            "--no-schedules",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"python -m devstack exited: {process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            try:
                if call("GET", f"{url}/api/health") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the local stack did not answer within 90 s")
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.parametrize("path", ADMIN)
def test_admin_route_without_the_key_is_forbidden(local_stack: str, path: str) -> None:
    assert call("POST", f"{local_stack}{path}") == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "wrong"},
        {"x-api-key": KEY[:-1] + "0"},  # same length, last character differs
        {"x-api-key": KEY + "x"},
        {"x-api-key": ""},
        {"Authorization": KEY},
    ],
)
@pytest.mark.parametrize("path", ADMIN)
def test_admin_route_with_a_wrong_key_is_forbidden(
    local_stack: str, path: str, headers: dict[str, str]
) -> None:
    assert call("POST", f"{local_stack}{path}", headers) == 403


def test_the_key_in_the_query_string_is_not_a_key(local_stack: str) -> None:
    url = f"{local_stack}/api/viral-ideas/process-pending?x-api-key={KEY}"
    assert call("POST", url) == 403


@pytest.mark.parametrize("header", ["x-api-key", "X-Api-Key", "X-API-KEY"])
@pytest.mark.parametrize("path", ADMIN)
def test_admin_route_with_the_key_is_served(local_stack: str, path: str, header: str) -> None:
    assert call("POST", f"{local_stack}{path}", {header: KEY}) == 200


def test_public_routes_need_no_key(local_stack: str) -> None:
    assert call("GET", f"{local_stack}/api/health") == 200
    assert call("GET", f"{local_stack}/api/viral-ideas/queue-status") == 200
    assert call("POST", f"{local_stack}/api/profile/natgeo/request") == 200
