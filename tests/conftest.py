"""Shared fixtures: one moto server per test process, reset between tests, with
the tables and queues of infra/template.yaml and each function's environment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.emulator import EMULATOR_ENV, Emulator
from devstack.invoke import LocalApi
from devstack.template import Stack, create_stack, load_template
from viralspot import bootstrap
from viralspot.adapters import aws


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    server = Emulator().start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> Emulator:
    """A clean emulator and an environment pointing every client at it."""
    emulator.reset()
    for key, val in EMULATOR_ENV.items():
        monkeypatch.setenv(key, val)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    aws.reset_clients()
    bootstrap.reset()
    return emulator


@pytest.fixture
def stack(
    aws_env: Emulator, template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    """The template's resources on the emulator, and the functions' environment set."""
    created = create_stack(aws_env.client("dynamodb"), aws_env.client("sqs"), template=template)
    for function_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            for key, val in created.function_environment(function_id).items():
                monkeypatch.setenv(key, val)
    yield created
    aws.reset_clients()
    bootstrap.reset()


@pytest.fixture
def api(stack: Stack, template: dict[str, Any]) -> LocalApi:
    return LocalApi(template)


class CallCounter:
    """Counts AWS API calls made through the handlers' own clients (botocore events)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, event_name: str, **_: Any) -> None:
        # event_name: "before-call.<service>.<Operation>"
        self.calls.append(event_name.split(".", 1)[1])

    def reset(self) -> None:
        self.calls.clear()


@pytest.fixture
def aws_calls(stack: Stack) -> CallCounter:
    counter = CallCounter()
    for client in (aws.dynamodb(), aws.sqs()):
        client.meta.events.register("before-call.*.*", counter)
    return counter
