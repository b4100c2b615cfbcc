"""The one local harness: an AWS emulator, the template's resources on it, and the
environment the functions get, applied to this process.

`make run` (devstack.server), the tests' fixtures and the benchmarks all start
here, so what a test exercises is what `make run` serves:

    with local_stack() as harness:
        harness.api().request("POST", "/api/profile/natgeo/request")

Given an emulator (the test session's), it is reset and reused; otherwise one is
started and stopped. Everything it sets in the environment is undone on exit,
through `env` when the caller wants to own that (pytest's monkeypatch).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from devstack import dynamodb_local as ddbl
from devstack.emulator import EMULATOR_ENV, Emulator
from devstack.template import TEMPLATE_PATH, Stack, create_stack, load_template, resources_of_type

if TYPE_CHECKING:
    from devstack.invoke import LocalApi

log = logging.getLogger("devstack")

# Anything that could send a handler's AWS call somewhere other than the emulator:
# a named profile, or the switch that makes botocore ignore AWS_ENDPOINT_URL (and
# every AWS_ENDPOINT_URL_<SERVICE>, which botocore prefers to AWS_ENDPOINT_URL).
_STRAY_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


class EnvironmentPatch(Protocol):
    """Sets and removes environment variables, undoing them later (pytest's
    MonkeyPatch is one)."""

    def setenv(self, name: str, value: str) -> None: ...

    def delenv(self, name: str, raising: bool = True) -> None: ...


class ProcessEnvironment:
    """os.environ, with every change remembered until `undo`."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def setenv(self, name: str, value: str) -> None:
        self._saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def delenv(self, name: str, raising: bool = True) -> None:
        if raising and name not in os.environ:
            raise KeyError(name)
        self._saved.setdefault(name, os.environ.get(name))
        os.environ.pop(name, None)

    def undo(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


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


def _strip_stray_variables(patch: EnvironmentPatch | None) -> None:
    for key in list(os.environ):
        if key in _STRAY_VARIABLES or key.startswith("AWS_ENDPOINT_URL_"):
            if patch is None:
                del os.environ[key]
            else:
                patch.delenv(key, raising=False)


def apply_environment(env: Mapping[str, str], patch: EnvironmentPatch | None = None) -> None:
    """`env` in this process, without anything that could reach real AWS; for good
    (`make invoke`) unless `patch` is to undo it."""
    _strip_stray_variables(patch)
    for key, value in env.items():
        if patch is None:
            os.environ[key] = value
        else:
            patch.setenv(key, value)


def add_layers_to_path(template: dict[str, Any], template_dir: Path = TEMPLATE_PATH.parent) -> None:
    """Lambda puts layers on sys.path; so does the local stack, from the template."""
    for layer in resources_of_type(template, "AWS::Serverless::LayerVersion").values():
        content = layer.get("Properties", {}).get("ContentUri")
        if isinstance(content, str):
            path = str((template_dir / content).resolve())
            if path not in sys.path:
                sys.path.insert(0, path)


def forget_clients() -> None:
    """Drop the handlers' cached AWS clients and services, built for another endpoint
    or environment. Imported late: the layer reaches sys.path from the template."""
    from viralspot import bootstrap
    from viralspot.adapters import aws

    aws.reset_clients()
    bootstrap.reset()


@dataclass(frozen=True)
class Harness:
    """What `local_stack` brought up."""

    emulator: Emulator
    stack: Stack
    environment: dict[str, str]

    def api(self) -> LocalApi:
        """The stack's API in-process, through the gateway `make run` serves."""
        from devstack.invoke import LocalApi

        return LocalApi(self.stack)


@contextmanager
def local_stack(
    emulator: Emulator | None = None,
    *,
    template: dict[str, Any] | None = None,
    parameters: Mapping[str, str] | None = None,
    dynamodb_local: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    environment: Mapping[str, str] | None = None,
    env: EnvironmentPatch | None = None,
) -> Iterator[Harness]:
    """The template's tables, queues and secrets on an emulator, and every function's
    environment (plus `environment`) in this process, with fresh AWS clients.

    `emulator`: reuse (and reset) this one; otherwise one is started on host:port
    (0: any free port) and stopped on exit. With `dynamodb_local`, DynamoDB Local
    (AWS's own engine) serves DynamoDB, started here; SQS and the rest stay on moto.
    `env`: who sets the environment and undoes it (default: this context)."""
    template = template if template is not None else load_template()
    add_layers_to_path(template)
    with ExitStack() as cleanup:
        if env is None:
            process = ProcessEnvironment()
            cleanup.callback(process.undo)
            env = process
        # Before any client is built: a named profile that does not exist here would
        # fail even the emulator's clients.
        _strip_stray_variables(env)
        if emulator is None:
            emulator = Emulator(host=host, port=port).start()
            cleanup.callback(emulator.stop)
        else:
            emulator.reset()
        if dynamodb_local:
            local = cleanup.enter_context(ddbl.running())
            emulator = emulator.with_dynamodb_at(local.url)
        stack = create_stack(
            emulator.client("dynamodb"),
            emulator.client("sqs"),
            template=template,
            parameters=dict(parameters or {}),
        )
        variables = {
            **stack_environment(stack, emulator.url),
            **emulator.endpoint_environment(),
            **(environment or {}),
        }
        apply_environment(variables, env)
        cleanup.callback(forget_clients)
        forget_clients()
        yield Harness(emulator, stack, variables)
