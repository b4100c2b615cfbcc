"""Load on the local stack over loopback: concurrent clients, new and duplicate requests.

    PYTHONPATH=layers/common:. python bench/load.py \
        [--requests 2000] [--usernames 300] [--clients 32] [--max-seconds 60] [--fresh-connections]
        [--api-concurrency 4]

Starts the real local stack as a subprocess (`python -m devstack --no-workers
--no-schedules` on free 127.0.0.1 ports: the API Gateway-shaped HTTP server,
the API function's handler, the embedded moto server), then `--clients` threads
with keep-alive HTTP connections send POST /api/profile/{username}/request for
usernames drawn at random from `--usernames` (so most requests are duplicates,
many of them concurrent), until `--requests` are answered or `--max-seconds`
pass. One username in five asks as source=api (MEDIUM, medium queue), the others
as frontend (HIGH, high queue), always the same source per username, so no
request raises a waiting job's priority and messages must equal jobs.

Afterwards, read straight from the emulator: job items (the Jobs table's queue
counters left out) must equal the distinct usernames requested, and messages
across the queues must equal the jobs (no worker runs, so nothing is consumed).

The local stack runs the API function in up to `--api-concurrency` containers
(devstack.containers: one process each, one invocation at a time, as Lambda
runs them), started as concurrent calls need them; calls beyond that wait their
turn in arrival order. The emulator serves every container from the stack's own
process. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from bench.common import percentile, table
from devstack.emulator import REGION
from devstack.template import load_template
from viralspot.adapters.dynamo_jobs import STATS_PREFIX

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    requested: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def source_for(index: int) -> str:
    return "api" if index % 5 == 0 else "frontend"


def client_loop(
    port: int,
    plan: list[int],
    cursor: list[int],
    cursor_lock: threading.Lock,
    deadline: float,
    results: Results,
    fresh: bool,
) -> None:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        while time.monotonic() < deadline:
            if fresh:
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=30)
            with cursor_lock:
                if cursor[0] >= len(plan):
                    return
                index = plan[cursor[0]]
                cursor[0] += 1
            name = f"load_{index}"
            path = f"/api/profile/{name}/request?source={source_for(index)}"
            start = time.perf_counter()
            try:
                connection.request("POST", path, headers={"Content-Length": "0"})
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=30)
                with results.lock:
                    results.errors[type(exc).__name__] += 1
                    results.requested.add(name)  # it may have been stored
                continue
            elapsed = (time.perf_counter() - start) * 1000
            answer = "?"
            if response.status == 200:
                data = json.loads(body).get("data", {})
                answer = str(data.get("skip_reason") or data.get("profile_type") or "?")
            with results.lock:
                results.latencies.append(elapsed)
                results.statuses[response.status] += 1
                results.answers[answer] += 1
                results.requested.add(name)
    finally:
        connection.close()


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/api/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the local stack did not answer /api/health in time")


@contextmanager
def make_run(
    api_port: int, emulator_port: int, *arguments: str, stop_seconds: float = 20
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m devstack` (what `make run` runs, with `arguments`) in a process of its
    own, serving on api_port with its emulator on emulator_port; the tail of its log
    printed if the caller fails; stopped as Ctrl-C would stop it, then killed after
    `stop_seconds`."""
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "devstack",
                "--host",
                HOST,
                "--port",
                str(api_port),
                "--emulator-port",
                str(emulator_port),
                *arguments,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(api_port, process)
            yield process
        except BaseException:
            log.seek(0)
            print(log.read().decode("utf-8", "replace")[-3000:], file=sys.stderr)
            raise
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=stop_seconds)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def probe(port: int, fresh: bool, runs: int = 30) -> float:
    """Median ms of GET /api/health from one client, sequentially."""
    samples = []
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    for _ in range(runs):
        if fresh:
            connection.close()
            connection = http.client.HTTPConnection(HOST, port, timeout=10)
        start = time.perf_counter()
        connection.request("GET", "/api/health")
        connection.getresponse().read()
        samples.append((time.perf_counter() - start) * 1000)
    connection.close()
    return statistics.median(samples)


def resource_names() -> tuple[str, list[str], list[str]]:
    """Jobs table and queue logical ids, as create_stack names them, from the template."""
    template = load_template()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    jobs = env["JOBS_TABLE"]["Ref"]
    queues = [env[f"{p}_QUEUE_URL"]["Ref"] for p in ("HIGH", "MEDIUM", "LOW")]
    dlqs = [env[f"{p}_DLQ_URL"]["Ref"] for p in ("HIGH", "MEDIUM", "LOW")]
    return jobs, queues, dlqs


def emulator_client(service: str, port: int) -> Any:
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        endpoint_url=f"http://{HOST}:{port}",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the emulator's fixed dummy
    )


def count_jobs(dynamodb: Any, table_name: str) -> int:
    total = 0
    # The queue counters live in the same table under keys no username can take.
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "Select": "COUNT",
        "FilterExpression": "NOT begins_with(username, :counters)",
        "ExpressionAttributeValues": {":counters": {"S": STATS_PREFIX}},
    }
    while True:
        page = dynamodb.scan(**kwargs)
        total += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def queue_depth(sqs: Any, name: str) -> int:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--usernames", type=int, default=300)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=7, help="random seed of the request mix")
    parser.add_argument(
        "--api-concurrency", type=int, default=4, help="API containers the stack may run"
    )
    parser.add_argument(
        "--fresh-connections",
        action="store_true",
        help="one TCP connection per request instead of keep-alive",
    )
    args = parser.parse_args()

    rng = random.Random(args.seed)
    plan = [rng.randrange(args.usernames) for _ in range(args.requests)]
    api_port, emulator_port = free_port(), free_port()
    with make_run(
        api_port,
        emulator_port,
        "--no-workers",
        "--no-schedules",
        "--api-concurrency",
        str(args.api_concurrency),
    ):
        health_keepalive = probe(api_port, fresh=False)
        health_fresh = probe(api_port, fresh=True)
        results = Results()
        cursor = [0]
        cursor_lock = threading.Lock()
        start = time.perf_counter()
        deadline = time.monotonic() + args.max_seconds
        threads = [
            threading.Thread(
                target=client_loop,
                args=(
                    api_port,
                    plan,
                    cursor,
                    cursor_lock,
                    deadline,
                    results,
                    args.fresh_connections,
                ),
            )
            for _ in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start

        jobs_table, queues, dlqs = resource_names()
        sqs = emulator_client("sqs", emulator_port)
        jobs = count_jobs(emulator_client("dynamodb", emulator_port), jobs_table)
        messages = sum(queue_depth(sqs, q) for q in queues)
        dead = sum(queue_depth(sqs, q) for q in dlqs)

    answered = len(results.latencies)
    ordered = sorted(results.latencies)
    distinct = len(results.requested)
    stopped = "yes" if cursor[0] < len(plan) else "no"
    rows = [
        [
            "requests answered",
            answered,
            f"of {args.requests} planned; stopped by the time limit: {stopped}",
        ],
        [
            "clients (threads)",
            args.clients,
            f"{'a new connection per request' if args.fresh_connections else 'keep-alive'}; "
            f"{args.usernames} usernames, seed {args.seed}",
        ],
        ["wall time s", f"{elapsed:.1f}", f"limit {args.max_seconds:g} s"],
        [
            "requests/s",
            f"{answered / elapsed:.1f}",
            f"up to {args.api_concurrency} API containers",
        ],
        [
            "latency ms p50 / p95 / p99",
            " / ".join(f"{percentile(ordered, p):.0f}" for p in (0.5, 0.95, 0.99))
            if ordered
            else "—",
            f"mean {statistics.mean(ordered):.0f}" if ordered else "",
        ],
        [
            "status codes",
            ", ".join(f"{s}: {n}" for s, n in sorted(results.statuses.items())),
            ", ".join(f"{e}: {n}" for e, n in results.errors.items()) or "no connection errors",
        ],
        ["answers", ", ".join(f"{a}: {n}" for a, n in results.answers.most_common()), ""],
        ["distinct usernames requested", distinct, ""],
        ["Jobs items", jobs, "OK: == distinct usernames" if jobs == distinct else "MISMATCH"],
        [
            "messages in the high, medium and low queues",
            messages,
            "OK: == jobs" if messages == jobs else "MISMATCH",
        ],
        ["messages in dead-letter queues", dead, ""],
        [
            "one client, GET /api/health ms: keep-alive / new connection",
            f"{health_keepalive:.1f} / {health_fresh:.1f}",
            "median of 30 each, before the load",
        ],
    ]
    print(f"Load on the local stack (127.0.0.1), load average {os.getloadavg()[0]:.1f}")
    print(table(["measure", "value", "note"], rows))


if __name__ == "__main__":
    main()
