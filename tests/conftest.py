"""Shared fixtures: one moto server per test process, reset between tests, with
the tables and queues of infra/template.yaml and each function's environment.

Tests marked `ddblocal` run twice, once per DynamoDB engine (the `engine` fixture):
on moto, and on DynamoDB Local (AWS's own engine, one per test process, started on
first use) with SQS and SSM still on moto. Without java or the jar the DynamoDB
Local case skips and says why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from devstack import dynamodb_local as ddbl
from devstack.emulator import Emulator
from devstack.harness import Harness, local_stack
from devstack.invoke import LocalApi
from devstack.template import Stack, load_template
from tests.support import CallCounter
from viralspot.adapters import aws


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    server = Emulator().start()
    yield server
    server.stop()


ENGINES = ("moto", "dynamodb_local")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("ddblocal") and "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", ENGINES, indirect=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """Which engine serves DynamoDB: moto, unless a `ddblocal` test asks for each."""
    return str(getattr(request, "param", "moto"))


@pytest.fixture(scope="session")
def dynamodb_local_installed() -> None:
    """Skips, saying why, where DynamoDB Local cannot run (no java, jar not fetched)."""
    reason = ddbl.unavailable_reason()
    if reason:
        # CI has java and npm (.ci/run): there a missing engine is a broken build.
        if os.environ.get("DYNAMODB_LOCAL_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def dynamodb_local(dynamodb_local_installed: None) -> Iterator[ddbl.DynamoDBLocal]:
    with ddbl.running() as local:
        yield local


@pytest.fixture(scope="session")
def emulator_with_dynamodb_local(
    emulator: Emulator, dynamodb_local: ddbl.DynamoDBLocal
) -> Emulator:
    # One view per session: tests cache clients per emulator object.
    return emulator.with_dynamodb_at(dynamodb_local.url)


@pytest.fixture
def harness(
    monkeypatch: pytest.MonkeyPatch,
    emulator: Emulator,
    template: dict[str, Any],
    engine: str,
    request: pytest.FixtureRequest,
) -> Iterator[Harness]:
    """The template's resources on a clean emulator and every function's environment
    (devstack.harness, as `make run` and the benchmarks); DynamoDB on DynamoDB Local
    (emptied of tables) when `engine` says so."""
    if engine == "dynamodb_local":
        local: ddbl.DynamoDBLocal = request.getfixturevalue("dynamodb_local")
        local.reset()
        emulator = request.getfixturevalue("emulator_with_dynamodb_local")
    with local_stack(emulator, template=template, env=monkeypatch) as up:
        yield up


@pytest.fixture
def aws_env(harness: Harness) -> Emulator:
    """The emulator, every client of this process pointed at it."""
    return harness.emulator


@pytest.fixture
def stack(harness: Harness) -> Stack:
    """The template's resources on the emulator, and the functions' environment set."""
    return harness.stack


@pytest.fixture
def api(harness: Harness) -> LocalApi:
    """The stack's API through the gateway `make run` serves; `admin=True` sends its key."""
    return harness.api()


@pytest.fixture
def aws_calls(stack: Stack) -> CallCounter:
    counter = CallCounter()
    for client in (aws.dynamodb(), aws.sqs()):
        client.meta.events.register("before-call.*.*", counter)
    return counter
