"""The second DynamoDB engine: DynamoDB Local serves DynamoDB, moto the rest, the
template's tables are the same on both, and the JVM never outlives its run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devstack import dynamodb_local as ddbl
from devstack.emulator import Emulator
from devstack.template import Stack, resources_of_type
from viralspot.adapters import aws

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.ddblocal
def test_dynamodb_goes_to_the_engine_and_every_other_service_to_moto(
    stack: Stack, aws_env: Emulator, emulator: Emulator, engine: str
) -> None:
    tables = sorted(resources_of_type(stack.template, "AWS::DynamoDB::Table"))
    # The handlers' own clients, built from the environment as in Lambda.
    assert aws.dynamodb().meta.endpoint_url == aws_env.endpoint("dynamodb")
    assert aws.sqs().meta.endpoint_url == emulator.url
    assert sorted(aws.dynamodb().list_tables()["TableNames"]) == tables
    assert aws.sqs().list_queues()["QueueUrls"]
    on_moto = emulator.client("dynamodb").list_tables()["TableNames"]
    if engine == "dynamodb_local":
        # botocore prefers AWS_ENDPOINT_URL_DYNAMODB to AWS_ENDPOINT_URL: moto holds nothing.
        assert aws_env.endpoint("dynamodb") != emulator.url
        assert on_moto == []
    else:
        assert sorted(on_moto) == tables


@pytest.mark.ddblocal
def test_tables_carry_the_templates_keys_and_indexes(stack: Stack, aws_env: Emulator) -> None:
    dynamodb = aws_env.client("dynamodb")
    for name, resource in resources_of_type(stack.template, "AWS::DynamoDB::Table").items():
        declared = resource["Properties"]
        table = dynamodb.describe_table(TableName=stack.refs[name])["Table"]
        assert table["KeySchema"] == declared["KeySchema"]
        assert table["BillingModeSummary"]["BillingMode"] == declared["BillingMode"]
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            assert {i["IndexName"]: i["KeySchema"] for i in table.get(kind, [])} == {
                i["IndexName"]: i["KeySchema"] for i in declared.get(kind, [])
            }


# -- the engine's own lifecycle --------------------------------------------------------------


def _refuses_connections(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


def _interrupted_run(seen: dict[str, Any]) -> None:
    with ddbl.running() as local:
        seen.update(process=local.process, url=local.url)
        assert local.client().list_tables()["TableNames"] == []
        raise KeyboardInterrupt  # Ctrl-C in the middle of a test


@pytest.mark.usefixtures("dynamodb_local_installed")
def test_engine_is_stopped_when_the_run_is_interrupted() -> None:
    seen: dict[str, Any] = {}
    with pytest.raises(KeyboardInterrupt):
        _interrupted_run(seen)
    assert seen["process"].poll() is not None
    assert _refuses_connections(seen["url"])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reap is missing


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.usefixtures("dynamodb_local_installed")
def test_engine_dies_with_a_test_process_that_is_killed_outright() -> None:
    """SIGKILL runs no cleanup (a CI timeout, an OOM kill): the kernel stops the JVM."""
    script = (
        "import time\n"
        "from devstack import dynamodb_local\n"
        "with dynamodb_local.running() as local:\n"
        "    print(local.process.pid, local.url, flush=True)\n"
        "    time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPOSITORY}{os.pathsep}{REPOSITORY / 'layers/common'}"}
    parent = subprocess.Popen(  # noqa: S603 - this interpreter, fixed script
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, cwd=REPOSITORY
    )
    try:
        assert parent.stdout is not None
        pid_text, url = parent.stdout.readline().decode().split()
        java = int(pid_text)
        assert _alive(java)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 15
    while _alive(java) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(java)
    assert _refuses_connections(url)
