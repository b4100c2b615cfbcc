"""Fuzz the HTTP API with schemathesis, from the OpenAPI document the API serves.

The target is the real local stack (`devstack.server.DevStack`): the API Gateway
shaped HTTP server in front of the API function's containers (processes, as
`make run` runs them), on 127.0.0.1 with an ephemeral port, over the test emulator. Workers and schedules are off, so whatever the fuzzer
stores stays where it was put. Two profiles are processed first (the real worker
with the sample provider), so the read routes also answer 200 with real bodies.

Every operation is fuzzed with schema-valid (positive) and, where the document
gives something to violate, schema-invalid (negative) requests. Every response
must pass schemathesis' checks: no 5xx, a documented status code, content type
and headers, a body matching the documented schema, invalid requests rejected,
and the API key really enforced on the admin routes (`ignored_auth` re-sends a
successful admin call without the key and with a wrong one). Every error is the
`{success: false, detail}` envelope. Afterwards nothing invalid may have been
stored: every Jobs and Profiles key is a canonical username.

Then schemathesis' own runner (its CLI) runs every phase that needs no state
against the same stack with every check: the coverage phase sends each documented
path every undeclared method (405 with Allow expected), the bulk body in undeclared
and malformed media types (415), and boundary values. Settings shared by both
runs, each with its reason, are in schemathesis.toml next to this file.

What it found (500s on undecodable or non-JSON bodies, an undocumented username
rule and admin 403) is fixed; regression tests for each are at the bottom.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from devstack.apigw import routes
from devstack.emulator import Emulator
from devstack.invoke import LocalApi, handler_for
from devstack.lambda_context import LocalContext
from devstack.server import DevStack
from devstack.template import Stack
from tests.events import sqs_event
from tests.support import drain
from viralspot.adapters.dynamo_jobs import STATS_PREFIX

pytestmark = [pytest.mark.server, pytest.mark.fuzz]

API_KEY = "fuzz-admin-key-0123456789"
# Processed before fuzzing, so profile/posts/similar answer 200 with real bodies.
SEEDED = ("natgeo", "nasa")
USERNAME_RULE = re.compile(r"[a-z0-9._]{1,30}")

# Examples per operation: (positive, negative, per seeded name). A request costs
# 40-150 ms here (HTTP, the function, two or three emulator calls), so about 450
# requests keep the whole fuzz well under 90 s on 2 busy cores, shrinking included.
# Negative generation only where the document gives something to violate (an enum,
# a bounded integer, a body); a bare string path parameter has none.
BUDGET: dict[str, tuple[int, int, int]] = {
    "GET /api/health": (5, 0, 0),
    "GET /api/viral-ideas/queue-status": (5, 0, 0),
    # A feed page is one Query per (week, shard) of its window: fewer, dearer requests.
    "GET /api/viral-ideas/reels": (20, 20, 0),
    "POST /api/viral-ideas/process-pending": (10, 10, 0),
    "POST /api/viral-ideas/redrive": (15, 15, 0),
    "GET /api/profile/{username}": (25, 0, 5),
    "GET /api/profile/{username}/status": (25, 0, 5),
    "GET /api/profile/{username}/similar": (25, 0, 5),
    "GET /api/profile/{username}/posts": (40, 30, 15),
    "POST /api/profile/{username}/request": (50, 25, 5),
    "POST /api/profile/bulk-request": (40, 40, 0),
}
# Writers last: process-pending re-sends every PENDING job, so it runs while there
# are few; the final scan then sees everything the writers stored.
WRITERS = {"POST /api/profile/{username}/request", "POST /api/profile/bulk-request"}

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Examples per operation in the CLI run's fuzzing phase (its coverage phase runs
# every scenario the document defines, whatever this says).
CLI_EXAMPLES = 25


# ---------------------------------------------------------------- the target


def _process_high_queue(stack: Stack, emulator: Emulator) -> int:
    """Run the real worker on what the high queue holds (the seeded requests), one
    message an invocation."""
    url, arn = stack.refs["HighQueue"], stack.arns["HighQueue"]
    handler = handler_for("ProcessProfileFunction", stack.template)
    messages = drain(emulator, url)
    for message in messages:
        result = handler(
            sqs_event([message], arn), LocalContext(function_name="ProcessProfileFunction")
        )
        assert result == {"batchItemFailures": []}
    return len(messages)


@pytest.fixture
def target(stack: Stack, emulator: Emulator) -> Iterator[DevStack]:
    running = DevStack(
        stack, emulator.client("sqs"), port=0, api_key=API_KEY, workers=False, schedules=False
    )
    with running:
        for name in SEEDED:
            answer = requests.post(f"{running.api_url}/api/profile/{name}/request", timeout=10)
            assert answer.status_code == 200, answer.text
        assert _process_high_queue(stack, emulator) == len(SEEDED)
        for name in SEEDED:
            profile = requests.get(f"{running.api_url}/api/profile/{name}", timeout=10)
            assert profile.status_code == 200, profile.text
        yield running


def _scan_keys(emulator: Emulator, table: str) -> list[str]:
    """Every username key of `table`; the queue counters that share the Jobs table
    under '#stats' keys (no username can take them) are not usernames."""
    client = emulator.client("dynamodb")
    keys: list[str] = []
    kwargs: dict[str, Any] = {"TableName": table, "ProjectionExpression": "username"}
    while True:
        page = client.scan(**kwargs)
        keys.extend(item["username"]["S"] for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return [key for key in keys if not key.startswith(STATS_PREFIX)]
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def canonical(name: str) -> bool:
    """DESIGN.md's username rule, restated independently of viralspot.usernames."""
    return bool(
        USERNAME_RULE.fullmatch(name)
        and ".." not in name
        and not name.startswith(".")
        and not name.endswith(".")
    )


# ---------------------------------------------------------------- known findings


def _utf8(body: bytes | str | None) -> bool:
    if body is None or isinstance(body, str):
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---------------------------------------------------------------- the fuzz


def _fuzz(
    strategy: st.SearchStrategy[schemathesis.Case],
    examples: int,
    call: Callable[[schemathesis.Case], None],
) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,  # one inner test per operation: no replays across operations
        # CI replays the same inputs, so a red build is always reproducible; elsewhere
        # every run explores new ones (a failure prints its seed).
        derandomize=os.environ.get("CI") == "true",
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    def run(case: schemathesis.Case) -> None:
        call(case)

    run()


def _plans(operation: Any) -> list[tuple[str, st.SearchStrategy[schemathesis.Case], int]]:
    positive, negative, seeded = BUDGET[operation.label]
    plans = [("positive", operation.as_strategy(generation_mode=GenerationMode.POSITIVE), positive)]
    if negative:
        plans.append(
            ("negative", operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), negative)
        )
    for name in SEEDED if seeded else ():
        strategy = operation.as_strategy(
            generation_mode=GenerationMode.POSITIVE, path_parameters={"username": name}
        )
        plans.append((f"seeded {name}", strategy, seeded))
    return plans


def test_api_survives_fuzzing_and_stores_nothing_invalid(
    target: DevStack, stack: Stack, emulator: Emulator
) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(
        f"{target.api_url}/api/openapi.json", config=schemathesis.Config.from_path(CONFIG)
    )
    session = requests.Session()
    key = {"x-api-key": API_KEY}
    calls: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []

    def call(case: schemathesis.Case) -> None:
        label = case.operation.label
        calls[label] += 1
        response = case.call(base_url=target.api_url, session=session, headers=key, timeout=30)
        statuses[response.status_code] += 1
        case.validate_response(
            response,
            headers=key,
            transport_kwargs={"base_url": target.api_url, "session": session},
        )
        if response.status_code >= 400:
            body = response.json()
            assert body["success"] is False, body
            assert isinstance(body["detail"], str), body
            assert body["detail"], body

    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: (op.label in WRITERS, op.label),
    )
    # Every documented route is fuzzed, with a budget chosen for it.
    assert {op.label for op in operations} == set(BUDGET)
    for operation in operations:
        for plan, strategy, examples in _plans(operation):
            try:
                _fuzz(strategy, examples, call)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} [{plan}]: {exc}")

    elapsed = time.monotonic() - started
    print(
        f"\nschemathesis: {calls.total()} requests in {elapsed:.1f} s; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert not failures, "\n\n".join(failures)
    assert set(calls) == set(BUDGET), calls
    # The fuzz reached past validation: reads of real profiles, and new jobs.
    assert statuses[200] >= 50, statuses
    assert statuses[400] >= 20, statuses

    # Invalid input never stored: every key in Jobs and Profiles is a canonical name.
    jobs = _scan_keys(emulator, stack.refs["JobsTable"])
    profiles = _scan_keys(emulator, stack.refs["ProfilesTable"])
    assert len(jobs) > len(SEEDED), "the fuzz should have queued some valid names"
    bad = sorted({name for name in jobs + profiles if not canonical(name)})
    assert not bad, f"non-canonical usernames stored: {bad[:20]}"


def test_every_check_over_every_phase_of_schemathesis_itself(
    target: DevStack, stack: Stack, emulator: Emulator
) -> None:
    """schemathesis' own runner against the running stack: the document's examples,
    its coverage phase (boundary values, every undeclared method, undeclared and
    malformed media types) and fuzzing, positive and negative, every check."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{target.api_url}/api/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "all",
        "--max-examples",
        str(CLI_EXAMPLES),
        "--workers",
        "1",
        "--header",
        f"x-api-key: {API_KEY}",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
    ]
    if os.environ.get("CI") == "true":
        command += ["--seed", "16"]
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - our own virtualenv's schemathesis, fixed arguments
        command, capture_output=True, text=True, timeout=600, check=False
    )
    summary = result.stdout[result.stdout.rfind("SUMMARY") :]
    print(f"\nschemathesis CLI ({time.monotonic() - started:.1f} s):\n{summary}")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Coverage" in summary, summary
    assert "Fuzzing" in summary, summary
    jobs = _scan_keys(emulator, stack.refs["JobsTable"])
    assert all(canonical(name) for name in jobs), [n for n in jobs if not canonical(n)][:20]


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("natgeo", True),
        ("a.b_c9", True),
        ("a" * 30, True),
        ("a" * 31, False),
        ("", False),
        ("NatGeo", False),
        ("@natgeo", False),
        (".a", False),
        ("a.", False),
        ("a..b", False),
        ("é", False),
        ("a b", False),
        ("a\n", False),
    ],
)
def test_the_scan_predicate_is_the_username_rule(name: str, ok: bool) -> None:
    assert canonical(name) is ok


# ---------------------------------------------------------------- fixed findings (regression tests)


def test_bulk_request_with_undecodable_body_is_a_400(api: LocalApi) -> None:
    status, _, body = api.request("POST", "/api/profile/bulk-request", body=b"\t\xff\xfeY")
    assert status == 400, body
    assert body["success"] is False


def test_bulk_request_with_unsupported_content_type_is_a_4xx(api: LocalApi) -> None:
    status, _, body = api.request(
        "POST",
        "/api/profile/bulk-request",
        body='{"usernames": ["natgeo"]}',
        headers={"Content-Type": "text/plain"},
    )
    assert status in (400, 415), body
    assert body["success"] is False


def _document(api: LocalApi) -> dict[str, Any]:
    status, _, spec = api.request("GET", "/api/openapi.json")
    assert status == 200
    assert isinstance(spec, dict)
    return spec


def test_openapi_documents_the_username_rule(api: LocalApi) -> None:
    for path, operations in _document(api)["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "username":
                    assert "pattern" in parameter["schema"], f"{method.upper()} {path}"


def test_openapi_documents_403_on_admin_routes(api: LocalApi, template: dict[str, Any]) -> None:
    spec = _document(api)
    admin = [r for r in routes(template) if r.api_key_required]
    assert admin
    for route in admin:
        assert "403" in spec["paths"][route.resource][route.method.lower()]["responses"], route
