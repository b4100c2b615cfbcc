"""Queue operations: what is waiting where, re-dispatching, dead letters, bulk intake."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from pydantic import BaseModel, Field

from viralspot.clock import Clock
from viralspot.errors import InvalidInput, StorageUnavailable, ViralSpotError
from viralspot.jobs import Priority, Source, SweepKind
from viralspot.ports import Dispatcher
from viralspot.queue_stats import QueueFacts
from viralspot.sweeper import Repair, SweepStore, redispatch
from viralspot.usernames import normalise_username

MAX_BULK = 50


class QueueDepth(BaseModel):
    visible: int = 0
    in_flight: int = 0
    delayed: int = 0


class QueueStatus(BaseModel):
    jobs: dict[str, dict[str, int]]
    totals: dict[str, int]
    queues: dict[str, QueueDepth]
    dead_letters: int
    note: str = (
        "Job counts cover live work (PENDING, PROCESSING, FAILED = awaiting retry),"
        " from the queue's counters: exact at rest, estimates under load."
    )


class JobCounter(Protocol):
    def queue_facts(self) -> QueueFacts: ...


class QueueMonitor(Protocol):
    def depth(self, url: str) -> QueueDepth: ...

    def move(self, source_url: str, target_url: str, max_messages: int) -> int: ...


def queue_status(
    *, jobs: JobCounter, queues: QueueMonitor, urls: dict[str, str | None]
) -> QueueStatus:
    counts = jobs.queue_facts().counts.by_state()
    depths = {name: queues.depth(url) for name, url in urls.items() if url}
    dead = sum(d.visible + d.in_flight for name, d in depths.items() if name.endswith("_dlq"))
    return QueueStatus(
        jobs=counts,
        totals={status: sum(by.values()) for status, by in counts.items()},
        queues=depths,
        dead_letters=dead,
    )


class ProcessPendingResult(BaseModel):
    dispatched: int
    skipped: int
    failed: int


def process_pending(
    *, store: SweepStore, dispatcher: Dispatcher, clock: Clock, limit: int = 500
) -> ProcessPendingResult:
    """Re-dispatch every PENDING job now (the admin's lever after an outage)."""
    now = clock()
    results: list[Repair] = []
    for kind in (SweepKind.UNSENT, SweepKind.SENT):
        for priority in Priority:
            for job in store.due(kind, priority, now, page=min(50, limit)):
                if len(results) >= limit:
                    break
                results.append(redispatch(job, store, dispatcher, clock))
    return ProcessPendingResult(
        dispatched=results.count(Repair.REDISPATCHED),
        skipped=results.count(Repair.RACE_LOST),
        failed=results.count(Repair.DISPATCH_FAILED),
    )


class RedriveResult(BaseModel):
    moved: dict[str, int]
    total: int


def redrive(
    *, queues: QueueMonitor, routes: dict[str, tuple[str, str]], max_messages: int
) -> RedriveResult:
    """Move dead letters back to their queues: routes = name -> (dlq url, queue url)."""
    moved = {name: queues.move(dlq, target, max_messages) for name, (dlq, target) in routes.items()}
    return RedriveResult(moved=moved, total=sum(moved.values()))


class BulkRequestBody(BaseModel):
    usernames: list[str] = Field(min_length=1, max_length=MAX_BULK)
    source: Source = Source.BULK


class BulkItem(BaseModel):
    username: str
    success: bool
    data: dict[str, Any] | None = None
    error: str | None = None


class BulkResult(BaseModel):
    results: list[BulkItem]
    total: int
    succeeded: int
    failed: int


def bulk_request(
    usernames: Sequence[str],
    request_one: Callable[[str], BaseModel],
    *,
    workers: int = 8,
) -> BulkResult:
    """Each name through the same intake rule, concurrently; one result per name, in
    order. A bad name or a failed intake is reported on its item, not the batch."""
    if not usernames:
        raise InvalidInput("usernames must list at least one username")
    if len(usernames) > MAX_BULK:
        raise InvalidInput(f"At most {MAX_BULK} usernames per call (got {len(usernames)})")

    def one(raw: str) -> BulkItem:
        try:
            name = normalise_username(raw)
        except InvalidInput as exc:
            return BulkItem(username=raw, success=False, error=str(exc))
        try:
            answer = request_one(name)
        except ViralSpotError as exc:
            return BulkItem(username=name, success=False, error=_public_error(exc))
        return BulkItem(
            username=name, success=True, data=answer.model_dump(mode="json", exclude_none=True)
        )

    with ThreadPoolExecutor(max_workers=min(workers, len(usernames))) as pool:
        items = list(pool.map(one, usernames))
    succeeded = sum(item.success for item in items)
    return BulkResult(
        results=items, total=len(items), succeeded=succeeded, failed=len(items) - succeeded
    )


def _public_error(exc: ViralSpotError) -> str:
    # Details stay in the logs, as for the single request route.
    if isinstance(exc, StorageUnavailable):
        return "Storage is temporarily unavailable; nothing was queued. Please retry."
    return "Failed to process profile request"
