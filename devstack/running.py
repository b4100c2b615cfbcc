"""`make invoke` and `make event`: work by hand against a running `make run`.

`python -m devstack invoke FUNCTION EVENT` runs one function of the template on an
event file in this process, with the environment the template gives that function,
against the emulator of a running `make run`: `sam local invoke` without Docker.

`python -m devstack event QUEUE` takes the next message off one of the stack's queues
and writes it as the SQS event Lambda would deliver, for `make invoke` or
`sam local invoke -e`: a worker event for a job that exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devstack.emulator import EMULATOR_ENV, client_for
from devstack.harness import add_layers_to_path, apply_environment
from devstack.invoke import handler_for
from devstack.server import DEFAULT_EMULATOR_PORT
from devstack.template import (
    Stack,
    StackNotFound,
    attach_stack,
    load_template,
    resources_of_type,
)
from devstack.workers import LocalFunction, function_timeout, sqs_record, sqs_sources

# The template parameter that makes each function's AWS_ENDPOINT_URL the emulator's.
LOCAL_ENDPOINT_PARAMETER = "LocalEndpointUrl"


class UsageError(Exception):
    """Something the person typing the command can fix; printed without a traceback."""


def default_emulator_url() -> str:
    port = os.environ.get("VIRALSPOT_EMULATOR_PORT") or DEFAULT_EMULATOR_PORT
    return f"http://127.0.0.1:{port}"


def attach(emulator_url: str, parameters: Mapping[str, str] | None = None) -> Stack:
    """The running stack's resources, with the emulator as the functions' endpoint."""
    template = load_template()
    try:
        return attach_stack(
            client_for(emulator_url, "dynamodb"),
            client_for(emulator_url, "sqs"),
            template=template,
            parameters={LOCAL_ENDPOINT_PARAMETER: emulator_url, **(parameters or {})},
        )
    except StackNotFound as exc:
        raise UsageError(
            f"no local stack at {emulator_url} ({exc}). Start `make run` first, or give "
            "--emulator-url (VIRALSPOT_EMULATOR_PORT) if it runs on another port."
        ) from exc


def function_environment(
    stack: Stack, function_id: str, shell: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What Lambda gives the function: the template's variables, region and credentials.

    As under `sam local`, LOG_LEVEL from the shell wins over the template's."""
    shell = os.environ if shell is None else shell
    environment = {**stack.function_environment(function_id), **EMULATOR_ENV}
    if shell.get("LOG_LEVEL"):
        environment["LOG_LEVEL"] = shell["LOG_LEVEL"]
    return environment


def invoke(stack: Stack, function_id: str, event: dict[str, Any]) -> Any:
    """Run the function once on `event`, as its Lambda would, in this process.

    The function's logs and metrics go to stderr, so stdout carries only its answer
    (as with `sam local invoke`)."""
    functions = resources_of_type(stack.template, "AWS::Serverless::Function")
    if function_id not in functions:
        raise UsageError(f"{function_id} is not a function of the template: {', '.join(functions)}")
    add_layers_to_path(stack.template)
    apply_environment(function_environment(stack, function_id))
    with contextlib.redirect_stdout(sys.stderr):
        handler = handler_for(function_id, stack.template)
        function = LocalFunction(
            function_id, handler, function_timeout(stack.template, function_id)
        )
        return function.invoke(event)


def queue_of(stack: Stack, name: str) -> str:
    """A queue's logical id from what a person types: HighQueue, highqueue or high."""
    queues = list(resources_of_type(stack.template, "AWS::SQS::Queue"))
    for logical in queues:
        if name.lower() in (logical.lower(), logical.lower().removesuffix("queue")):
            return logical
    raise UsageError(f"no queue {name!r} in the template: {', '.join(queues)}")


def next_message_event(stack: Stack, queue: str, *, wait_seconds: int = 1) -> dict[str, Any]:
    """The next message of `queue` as Lambda's SQS event, taken off the queue.

    It is deleted at once, as an event source mapping would after a successful
    invocation: if the invocation then fails, the job stays PENDING and the sweeper
    sends it again after PendingGraceMinutes, as it would for a lost message."""
    logical = queue_of(stack, queue)
    url, arn = stack.refs[logical], stack.arns[logical]
    sqs = client_for(_endpoint(stack), "sqs")
    received = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=1,
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    if not received:
        raise UsageError(
            f"no message waiting on {logical}. Request a profile first; if `make run` "
            'polls the queues, its worker took it: run it with ARGS="--no-workers --no-schedules".'
        )
    message = received[0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return {"Records": [sqs_record(message, arn)]}


def consumer_of(stack: Stack, queue: str) -> str | None:
    """The function whose SQS event reads `queue`, if any."""
    arn = stack.arns[queue_of(stack, queue)]
    return next((s.function_id for s in sqs_sources(stack) if s.queue_arn == arn), None)


def _endpoint(stack: Stack) -> str:
    return stack.parameters[LOCAL_ENDPOINT_PARAMETER]


# ------------------------------------------------------------------ command line


def _parameters(items: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--parameter-overrides wants KEY=VALUE, got {item!r}")
        found[key] = value
    return found


def _read_event(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the event {path}: {exc.strerror}") from exc
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the event {path} is not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise UsageError(f"the event {path} is not a JSON object")
    return event


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Work against a running `make run`: invoke a function, take a queue's message.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("invoke", help="run one function on an event (make invoke)")
    run.add_argument("function", help="logical id, e.g. ProcessProfileFunction")
    run.add_argument("event", help="event file (JSON), or - for standard input")
    take = commands.add_parser("event", help="the next message of a queue as an SQS event")
    take.add_argument("queue", help="queue logical id or short name: high, low")
    take.add_argument("--out", help="write the event here (default: standard output)")
    take.add_argument("--wait", type=int, default=1, metavar="SECONDS", help="long-poll this long")
    for sub in (run, take):
        sub.add_argument(
            "--emulator-url",
            default=default_emulator_url(),
            help="the running stack's emulator (default %(default)s)",
        )
        sub.add_argument(
            "--parameter-overrides",
            nargs="*",
            default=[],
            metavar="KEY=VALUE",
            help="template parameters, as given to `make run`",
        )
    args = parser.parse_args(argv)
    args.parameters = _parameters(args.parameter_overrides, parser)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        stack = attach(args.emulator_url, args.parameters)
        if args.command == "invoke":
            event = _read_event(args.event)
            try:
                result = invoke(stack, args.function, event)
            except UsageError:
                raise
            except Exception as exc:
                # What Lambda answers for an unhandled error, and the traceback it logs.
                traceback.print_exc(file=sys.stderr)
                answer = {"errorMessage": str(exc), "errorType": type(exc).__name__}
                print(json.dumps(answer))
                return 1
            print(json.dumps(result, indent=2, default=str))
            return 0
        event = next_message_event(stack, args.queue, wait_seconds=args.wait)
        text = json.dumps(event, indent=2) + "\n"
        if args.out is None:
            sys.stdout.write(text)
            return 0
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        body = json.loads(event["Records"][0]["body"])
        function = consumer_of(stack, args.queue) or "<function>"
        print(
            f"{out}: {body.get('username')} (request_id {body.get('request_id')}, "
            f"{body.get('priority')})\n"
            f"  make invoke FUNCTION={function} EVENT={out}\n"
            f"  sam local invoke {function} -e {out}",
            file=sys.stderr,
        )
        return 0
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
