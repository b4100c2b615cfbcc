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
    cold = invoke_together(sleepers, [{"sleep": 1.0}] * 3)
    assert len({r["pid"] for r in cold}) == 3
    assert sleepers.started == 3
    # Now all three are warm: three invocations at once each get one, and every
    # one was running while every other was.
    warm = invoke_together(sleepers, [{"sleep": 1.0}] * 3)
    assert {r["pid"] for r in warm} == {r["pid"] for r in cold}
    assert max(r["started"] for r in warm) < min(r["ended"] for r in warm)


def test_no_more_containers_than_the_bound_the_rest_wait(pool: Any) -> None:
    sleepers = pool(2)
    results = invoke_together(sleepers, [{"sleep": 0.5}] * 6)
    assert all(isinstance(r, dict) for r in results), results
    assert len({r["pid"] for r in results}) == 2
    assert sleepers.started == 2


def test_waiting_callers_are_served_in_arrival_order(pool: Any) -> None:
    sleepers = pool(1).warm()
    started: dict[int, float] = {}
    busy = threading.Thread(target=sleepers.invoke, args=({"sleep": 1.0},))
    busy.start()
    waiters = []
    for index in range(5):

        def call(i: int = index) -> None:
            started[i] = sleepers.invoke({})["started"]

        thread = threading.Thread(target=call)
        thread.start()
        waiters.append(thread)
        # Queued one after another while the single container is busy.
        while len(sleepers._turns) < index + 1:
            threading.Event().wait(0.01)
    for thread in [busy, *waiters]:
        thread.join(timeout=60)
    assert sorted(started, key=started.__getitem__) == [0, 1, 2, 3, 4]


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
