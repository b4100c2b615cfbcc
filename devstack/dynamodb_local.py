"""DynamoDB Local, AWS's own DynamoDB engine, on a loopback port.

moto reimplements DynamoDB; where an answer depends on DynamoDB's own semantics
(transactions, conditional writes, indexes, consumed capacity) the tests and the
benchmarks also run on the real engine. `make dynamodb-local` fetches it (AWS ships
the jar inside the npm package `amplify-dynamodb-simulator`) into
`.cache/dynamodb-local/`; `DYNAMODB_LOCAL_DIR` points elsewhere.

    with dynamodb_local.running() as local:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = local.url

The engine runs in memory with one database for every access key and region
(`-sharedDb`), so the handlers' clients and a test's own client see the same tables.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPOSITORY / ".cache" / "dynamodb-local"
JAR = "DynamoDBLocal.jar"
FETCH_HINT = "run `make dynamodb-local`"
REGION = "us-east-1"

# A cold JVM answers in about 3 s on a quiet machine; a loaded CI box takes longer.
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
_PORT_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local did not start or does not answer."""


def install_dir() -> Path:
    return Path(os.environ.get("DYNAMODB_LOCAL_DIR") or DEFAULT_DIR)


def unavailable_reason(directory: Path | None = None) -> str | None:
    """Why DynamoDB Local cannot run here, or None when it can."""
    directory = directory or install_dir()
    if shutil.which("java") is None:
        return f"DynamoDB Local not available: java not found (install a Java 17+ runtime, then {FETCH_HINT})"
    if not (directory / JAR).is_file():
        return f"DynamoDB Local not available: {directory / JAR} not found; {FETCH_HINT}"
    return None


def client(url: str, **config: Any) -> DynamoDBClient:
    """A DynamoDB client for the engine at `url` (any credentials do: -sharedDb)."""
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - DynamoDB Local checks no signature
        config=Config(**config) if config else None,
    )


@dataclass
class DynamoDBLocal:
    url: str
    process: subprocess.Popen[bytes]

    def client(self) -> DynamoDBClient:
        return client(self.url)

    def reset(self) -> None:
        """Delete every table (between tests: the in-memory engine forgets their items).
        Deletion is immediate on DynamoDB Local, so the names are free at once."""
        dynamodb = self.client()
        for page in dynamodb.get_paginator("list_tables").paginate():
            for name in page["TableNames"]:
                dynamodb.delete_table(TableName=name)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> Any:
    """On Linux, have the kernel SIGTERM the JVM when the process that started it dies,
    however it dies (SIGKILL, a CI timeout): otherwise a killed test run leaves a JVM
    holding a port and hundreds of MB. The function is looked up before fork, so the
    child only makes one system call. Elsewhere, the context manager's cleanup is all."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_pdeathsig


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _output(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode("utf-8", "replace").strip()[-2000:]


def _wait_until_ready(
    process: subprocess.Popen[bytes], url: str, log: IO[bytes], timeout: float
) -> bool:
    """True once ListTables answers; False if the JVM exited first (port taken)."""
    probe = client(url, connect_timeout=1, read_timeout=5, retries={"max_attempts": 0})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            probe.list_tables(Limit=1)
        except (BotoCoreError, ClientError):
            time.sleep(0.1)
        else:
            return True
    raise DynamoDBLocalError(
        f"DynamoDB Local did not answer at {url} within {timeout:.0f} s:\n{_output(log)}"
    )


@contextmanager
def running(
    directory: Path | None = None,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
) -> Iterator[DynamoDBLocal]:
    """Start DynamoDB Local on a free loopback port, yield it once it answers, stop it
    on the way out (also on Ctrl-C or an exception). Start it from the main thread:
    on Linux the kernel stops it when the starting thread ends."""
    directory = directory or install_dir()
    reason = unavailable_reason(directory)
    if reason:
        raise DynamoDBLocalError(reason)
    java = shutil.which("java") or "java"
    with tempfile.TemporaryFile() as log:
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port(host)
            url = f"http://{host}:{port}"
            # The port is probed free, then bound by the JVM: another process can take
            # it in between, in which case the JVM exits and another port is tried.
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [
                    java,
                    "-Djava.library.path=DynamoDBLocal_lib",
                    "-jar",
                    JAR,
                    "-inMemory",
                    "-sharedDb",
                    "-port",
                    str(port),
                ],
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(),
            )
            try:
                ready = _wait_until_ready(process, url, log, startup_timeout)
                if ready:
                    yield DynamoDBLocal(url=url, process=process)
                    return
            finally:
                _stop(process)
        raise DynamoDBLocalError(
            f"DynamoDB Local exited at start {_PORT_ATTEMPTS} times:\n{_output(log)}"
        )
