"""Queue operations: what is waiting where, re-dispatching, dead letters, bulk intake."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from viralspot.clock import Clock, from_iso, to_iso

# The one cursor codec (signed, so only cursors this API issued continue a call).
from viralspot.cursors import decode_cursor, encode_cursor
from viralspot.errors import InvalidInput, StorageBusy, StorageUnavailable, ViralSpotError
from viralspot.jobs import Job, Priority, Source, SweepKind, reopened, sweep_entry
from viralspot.ports import BATCH_ENTRIES, Jobs, Queues
from viralspot.sweeper import to_resend
from viralspot.usernames import normalise_username

logger = Logger(child=True)

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


class MoveTask(BaseModel):
    """An SQS message move task: SQS moves a dead-letter queue's messages back itself."""

    task_handle: str | None = None
    status: str
    approximate_messages: int = Field(description="Messages the task had to move when asked")
    started: bool = Field(description="False: a task already running was left to finish")


class QueueRedrive(BaseModel):
    """One dead-letter queue's redrive: messages moved here and now, or a move task."""

    moved: int = 0
    task: MoveTask | None = None


def queue_status(*, jobs: Jobs, queues: Queues, urls: dict[str, str | None]) -> QueueStatus:
    counts = jobs.queue_facts().counts.by_state()
    depths = {name: queues.depth(url) for name, url in urls.items() if url}
    dead = sum(d.visible + d.in_flight for name, d in depths.items() if name.endswith("_dlq"))
    return QueueStatus(
        jobs=counts,
        totals={status: sum(by.values()) for status, by in counts.items()},
        queues=depths,
        dead_letters=dead,
    )


# process-pending works in chunks: the conditional writes of a chunk's jobs and its
# SendMessageBatch calls run side by side on a small pool. The first chunk is small
# and measures the pace; later ones are sized to take about PENDING_CHUNK_SECONDS, so
# a slow backend makes chunks smaller rather than a call overrun its budget.
PENDING_CHUNK = 100
PENDING_FIRST_CHUNK = 20
PENDING_CHUNK_SECONDS = 1.0
PENDING_WRITERS = 8
# Of the API function's 10 s: stop starting chunks after 6 s, or with 3 s left, so
# the chunk in flight and the answer fit.
PENDING_BUDGET_SECONDS = 6.0
PENDING_RESERVE_MS = 3_000
# HIGH before MEDIUM before LOW; within each, jobs never sent before those with a message.
PENDING_PASSES: tuple[tuple[Priority, SweepKind], ...] = tuple(
    (priority, kind) for priority in Priority for kind in (SweepKind.UNSENT, SweepKind.SENT)
)
# redrive re-opens jobs FAILED for good after their retries ran out, HIGH first.
REOPEN_PASSES: tuple[tuple[Priority, SweepKind], ...] = tuple(
    (priority, SweepKind.EXHAUSTED) for priority in Priority
)
_BAD_CURSOR = "Invalid cursor: pass back the next_cursor of a previous {call} call"


class PendingPosition(BaseModel):
    """Where a process-pending call stopped, handed back as an opaque cursor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Jobs waiting since before the first call began. Jobs it re-sends are stamped
    # later, so they leave this range and no later call sends them again.
    before: datetime
    priority: Priority
    kind: SweepKind
    # The last job handled in this pass: its (sweep_at, username).
    after: tuple[str, str] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> PendingPosition:
        if (self.priority, self.kind) not in PENDING_PASSES + REOPEN_PASSES:
            raise ValueError("not a pass of process-pending or redrive")
        # A position past `before` would make a malformed query (a 500): refused here.
        if self.after is not None and not (
            to_iso(from_iso(self.after[0])) == self.after[0] <= to_iso(self.before)
        ):
            raise ValueError("position out of range")
        return self

    def encode(self, call: str) -> str:
        # Signed for `call`: one operation's cursor is refused by the other.
        return encode_cursor({"process_pending": self.model_dump(mode="json")}, kind=call)

    @classmethod
    def decode(
        cls, cursor: str, call: str, passes: tuple[tuple[Priority, SweepKind], ...]
    ) -> PendingPosition:
        data = decode_cursor(cursor, kind=call).get("process_pending")
        try:
            position = cls.model_validate(data)
        except (ValidationError, ValueError):
            raise InvalidInput(_BAD_CURSOR.format(call=call)) from None
        if (position.priority, position.kind) not in passes:
            raise InvalidInput(_BAD_CURSOR.format(call=call))
        return position


class ProcessPendingResult(BaseModel):
    dispatched: int = Field(description="Jobs whose message SQS accepted in this call")
    skipped: int = Field(description="Jobs that changed meanwhile (taken, or sent by another)")
    failed: int = Field(description="Jobs not sent this time: left unsent for the sweeper")
    examined: int
    has_more: bool = Field(description="Call again with next_cursor to go on")
    next_cursor: str | None = None


def process_pending(
    *,
    store: Jobs,
    dispatcher: Queues,
    clock: Clock,
    cursor: str | None = None,
    limit: int | None = None,
    time_left_ms: Callable[[], int] = lambda: 1_000_000,
    budget_seconds: float = PENDING_BUDGET_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> ProcessPendingResult:
    """Send every PENDING job's message again (the admin's lever after an outage),
    HIGH first, as far as one call's time budget (or `limit` jobs) goes; the answer's
    cursor continues where it stopped. Each job is re-sent once across the calls of
    one cursor chain: conditional on the version read, as the sweeper does."""
    return _walk(
        "process-pending",
        PENDING_PASSES,
        to_resend,
        store=store,
        dispatcher=dispatcher,
        clock=clock,
        cursor=cursor,
        limit=limit,
        time_left_ms=time_left_ms,
        budget_seconds=budget_seconds,
        monotonic=monotonic,
    )


def reopen_exhausted(
    *,
    store: Jobs,
    dispatcher: Queues,
    clock: Clock,
    cursor: str | None = None,
    limit: int | None = None,
    time_left_ms: Callable[[], int] = lambda: 1_000_000,
    budget_seconds: float = PENDING_BUDGET_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> ProcessPendingResult:
    """Open again every job FAILED for good after its retries ran out (never one
    failed permanently: a missing or private profile stays failed), HIGH first: each
    PENDING with its attempts reset, its message sent. The operator's "fix the cause,
    then redrive"; paced and continued by cursor as process_pending is."""
    return _walk(
        "redrive",
        REOPEN_PASSES,
        reopened,
        store=store,
        dispatcher=dispatcher,
        clock=clock,
        cursor=cursor,
        limit=limit,
        time_left_ms=time_left_ms,
        budget_seconds=budget_seconds,
        monotonic=monotonic,
    )


def _walk(
    call: str,
    passes: tuple[tuple[Priority, SweepKind], ...],
    transform: Callable[[Job, datetime], Job],
    *,
    store: Jobs,
    dispatcher: Queues,
    clock: Clock,
    cursor: str | None,
    limit: int | None,
    time_left_ms: Callable[[], int],
    budget_seconds: float,
    monotonic: Callable[[], float],
) -> ProcessPendingResult:
    """Each waiting job of `passes`, in order, to `transform`'s version (conditional
    on the version read) and its message sent, within the time budget; the answer's
    cursor (signed for `call`) goes on where this call stopped."""
    started = monotonic()
    if cursor:
        position = PendingPosition.decode(cursor, call, passes)
    else:
        # 1 ms before now: jobs stamped by this very operation are out of range.
        first = passes[0]
        position = PendingPosition(
            before=clock() - timedelta(milliseconds=1), priority=first[0], kind=first[1]
        )
    tally: Counter[str] = Counter()

    def answer(more: bool) -> ProcessPendingResult:
        return ProcessPendingResult(
            dispatched=tally["dispatched"],
            skipped=tally["skipped"],
            failed=tally["failed"],
            examined=tally.total(),
            has_more=more,
            next_cursor=position.encode(call) if more else None,
        )

    pace: float | None = None  # seconds per job, as measured

    def room() -> int:
        """How many jobs the next chunk may take: none once the time is spent."""
        left = budget_seconds - (monotonic() - started)
        if left <= 0 or time_left_ms() < PENDING_RESERVE_MS:
            return 0
        size = PENDING_FIRST_CHUNK
        if pace is not None:
            size = min(PENDING_CHUNK, int(min(left, PENDING_CHUNK_SECONDS) / max(pace, 1e-6)))
        return size if limit is None else min(size, limit - tally.total())

    resume = passes.index((position.priority, position.kind))
    with ThreadPoolExecutor(max_workers=PENDING_WRITERS) as pool:
        for priority, kind in passes[resume:]:
            if (priority, kind) != (position.priority, position.kind):
                position = position.model_copy(
                    update={"priority": priority, "kind": kind, "after": None}
                )
            jobs = store.due(
                kind, priority, position.before, page=PENDING_CHUNK, after=position.after
            )
            while True:
                size = room()
                if size <= 0:
                    return answer(more=True)
                begun = monotonic()
                chunk = list(islice(jobs, size))
                if not chunk:
                    break
                tally.update(_resend(chunk, transform, store, dispatcher, clock, pool))
                pace = (monotonic() - begun) / len(chunk)
                position = position.model_copy(update={"after": _sweep_key(chunk[-1])})
    return answer(more=False)


def _sweep_key(job: Job) -> tuple[str, str]:
    entry = sweep_entry(job)
    if entry is None:  # due() yields waiting jobs only
        raise ValueError(f"{job.username} is not waiting")
    return to_iso(entry[1]), job.username


def _resend(
    chunk: list[Job],
    transform: Callable[[Job, datetime], Job],
    store: Jobs,
    dispatcher: Queues,
    clock: Clock,
    pool: ThreadPoolExecutor,
) -> Counter[str]:
    """One chunk: each job to a new unsent version (conditional, side by side), the
    winners' messages in batches, then the sends recorded (side by side)."""
    now = clock()
    tally: Counter[str] = Counter()

    def take(job: Job) -> Job | ViralSpotError | None:
        fresh = transform(job, now)
        try:
            return fresh if store.replace(job, fresh) else None
        except ViralSpotError as exc:
            return exc

    taken: list[Job] = []
    for job, outcome in zip(chunk, pool.map(take, chunk), strict=True):
        if isinstance(outcome, Job):
            taken.append(outcome)
        elif outcome is None:
            tally["skipped"] += 1
        else:
            logger.warning(
                "re-send not started", extra={"username": job.username, "error": str(outcome)}
            )
            tally["failed"] += 1
    # A chunk is one pass, so one queue: its batches of ten go out side by side.
    tens = [taken[i : i + BATCH_ENTRIES] for i in range(0, len(taken), BATCH_ENTRIES)]
    sent = [job for batch in pool.map(dispatcher.dispatch_batch, tens) for job in batch]
    # Refused entries stay unsent at their new version: the sweeper sends them after
    # its grace period, as after any failed send.
    tally["failed"] += len(taken) - len(sent)
    tally["dispatched"] += len(sent)

    def record(job: Job) -> None:
        try:
            store.mark_dispatched(job, now)
        except ViralSpotError as exc:
            # The message is in SQS; unrecorded, the sweeper may send one more later,
            # which the worker's claim makes harmless.
            logger.warning("send not recorded", extra={"username": job.username, "error": str(exc)})

    list(pool.map(record, sent))
    return tally


# Of the API function's 10 s (as process-pending's 6 s): moving dead letters by hand
# where SQS cannot may take the first 3 s, re-opening exhausted jobs the rest.
REDRIVE_MOVE_SECONDS = 3.0


class RedriveResult(BaseModel):
    moved: dict[str, int] = Field(
        description="Per queue: messages moved back, or handed to a move task (approximate)"
    )
    tasks: dict[str, MoveTask] = Field(
        default_factory=dict, description="Per queue: the SQS move task doing the work"
    )
    total: int
    reopened: ProcessPendingResult = Field(
        description="Jobs FAILED for good after their retries ran out, opened again (PENDING,"
        " attempts reset) and sent: `dispatched` of them in this call; call again with"
        " `reopened.next_cursor` while `reopened.has_more`"
    )


def redrive(
    *,
    queues: Queues,
    routes: dict[str, tuple[str, str]],
    max_messages: int,
    store: Jobs,
    dispatcher: Queues,
    clock: Clock,
    cursor: str | None = None,
    time_left_ms: Callable[[], int] = lambda: 1_000_000,
    budget_seconds: float = PENDING_BUDGET_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> RedriveResult:
    """ "Fix the cause, then redrive": dead letters back to their queues (routes = name
    -> (dlq url, queue url)), and the jobs whose retries ran out opened again.

    On AWS a move task per queue moves the dead letters (every message, at SQS's pace);
    where move tasks are unavailable (the local emulator) up to `max_messages` per queue
    are moved here. A moved message whose job is FAILED for good finds nothing to claim:
    re-opening the job is what runs it again (a moved copy and the new message are one
    claim, as any duplicate delivery)."""
    if cursor:  # a bad cursor is refused before anything moves
        PendingPosition.decode(cursor, "redrive", REOPEN_PASSES)
    started = monotonic()
    # One deadline for all the queues, on the clock the adapter checks it against.
    deadline = time.monotonic() + min(REDRIVE_MOVE_SECONDS, budget_seconds)
    done = {
        name: queues.redrive(dlq, target, max_messages=max_messages, deadline=deadline)
        for name, (dlq, target) in routes.items()
    }
    moved = {name: result.moved for name, result in done.items()}
    tasks = {name: result.task for name, result in done.items() if result.task is not None}
    again = reopen_exhausted(
        store=store,
        dispatcher=dispatcher,
        clock=clock,
        cursor=cursor,
        time_left_ms=time_left_ms,
        budget_seconds=max(0.0, budget_seconds - (monotonic() - started)),
        monotonic=monotonic,
    )
    return RedriveResult(moved=moved, tasks=tasks, total=sum(moved.values()), reopened=again)


class BulkRequestBody(BaseModel):
    usernames: list[str] = Field(min_length=1, max_length=MAX_BULK)
    source: Source = Source.BULK


class BulkError(StrEnum):
    """Why one name of a bulk request was not queued: what a client switches on
    (`error` is for people and may be reworded)."""

    # The name breaks the username rule: fix it, retrying cannot help.
    INVALID_USERNAME = "invalid_username"
    # Writes to the name's job kept colliding: nothing was queued; retry now.
    STORAGE_BUSY = "storage_busy"
    # Storage could not be reached or throttled the call: nothing was queued; retry later.
    STORAGE_UNAVAILABLE = "storage_unavailable"
    # Anything else (the details are in the logs): nothing was queued.
    FAILED = "failed"


class BulkItem(BaseModel):
    username: str
    success: bool
    data: dict[str, Any] | None = None
    error: str | None = None
    code: BulkError | None = Field(
        default=None, description="Why the name was not queued (absent on success)"
    )


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
            return BulkItem(
                username=raw, success=False, error=str(exc), code=BulkError.INVALID_USERNAME
            )
        try:
            answer = request_one(name)
        except ViralSpotError as exc:
            return BulkItem(
                username=name, success=False, error=_public_error(exc), code=_error_code(exc)
            )
        return BulkItem(
            username=name, success=True, data=answer.model_dump(mode="json", exclude_none=True)
        )

    with ThreadPoolExecutor(max_workers=min(workers, len(usernames))) as pool:
        items = list(pool.map(one, usernames))
    succeeded = sum(item.success for item in items)
    return BulkResult(
        results=items, total=len(items), succeeded=succeeded, failed=len(items) - succeeded
    )


def _error_code(exc: ViralSpotError) -> BulkError:
    if isinstance(exc, StorageBusy):
        return BulkError.STORAGE_BUSY
    if isinstance(exc, StorageUnavailable):
        return BulkError.STORAGE_UNAVAILABLE
    return BulkError.FAILED


def _public_error(exc: ViralSpotError) -> str:
    # Details stay in the logs, as for the single request route.
    if isinstance(exc, StorageUnavailable):
        return "Storage is temporarily unavailable; nothing was queued. Please retry."
    return "Failed to process profile request"
