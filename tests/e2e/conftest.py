"""Browser tests: the real local stack (`python -m devstack`) in a subprocess and the
system Chromium driven by Playwright.

The stack runs as its own process, as `make run` does, because it rewrites the
process environment for its handlers; inside the pytest worker that would leak into
the other tests. Ports are chosen free per worker so `pytest -n 2` can run two stacks.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 45.0
INSTALL_HINT = (
    "apt-get install chromium chromium-driver (or set CHROMIUM_PATH); "
    "never `playwright install`: the tests drive the system browser"
)
# What the brief for CI asks of a headless browser in a sandbox: no GPU, no
# background traffic to Google, nothing from a previous profile.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        shutil.which("chromium"),
        "/usr/bin/chromium",
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class RunningStack:
    url: str
    log: Path

    def call(self, method: str, path: str) -> tuple[int, Any]:
        """One API call outside the browser (to compare the page with the API)."""
        request = urllib.request.Request(f"{self.url}{path}", method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=1) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Killed, not interrupted: the emulator keeps everything in memory, so there is
    # nothing to flush, and a clean stop waits out every poller's long poll (~4 s).
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def _spawn(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    api_port, emulator_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRALSPOT_")}
    env.update(LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    command = [
        sys.executable,
        "-m",
        "devstack",
        "--port",
        str(api_port),
        "--emulator-port",
        str(emulator_port),
        "--parameter-overrides",
        "Provider=sample",
    ]
    with log.open("ab") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    return process, f"http://127.0.0.1:{api_port}"


def _ready(process: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _healthy(url):
            return True
        time.sleep(0.2)
    return False


class StackBoot:
    """The stack's process, started early so it boots while Chromium launches."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process, self.url = _spawn(log)

    def wait(self) -> RunningStack:
        if not _ready(self.process, self.url):
            # Once more on new ports: a chosen port can be taken before the stack binds it.
            _stop(self.process)
            self.process, self.url = _spawn(self.log)
            if not _ready(self.process, self.url):
                tail = self.log.read_text(encoding="utf-8", errors="replace")[-4000:]
                pytest.fail(f"the local stack did not start; its output:\n{tail}")
        return RunningStack(url=self.url, log=self.log)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    executable = chromium_path()
    if executable is None:
        pytest.skip(f"Chromium not installed: {INSTALL_HINT}")
    return executable


@pytest.fixture(scope="module")
def stack_boot(
    chromium_executable: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackBoot]:
    boot = StackBoot(tmp_path_factory.mktemp("devstack") / "devstack.log")
    try:
        yield boot
    finally:
        _stop(boot.process)


@pytest.fixture(scope="module")
def local_stack(stack_boot: StackBoot, browser_context: BrowserContext) -> RunningStack:
    # Depends on the browser only for the order: Chromium launches while the stack boots.
    return stack_boot.wait()


@pytest.fixture(scope="module")
def browser_context(
    stack_boot: StackBoot, chromium_executable: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="playwright not installed: pip install -r requirements-dev.txt",
    )
    with sync_api.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium_executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            locale="en-US",
            timezone_id="UTC",
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: BrowserContext, local_stack: RunningStack) -> Iterator[Page]:
    tab = browser_context.new_page()
    tab.set_default_timeout(10_000)

    def offline(route: Any) -> None:
        # Only the local stack is reachable, as on an offline machine: the sample
        # thumbnails' fake domain fails at once instead of waiting on DNS.
        if route.request.url.startswith(local_stack.url):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    tab.route("**/*", offline)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        tab.close()
    assert not errors, f"the page raised: {errors}"
