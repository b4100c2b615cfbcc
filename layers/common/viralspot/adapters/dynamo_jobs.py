"""The Jobs table on DynamoDB.

Two sparse global secondary indexes keep every query proportional to live work,
never to completed history, and both are write-sharded by username
(viralspot.sharding): no partition-key value takes more than 1/16 of the writes.

- ActiveQueueIndex (`queue_pk` = "ACTIVE#<shard>", `queue_sk`): only PENDING and
  PROCESSING jobs. `queue_sk` = "<priority rank>#<enqueued_at>#<username>", so the
  jobs ahead of one are a capped COUNT per shard, summed.
- SweepIndex (`sweep_pk` = "<kind>#<priority>#<shard>", `sweep_at`): jobs the
  sweeper may have to act on, by kind (jobs.SweepKind) and priority, so a sweep
  takes HIGH before MEDIUM before LOW and oldest first within each.

The same table holds the queue counters (viralspot.queue_stats) under keys that
no username can take ("#stats#<shard>", "#stats#sample": '#' is not a username
character).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from viralspot.adapters import aws
from viralspot.adapters.codec import deserialize, serialize, value
from viralspot.adapters.dynamo_profiles import profile_from_item
from viralspot.clock import from_iso, to_iso
from viralspot.errors import StorageUnavailable
from viralspot.jobs import Analysis, Job, JobStatus, Priority, SweepKind, claimed, sweep_entry
from viralspot.ports import IntakeBlocked, ProfileGuard
from viralspot.profiles import Profile
from viralspot.queue_stats import (
    STAT_SHARDS,
    PositionFacts,
    QueueFacts,
    Sample,
    summed,
    transition,
)
from viralspot.sharding import INDEX_SHARDS, shard_of, sharded

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")

logger = Logger(child=True)

# The OS's randomness, drawn at each call: containers restored from one SnapStart
# snapshot share the `random` module's state, so they would all pick the same counter
# shards in the same order (docs/scale.md).
_ENTROPY = random.SystemRandom()

ACTIVE_INDEX = "ActiveQueueIndex"
SWEEP_INDEX = "SweepIndex"
ACTIVE_PREFIX = "ACTIVE"
STATS_PREFIX = "#stats"
SAMPLE_KEY = "#stats#sample"
# Items of a shard one position query reads at most. The index projects keys only
# (about 150 bytes an entry), so 20 fit in one 4 KB read unit: a query costs the
# same 0.5 unit whether the shard holds 10 jobs or a million.
POSITION_SHARD_LIMIT = 20

_DATETIME_FIELDS = (
    "enqueued_at",
    "last_attempt",
    "lease_until",
    "next_retry_at",
    "completed_at",
    "updated_at",
    "dispatched_at",
)
_INDEX_FIELDS = ("queue_pk", "queue_sk", "sweep_pk", "sweep_at")

_PROFILE_GUARDS = {
    ProfileGuard.ABSENT: "attribute_not_exists(username)",
    ProfileGuard.SECONDARY: "tier = :secondary",
    ProfileGuard.STALE: (
        "tier = :primary AND (attribute_not_exists(last_scraped_at) OR last_scraped_at < :stale_before)"
    ),
    ProfileGuard.CRAWLED: "tier = :primary AND analysis = :crawl",
}

# DESIGN.md: a new job may replace no job, a COMPLETED one older than the recent
# window, or one FAILED for good (FAILED without next_retry_at).
_JOB_REPLACEABLE = (
    "attribute_not_exists(username)"
    " OR (#status = :completed AND completed_at < :recent_before)"
    " OR (#status = :failed AND attribute_not_exists(next_retry_at))"
)
# A person's request deepening a crawl-depth analysis may replace a job completed
# within the recent window too: the profile's own guard says what it holds.
_JOB_REPLACEABLE_TO_DEEPEN = (
    "attribute_not_exists(username)"
    " OR #status = :completed"
    " OR (#status = :failed AND attribute_not_exists(next_retry_at))"
)


def queue_sort_key(priority: Priority, enqueued_at: datetime, username: str) -> str:
    return f"{priority.rank}#{to_iso(enqueued_at)}#{username}"


def sweep_partition(kind: SweepKind, priority: Priority | None, shard: int) -> str:
    # PROCESSING jobs are not split by priority: the claim that puts a job there
    # does not know its priority before the old item comes back, and expired leases
    # are few (at most the worker's concurrency).
    group = "ANY" if kind is SweepKind.PROCESSING or priority is None else priority.value
    return sharded(f"{kind.value}#{group}", shard)


def job_to_item(job: Job) -> dict[str, Any]:
    """The stored form of a job, index keys derived from its state."""
    data: dict[str, Any] = job.model_dump(mode="python")
    for field in _DATETIME_FIELDS:
        if data.get(field) is not None:
            data[field] = to_iso(data[field])
    for field in ("status", "priority", "source", "profile_type", "error_kind"):
        if data.get(field) is not None:
            data[field] = str(data[field])
    shard = shard_of(job.username)
    if job.is_active:
        data["queue_pk"] = sharded(ACTIVE_PREFIX, shard)
        data["queue_sk"] = queue_sort_key(job.priority, job.enqueued_at, job.username)
    entry = sweep_entry(job)
    if entry is not None:
        kind, since = entry
        data["sweep_pk"] = sweep_partition(kind, job.priority, shard)
        data["sweep_at"] = to_iso(since)
    return data


def job_from_item(item: dict[str, Any]) -> Job:
    data = {k: v for k, v in item.items() if k not in _INDEX_FIELDS}
    for field in _DATETIME_FIELDS:
        if data.get(field) is not None:
            data[field] = from_iso(data[field])
    return Job.model_validate(data)


@cache
def _fan_out() -> ThreadPoolExecutor:
    # One pool per container: the shard queries of one read run side by side, so a
    # sharded read costs one round trip of latency, not sixteen.
    return ThreadPoolExecutor(max_workers=INDEX_SHARDS, thread_name_prefix="shards")


class DynamoJobStore:
    def __init__(
        self,
        jobs_table: str,
        profiles_table: str,
        client: DynamoDBClient | None = None,
        *,
        conflict_budget_seconds: float = aws.CONFLICT_BUDGET_SECONDS,
    ) -> None:
        self._jobs_table = jobs_table
        self._profiles_table = profiles_table
        self._client = client
        self._budget = conflict_budget_seconds

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

    def _write(self, call: Callable[[], T], what: str) -> T:
        """One write, its transaction conflicts retried in place (DESIGN.md)."""
        return aws.retry_conflicts(call, what, budget_seconds=self._budget)

    # -- intake -------------------------------------------------------------

    def read(self, username: str) -> tuple[Job | None, Profile | None]:
        """The job and the profile, strongly consistent, in one BatchGetItem."""
        key = {"Keys": [{"username": value(username)}], "ConsistentRead": True}
        request: dict[str, Any] = {self._jobs_table: key, self._profiles_table: key}
        found: dict[str, list[dict[str, Any]]] = {}
        try:
            for _ in range(5):
                response = self.client.batch_get_item(RequestItems=request)
                for table, items in response.get("Responses", {}).items():
                    found.setdefault(table, []).extend(items)
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    break
            else:
                raise StorageUnavailable("read job and profile: keys left unprocessed")
        except (ClientError, BotoCoreError) as exc:
            raise aws.storage_error(exc, "read job and profile") from exc
        jobs = found.get(self._jobs_table, [])
        profiles = found.get(self._profiles_table, [])
        return (
            job_from_item(deserialize(jobs[0])) if jobs else None,
            profile_from_item(deserialize(profiles[0])) if profiles else None,
        )

    def create(
        self,
        job: Job,
        guard: ProfileGuard,
        *,
        recent_before: datetime,
        stale_before: datetime,
    ) -> None:
        profile_values: dict[str, Any] = {}
        if guard is ProfileGuard.SECONDARY:
            profile_values[":secondary"] = value("secondary")
        elif guard is ProfileGuard.STALE:
            profile_values[":primary"] = value("primary")
            profile_values[":stale_before"] = value(to_iso(stale_before))
        elif guard is ProfileGuard.CRAWLED:
            profile_values[":primary"] = value("primary")
            profile_values[":crawl"] = value(Analysis.CRAWL.value)
        condition_check: dict[str, Any] = {
            "TableName": self._profiles_table,
            "Key": {"username": value(job.username)},
            "ConditionExpression": _PROFILE_GUARDS[guard],
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if profile_values:
            condition_check["ExpressionAttributeValues"] = profile_values
        put: dict[str, Any] = {
            "TableName": self._jobs_table,
            "Item": serialize(job_to_item(job)),
            "ConditionExpression": (
                _JOB_REPLACEABLE_TO_DEEPEN if guard is ProfileGuard.CRAWLED else _JOB_REPLACEABLE
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":completed": value(JobStatus.COMPLETED.value),
                ":failed": value(JobStatus.FAILED.value),
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if guard is not ProfileGuard.CRAWLED:
            put["ExpressionAttributeValues"][":recent_before"] = value(to_iso(recent_before))
        # The job replaced (if any) had left the queue, so the new job's counter
        # delta does not depend on it.
        items: list[Any] = [
            {"ConditionCheck": condition_check},
            {"Put": put},
            {"Update": self._counter_update(transition(None, job))},
        ]
        try:
            self._write(lambda: self.client.transact_write_items(TransactItems=items), "create job")
        except ClientError as exc:
            if aws.error_code(exc) != "TransactionCanceledException":
                raise aws.storage_error(exc, "create job") from exc
            self._raise_for_cancellation(exc)
        except BotoCoreError as exc:
            raise aws.storage_error(exc, "create job") from exc

    def _raise_for_cancellation(self, exc: ClientError) -> None:
        reasons: list[dict[str, Any]] = list(exc.response.get("CancellationReasons", []))  # type: ignore[arg-type]
        codes = [str(r.get("Code", "None")) for r in reasons]
        if any(c in aws.UNAVAILABLE_CANCELLATIONS for c in codes):
            raise StorageUnavailable(f"create job cancelled ({','.join(codes)})") from exc
        unexpected = [c for c in codes if c not in ("None", "ConditionalCheckFailed")]
        if unexpected or len(reasons) != 3 or codes[2] != "None":
            raise aws.storage_error(exc, f"create job cancelled ({','.join(codes)})") from exc
        profile_reason, job_reason, _ = reasons
        profile = (
            profile_from_item(deserialize(profile_reason["Item"]))
            if "Item" in profile_reason
            else None
        )
        job = job_from_item(deserialize(job_reason["Item"])) if "Item" in job_reason else None
        raise IntakeBlocked(job=job, profile=profile) from exc

    def mark_dispatched(self, job: Job, now: datetime) -> Job | None:
        """Record that the job's message is in SQS, so the sweeper leaves it alone;
        None if the job moved on meanwhile (a worker took it, its priority changed)."""
        partition = sweep_partition(SweepKind.SENT, job.priority, shard_of(job.username))
        try:
            response = self._write(
                lambda: self.client.update_item(
                    TableName=self._jobs_table,
                    Key={"username": value(job.username)},
                    UpdateExpression="SET dispatched_at = :at, sweep_pk = :pk, sweep_at = :at",
                    ConditionExpression="request_id = :rid AND #status = :pending AND priority = :p",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":at": value(to_iso(now)),
                        ":pk": value(partition),
                        ":rid": value(job.request_id),
                        ":pending": value(JobStatus.PENDING.value),
                        ":p": value(job.priority.value),
                    },
                    ReturnValues="ALL_NEW",
                ),
                "mark job dispatched",
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise aws.storage_error(exc, "mark job dispatched") from exc
        except BotoCoreError as exc:
            raise aws.storage_error(exc, "mark job dispatched") from exc
        return job_from_item(deserialize(response["Attributes"]))

    def get(self, username: str) -> Job | None:
        try:
            response = self.client.get_item(
                TableName=self._jobs_table,
                Key={"username": value(username)},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise aws.storage_error(exc, "get job") from exc
        item = response.get("Item")
        return job_from_item(deserialize(item)) if item else None

    def count_ahead(self, job: Job, cap: int) -> int | None:
        """Active jobs served before `job`, exactly, or None when there are more than
        `cap`: one capped COUNT per shard, side by side, so the cost is fixed."""
        me = value(queue_sort_key(job.priority, job.enqueued_at, job.username))

        def count(shard: int) -> tuple[int, bool]:
            try:
                response = self.client.query(
                    TableName=self._jobs_table,
                    IndexName=ACTIVE_INDEX,
                    KeyConditionExpression="queue_pk = :shard AND queue_sk < :me",
                    ExpressionAttributeValues={
                        ":shard": value(sharded(ACTIVE_PREFIX, shard)),
                        ":me": me,
                    },
                    Select="COUNT",
                    Limit=POSITION_SHARD_LIMIT,
                )
            except (ClientError, BotoCoreError) as exc:
                raise aws.storage_error(exc, "count queue position") from exc
            return int(response.get("Count", 0)), "LastEvaluatedKey" in response

        results = list(_fan_out().map(count, range(INDEX_SHARDS)))
        total = sum(n for n, _ in results)
        if total > cap or any(more for _, more in results):
            return None
        return total

    def raise_priority(self, job: Job, raised: Job) -> bool:
        """Store `raised` over a waiting `job`, conditional on the version read, together
        with its counters; False if the job is no longer as seen."""
        items: list[Any] = [{"Put": self._conditional_put(raised, job, "raise priority")}]
        delta = transition(job, raised)
        if delta:
            items.append({"Update": self._counter_update(delta)})
        try:
            self._write(
                lambda: self.client.transact_write_items(TransactItems=items), "raise priority"
            )
        except ClientError as exc:
            if aws.error_code(exc) == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons", [])
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False
            raise aws.storage_error(exc, "raise priority") from exc
        except BotoCoreError as exc:
            raise aws.storage_error(exc, "raise priority") from exc
        return True

    # -- worker ---------------------------------------------------------------

    def claim(
        self,
        username: str,
        request_id: str,
        *,
        now: datetime,
        lease_until: datetime,
        max_attempts: int,
        lease_id: str,
    ) -> Job | None:
        """Take the job for one attempt, or None if this message may not run it: a
        duplicate delivery (someone holds a live lease), an older request_id, a
        finished job, or attempts used up (the sweeper closes those)."""
        lease = to_iso(lease_until)
        try:
            response = self._write(
                lambda: self.client.update_item(
                    TableName=self._jobs_table,
                    Key={"username": value(username)},
                    UpdateExpression=(
                        "SET #status = :processing, attempts = attempts + :one, last_attempt = :now,"
                        " lease_until = :lease, lease_id = :lease_id, updated_at = :now,"
                        " sweep_pk = :sweep, sweep_at = :lease"
                        " REMOVE next_retry_at"
                    ),
                    ConditionExpression=(
                        "request_id = :rid AND attempts < :max AND (#status = :pending"
                        " OR (#status = :processing AND lease_until < :now))"
                    ),
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":processing": value(JobStatus.PROCESSING.value),
                        ":pending": value(JobStatus.PENDING.value),
                        ":one": value(1),
                        ":max": value(max_attempts),
                        ":now": value(to_iso(now)),
                        ":lease": value(lease),
                        ":lease_id": value(lease_id),
                        ":rid": value(request_id),
                        ":sweep": value(
                            sweep_partition(SweepKind.PROCESSING, None, shard_of(username))
                        ),
                    },
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ),
                "claim job",
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise aws.storage_error(exc, "claim job") from exc
            raw: dict[str, Any] = dict(exc.response).get("Item") or {}  # type: ignore[assignment]
            # botocore retried a claim whose first try succeeded but whose answer was
            # lost: the job carries our own lease, so the claim is ours.
            if raw and deserialize(raw).get("lease_id") == lease_id:
                mine = job_from_item(deserialize(raw))
                if mine.status is JobStatus.PROCESSING:
                    return mine
            return None
        except BotoCoreError as exc:
            raise aws.storage_error(exc, "claim job") from exc
        before = job_from_item(deserialize(response["Attributes"]))
        taken = claimed(before, now, lease_until, lease_id)
        self._count(transition(before, taken))
        return taken

    def finish(self, claimed: Job, outcome: Job) -> bool:
        """Store `outcome` if we still hold the claim `claimed`; False if we lost it
        (our lease expired and another attempt took the job)."""
        if claimed.lease_until is None:
            raise ValueError("finish() needs the claimed job, with its lease")
        return self._put_if(claimed, outcome, "finish job")

    def replace(self, expected: Job, new: Job) -> bool:
        """Store `new` only if the job is still exactly the `expected` version (as
        `_conditional_put` pins it): two sweepers reading the same job cannot both
        act on it."""
        if expected.updated_at is None:
            raise ValueError("replace() needs a stored job (with updated_at)")
        return self._put_if(expected, new, "replace job")

    def _conditional_put(self, new: Job, expected: Job, what: str) -> dict[str, Any]:
        """A Put of `new` that holds only while the stored job is `expected`: same
        request, status, priority and version (updated_at; the lease of a running job;
        the send of a waiting one). The counters move by `expected` → `new`, so the
        status and priority they are counted by are pinned themselves, not left to
        updated_at: a raise stamped in the same millisecond as the version read (or
        by a container whose clock agrees to the millisecond) still fails the
        condition. Whether a failed job awaits a retry, also counted, is left to
        updated_at, which every write that changes it moves."""
        condition = (
            "request_id = :rid AND #status = :status AND priority = :priority"
            " AND updated_at = :version"
        )
        values: dict[str, Any] = {
            ":rid": value(expected.request_id),
            ":status": value(expected.status.value),
            ":priority": value(expected.priority.value),
            ":version": value(to_iso(expected.updated_at or expected.enqueued_at)),
        }
        if expected.status is JobStatus.PROCESSING and expected.lease_until is not None:
            condition += " AND lease_until = :lease"
            values[":lease"] = value(to_iso(expected.lease_until))
        if expected.status is JobStatus.PENDING:
            # Recording a send changes no updated_at: it is part of a waiting job's version.
            if expected.dispatched_at is None:
                condition += " AND attribute_not_exists(dispatched_at)"
            else:
                condition += " AND dispatched_at = :sent"
                values[":sent"] = value(to_iso(expected.dispatched_at))
        return {
            "TableName": self._jobs_table,
            "Item": serialize(job_to_item(new)),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }

    def _put_if(self, expected: Job, new: Job, what: str) -> bool:
        """Write `new` over `expected` and count the transition; False when the stored
        job is no longer `expected`."""
        put = self._conditional_put(new, expected, what)
        try:
            self._write(lambda: self.client.put_item(**put), what)
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise aws.storage_error(exc, what) from exc
        except BotoCoreError as exc:
            raise aws.storage_error(exc, what) from exc
        self._count(transition(expected, new))
        return True

    # -- counters -------------------------------------------------------------

    def _counter_update(self, delta: Mapping[str, int]) -> dict[str, Any]:
        shard = _ENTROPY.randrange(STAT_SHARDS)
        names = {f"#c{i}": name for i, name in enumerate(delta)}
        values = {f":c{i}": value(n) for i, n in enumerate(delta.values())}
        return {
            "TableName": self._jobs_table,
            "Key": {"username": value(sharded(STATS_PREFIX, shard))},
            "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(delta))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def _count(self, delta: Mapping[str, int]) -> None:
        """Add a transition to the counters after its job write. Best effort: the job
        is already stored, and the counters are estimates (queue_stats)."""
        if not delta:
            return
        update = self._counter_update(delta)
        try:
            self._write(lambda: self.client.update_item(**update), "count transition")
        except (ClientError, BotoCoreError, StorageUnavailable) as exc:
            logger.warning("queue counter not updated", extra={"error": str(exc)})

    def queue_facts(self) -> QueueFacts:
        """The counters and the last sample, in one BatchGetItem of fixed size."""
        keys = [{"username": value(sharded(STATS_PREFIX, s))} for s in range(STAT_SHARDS)]
        keys.append({"username": value(SAMPLE_KEY)})
        shards: list[dict[str, int]] = []
        sample: Sample | None = None
        for raw in self._batch_get(keys, "read queue counters"):
            data = deserialize(raw)
            name = str(data.pop("username"))
            if name == SAMPLE_KEY:
                sample = _sample_from(data)
            else:
                shards.append(_numbers(data))
        return QueueFacts(counts=summed(shards), sample=sample)

    def position_facts(self, job: Job, cap: int) -> PositionFacts:
        """The exact count ahead (None beyond `cap`) and the queue facts, read side by
        side: one round trip of latency, a fixed number of read units."""
        facts = _fan_out().submit(self.queue_facts)
        ahead = self.count_ahead(job, cap)
        return PositionFacts(ahead=ahead, facts=facts.result())

    def save_sample(self, sample: Sample, *, replaces: Sample | None) -> bool:
        """Store `sample` if the stored one is still `replaces` (one sweeper wins)."""
        item: dict[str, Any] = {"username": SAMPLE_KEY, "at": to_iso(sample.at), **sample.totals}
        if sample.previous is not None:
            item["prev_at"] = to_iso(sample.previous.at)
            item.update({f"prev_{k}": v for k, v in sample.previous.totals.items()})
        condition = "attribute_not_exists(username)" if replaces is None else "#at = :previous"
        kwargs: dict[str, Any] = {
            "TableName": self._jobs_table,
            "Item": serialize(item),
            "ConditionExpression": condition,
        }
        if replaces is not None:
            kwargs["ExpressionAttributeNames"] = {"#at": "at"}
            kwargs["ExpressionAttributeValues"] = {":previous": value(to_iso(replaces.at))}
        try:
            self._write(lambda: self.client.put_item(**kwargs), "save queue sample")
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise aws.storage_error(exc, "save queue sample") from exc
        except BotoCoreError as exc:
            raise aws.storage_error(exc, "save queue sample") from exc
        return True

    def _batch_get(self, keys: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
        request: dict[str, Any] = {self._jobs_table: {"Keys": keys}}
        found: list[dict[str, Any]] = []
        try:
            for _ in range(5):
                response = self.client.batch_get_item(RequestItems=request)
                found.extend(response.get("Responses", {}).get(self._jobs_table, []))
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    return found
        except (ClientError, BotoCoreError) as exc:
            raise aws.storage_error(exc, what) from exc
        raise StorageUnavailable(f"{what}: keys left unprocessed")

    # -- sweeper --------------------------------------------------------------

    def due(
        self,
        kind: SweepKind,
        priority: Priority | None,
        before: datetime,
        *,
        page: int = 50,
        after: tuple[str, str] | None = None,
    ) -> Iterator[Job]:
        """Jobs of `kind` (and `priority`; PROCESSING jobs are kept per shard only)
        whose sweep time is at or before `before`, in (sweep_at, username) order across
        the shards, read lazily page by page from the sparse SweepIndex (never the
        table). `after` resumes past that (sweep_at, username) position."""
        streams = [
            _tie_sorted(
                self._due_in(sweep_partition(kind, priority, shard), to_iso(before), page, after)
            )
            for shard in range(INDEX_SHARDS)
        ]
        for _, job in heapq.merge(*streams, key=lambda entry: entry[0]):
            yield job

    def _due_in(
        self, partition: str, before: str, page: int, after: tuple[str, str] | None = None
    ) -> Iterator[tuple[tuple[str, str], Job]]:
        start: dict[str, Any] | None = None
        condition = "sweep_pk = :pk AND sweep_at <= :before"
        values: dict[str, Any] = {":pk": value(partition), ":before": value(before)}
        if after is not None:
            condition = "sweep_pk = :pk AND sweep_at BETWEEN :after AND :before"
            values[":after"] = value(after[0])
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._jobs_table,
                "IndexName": SWEEP_INDEX,
                "KeyConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "Limit": page,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            try:
                response = self.client.query(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise aws.storage_error(exc, "query due jobs") from exc
            for raw in response.get("Items", []):
                item = deserialize(raw)
                key = (str(item["sweep_at"]), str(item["username"]))
                if after is None or key > after:
                    yield key, job_from_item(item)
            start = response.get("LastEvaluatedKey")
            if not start:
                return


def _tie_sorted(
    stream: Iterator[tuple[tuple[str, str], Job]],
) -> Iterator[tuple[tuple[str, str], Job]]:
    """The index orders a shard by sweep_at only; jobs stamped in the same millisecond
    come in no promised order. Sorting each such run by username makes the merged
    order total, so a position (sweep_at, username) means the same on every read."""
    run: list[tuple[tuple[str, str], Job]] = []
    for entry in stream:
        if run and entry[0][0] != run[0][0][0]:
            yield from sorted(run, key=lambda e: e[0])
            run = []
        run.append(entry)
    yield from sorted(run, key=lambda e: e[0])


def _sample_from(data: Mapping[str, Any]) -> Sample | None:
    if "at" not in data:
        return None
    totals = {k: v for k, v in _numbers(data).items() if not k.startswith("prev_")}
    previous = None
    if "prev_at" in data:
        previous = Sample(
            at=from_iso(str(data["prev_at"])),
            totals={k[5:]: v for k, v in _numbers(data).items() if k.startswith("prev_")},
        )
    return Sample(at=from_iso(str(data["at"])), totals=totals, previous=previous)


def _numbers(data: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}
