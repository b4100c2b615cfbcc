"""The README's sequence by hand: request, process, sweep, on a running local stack.

Once with `make invoke` / `make event` (`python -m devstack invoke|event`, a process
of its own attached to the stack's emulator), once with the environment `sam local`
would give each function from events/env.local.json (SAM CLI's rule), with the
emulator in place of the Docker host. Both must process a real job to COMPLETED."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack import running
from devstack.emulator import Emulator
from devstack.invoke import handler_for
from devstack.lambda_context import LocalContext
from devstack.samlocal import functions, sam_local_environment
from devstack.template import Stack
from tests.events import EVENTS, sample
from tests.support import drain
from viralspot import bootstrap
from viralspot.adapters import aws
from viralspot.jobs import JobStatus

pytestmark = pytest.mark.server

ROOT = EVENTS.parent


def devstack(*args: str, emulator: Emulator) -> subprocess.CompletedProcess[str]:
    """`python -m devstack ...` as `make invoke` / `make event` run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "devstack", *args, "--emulator-url", emulator.url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def api_answer(result: dict[str, Any]) -> dict[str, Any]:
    assert result["statusCode"] == 200, result
    data: dict[str, Any] = json.loads(result["body"])["data"]
    return data


def test_make_invoke_and_make_event_process_a_real_job(
    stack: Stack, aws_env: Emulator, tmp_path: Path
) -> None:
    requested = devstack(
        "invoke", "RequestProfileFunction", "events/api_request_profile.json", emulator=aws_env
    )
    assert requested.returncode == 0, requested.stderr
    # stdout is the answer alone; the function's logs went to stderr.
    queued = api_answer(json.loads(requested.stdout))
    assert queued["profile_type"] == "new"
    assert "intake decided" in requested.stderr

    event_file = tmp_path / "high.json"
    taken = running.main(["event", "high", "--out", str(event_file), "--emulator-url", aws_env.url])
    assert taken == 0
    event = json.loads(event_file.read_text(encoding="utf-8"))
    (record,) = event["Records"]
    assert json.loads(record["body"])["request_id"] == queued["request_id"]
    assert record["eventSourceARN"] == stack.arns["HighQueue"]
    assert drain(aws_env, stack.refs["HighQueue"]) == []  # taken off the queue

    processed = devstack("invoke", "ProcessProfileFunction", str(event_file), emulator=aws_env)
    assert processed.returncode == 0, processed.stderr
    assert json.loads(processed.stdout) == {"batchItemFailures": []}

    swept = devstack(
        "invoke", "RetryFailedFunction", "events/scheduled_sweep.json", emulator=aws_env
    )
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout)["stopped_early"] is False

    job = bootstrap.services().jobs.get("natgeo")
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.request_id == queued["request_id"]


def test_event_and_invoke_say_what_is_wrong(
    aws_env: Emulator, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--emulator-url", aws_env.url]
    sweep = str(EVENTS / "scheduled_sweep.json")
    assert running.main(["event", "high", "--wait", "0", *url]) == 2
    assert "no message waiting on HighQueue" in capsys.readouterr().err
    assert running.main(["event", "urgent", *url]) == 2
    assert "no queue 'urgent'" in capsys.readouterr().err
    assert running.main(["invoke", "Nope", sweep, *url]) == 2
    assert "Nope is not a function of the template" in capsys.readouterr().err
    aws_env.reset()  # no stack on the emulator any more
    assert running.main(["invoke", "RetryFailedFunction", sweep, *url]) == 2
    assert "no local stack" in capsys.readouterr().err


def test_sam_local_environment_processes_a_real_job(
    stack: Stack, aws_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = stack.template
    env_vars = json.loads((EVENTS / "env.local.json").read_text(encoding="utf-8"))
    docker_host = env_vars["Parameters"]["AWS_ENDPOINT_URL"]
    attached = running.attach(aws_env.url)

    def as_sam_would(function_id: str) -> None:
        """A fresh container of the function, with the environment SAM would give it."""
        environment, dropped = sam_local_environment(template, env_vars, function_id)
        assert dropped == []
        local = {k: v.replace(docker_host, aws_env.url) for k, v in environment.items()}
        # A secret's Ref is its ARN, whose suffix no file can know: the file names the
        # secret instead, which Secrets Manager takes as the same SecretId.
        for key, name in list(local.items()):
            if key.endswith("_SECRET") and name in attached.secrets:
                local[key] = attached.refs[name]
        # Exactly what `make run` gives the function: same tables, queues and endpoint.
        assert local == attached.function_environment(function_id)
        for key, value in local.items():
            monkeypatch.setenv(key, value)
        aws.reset_clients()
        bootstrap.reset()

    assert set(functions(template)) == {
        "RequestProfileFunction",
        "ProcessProfileFunction",
        "RetryFailedFunction",
    }
    as_sam_would("RequestProfileFunction")
    queued = api_answer(
        handler_for("RequestProfileFunction", template)(
            sample("api_request_profile.json"), LocalContext()
        )
    )
    event = running.next_message_event(attached, "high")

    as_sam_would("ProcessProfileFunction")
    result = handler_for("ProcessProfileFunction", template)(
        event, LocalContext(timeout_seconds=180)
    )
    assert result == {"batchItemFailures": []}

    as_sam_would("RetryFailedFunction")
    swept = handler_for("RetryFailedFunction", template)(
        sample("scheduled_sweep.json"), LocalContext(timeout_seconds=60)
    )
    assert swept["stopped_early"] is False

    job = bootstrap.services().jobs.get("natgeo")
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.request_id == queued["request_id"]
