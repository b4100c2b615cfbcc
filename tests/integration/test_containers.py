"""The local stack's Lambda containers: processes of their own, started on demand up
to a bound, invocations beyond it waiting their turn, a dead or stuck container
replaced."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from devstack.containers import ContainerPool, InvocationFailed

SLEEPER = {
    "Resources": {
        "Sleeper": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "../tests/fixtures/sleeper/",
                "Handler": "app.lambda_handler",
            },
        }
    }
}


def invoke_together(pool: ContainerPool, events: list[dict[str, Any]]) -> list[Any]:
    results: list[Any] = [None] * len(events)
    start = threading.Barrier(len(events))

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = pool.invoke(events[index])
        except InvocationFailed as exc:
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def pool() -> Any:
    pools: list[ContainerPool] = []

    def make(size: int, timeout: float = 10) -> ContainerPool:
        created = ContainerPool("Sleeper", SLEEPER, size=size, timeout_seconds=timeout)
        pools.append(created)
        return created

    yield make
    for created in pools:
        created.close()


def test_busy_containers_make_new_ones_that_run_at_the_same_time(pool: Any) -> None:
    sleepers = pool(3).warm()
    results = invoke_together(sleepers, [{"sleep": 1.0}] * 3)
    assert len({r["pid"] for r in results}) == 3
    # Every invocation was running while every other was: they overlapped.
    assert max(r["started"] for r in results) < min(r["ended"] for r in results)
    assert sleepers.started == 3


def test_no_more_containers_than_the_bound_the_rest_wait(pool: Any) -> None:
    sleepers = pool(2)
    results = invoke_together(sleepers, [{"sleep": 0.5}] * 6)
    assert all(isinstance(r, dict) for r in results), results
    assert len({r["pid"] for r in results}) == 2
    assert sleepers.started == 2


def test_a_warm_container_is_reused(pool: Any) -> None:
    sleepers = pool(4).warm()
    first = sleepers.invoke({})["pid"]
    assert [sleepers.invoke({})["pid"] for _ in range(3)] == [first] * 3
    assert sleepers.started == 1


@pytest.mark.parametrize("event", [{"crash": True}, {"sleep": 5}, {"raise": True}])
def test_a_failed_invocation_is_reported_and_the_next_one_works(
    pool: Any, event: dict[str, Any]
) -> None:
    sleepers = pool(1, timeout=1.0).warm()
    before = sleepers.invoke({})["pid"]
    with pytest.raises(InvocationFailed):
        sleepers.invoke(event)
    after = sleepers.invoke({})["pid"]
    # A handler's exception leaves its container warm; a crash or a timeout replaces it.
    assert (after == before) is ("raise" in event)


def test_a_function_that_cannot_load_is_reported_at_start(pool: Any) -> None:
    broken = {
        "Resources": {
            "Broken": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"CodeUri": "../tests/fixtures/missing/", "Handler": "app.handler"},
            }
        }
    }
    with pytest.raises(InvocationFailed, match="cannot be loaded"):
        ContainerPool("Broken", broken, size=1, timeout_seconds=1).warm()
