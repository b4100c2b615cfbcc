"""The Jobs table on DynamoDB.

Two sparse global secondary indexes keep every query proportional to live work,
never to completed history:

- ActiveQueueIndex (`queue_pk`, `queue_sk`): only PENDING and PROCESSING jobs.
  `queue_sk` = "<priority rank>#<enqueued_at>#<username>", so "jobs ahead of me"
  is one COUNT query on a key range.
- SweepIndex (`sweep_pk`, `sweep_at`): jobs the sweeper may have to act on,
  partitioned by status; `sweep_at` is when it should look (PENDING: the last
  dispatch; PROCESSING: the lease expiry; FAILED awaiting retry: next_retry_at).
  COMPLETED and FAILED-for-good jobs carry neither key and so are in neither index.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from viralspot.adapters import aws
from viralspot.adapters.codec import deserialize, serialize, value
from viralspot.adapters.dynamo_profiles import profile_from_item
from viralspot.clock import from_iso, to_iso
from viralspot.errors import StorageUnavailable
from viralspot.jobs import Job, JobStatus, Priority
from viralspot.ports import IntakeBlocked, ProfileGuard, WriteConflict

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ACTIVE_INDEX = "ActiveQueueIndex"
SWEEP_INDEX = "SweepIndex"
ACTIVE_PARTITION = "ACTIVE"

_DATETIME_FIELDS = (
    "enqueued_at",
    "last_attempt",
    "lease_until",
    "next_retry_at",
    "completed_at",
    "updated_at",
)
_INDEX_FIELDS = ("queue_pk", "queue_sk", "sweep_pk", "sweep_at")

_PROFILE_GUARDS = {
    ProfileGuard.ABSENT: "attribute_not_exists(username)",
    ProfileGuard.SECONDARY: "tier = :secondary",
    ProfileGuard.STALE: (
        "tier = :primary AND (attribute_not_exists(last_scraped_at) OR last_scraped_at < :stale_before)"
    ),
}

# DESIGN.md: a new job may replace no job, a COMPLETED one older than the recent
# window, or one FAILED for good (FAILED without next_retry_at).
_JOB_REPLACEABLE = (
    "attribute_not_exists(username)"
    " OR (#status = :completed AND completed_at < :recent_before)"
    " OR (#status = :failed AND attribute_not_exists(next_retry_at))"
)


def queue_sort_key(priority: Priority, enqueued_at: datetime, username: str) -> str:
    return f"{priority.rank}#{to_iso(enqueued_at)}#{username}"


def job_to_item(job: Job) -> dict[str, Any]:
    """The stored form of a job, index keys derived from its state."""
    data: dict[str, Any] = job.model_dump(mode="python")
    for field in _DATETIME_FIELDS:
        if data.get(field) is not None:
            data[field] = to_iso(data[field])
    for field in ("status", "priority", "source", "profile_type", "error_kind"):
        if data.get(field) is not None:
            data[field] = str(data[field])
    if job.is_active:
        data["queue_pk"] = ACTIVE_PARTITION
        data["queue_sk"] = queue_sort_key(job.priority, job.enqueued_at, job.username)
    sweep_at = _sweep_at(job)
    if sweep_at is not None:
        data["sweep_pk"] = job.status.value
        data["sweep_at"] = to_iso(sweep_at)
    return data


def _sweep_at(job: Job) -> datetime | None:
    if job.status is JobStatus.PENDING:
        return job.updated_at or job.enqueued_at
    if job.status is JobStatus.PROCESSING:
        return job.lease_until
    if job.awaiting_retry:
        return job.next_retry_at
    return None


def job_from_item(item: dict[str, Any]) -> Job:
    data = {k: v for k, v in item.items() if k not in _INDEX_FIELDS}
    for field in _DATETIME_FIELDS:
        if data.get(field) is not None:
            data[field] = from_iso(data[field])
    return Job.model_validate(data)


class DynamoJobStore:
    def __init__(
        self,
        jobs_table: str,
        profiles_table: str,
        client: DynamoDBClient | None = None,
    ) -> None:
        self._jobs_table = jobs_table
        self._profiles_table = profiles_table
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

    # -- intake -------------------------------------------------------------

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
            "ConditionExpression": _JOB_REPLACEABLE,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":completed": value(JobStatus.COMPLETED.value),
                ":failed": value(JobStatus.FAILED.value),
                ":recent_before": value(to_iso(recent_before)),
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            items: list[Any] = [{"ConditionCheck": condition_check}, {"Put": put}]
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if aws.error_code(exc) != "TransactionCanceledException":
                raise aws.storage_error(exc, "create job") from exc
            self._raise_for_cancellation(exc)
        except BotoCoreError as exc:
            raise aws.storage_error(exc, "create job") from exc

    def _raise_for_cancellation(self, exc: ClientError) -> None:
        reasons: list[dict[str, Any]] = list(exc.response.get("CancellationReasons", []))  # type: ignore[arg-type]
        codes = [str(r.get("Code", "None")) for r in reasons]
        if "TransactionConflict" in codes:
            raise WriteConflict() from exc
        if any(c in aws.UNAVAILABLE_CANCELLATIONS for c in codes):
            raise StorageUnavailable(f"create job cancelled ({','.join(codes)})") from exc
        unexpected = [c for c in codes if c not in ("None", "ConditionalCheckFailed")]
        if unexpected or len(reasons) != 2:
            raise aws.storage_error(exc, f"create job cancelled ({','.join(codes)})") from exc
        profile_reason, job_reason = reasons
        profile = (
            profile_from_item(deserialize(profile_reason["Item"]))
            if "Item" in profile_reason
            else None
        )
        job = job_from_item(deserialize(job_reason["Item"])) if "Item" in job_reason else None
        raise IntakeBlocked(job=job, profile=profile) from exc

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

    def count_ahead(self, job: Job) -> int:
        sort_key = queue_sort_key(job.priority, job.enqueued_at, job.username)
        query = {
            "IndexName": ACTIVE_INDEX,
            "KeyConditionExpression": "queue_pk = :active AND queue_sk < :me",
            "ExpressionAttributeValues": {
                ":active": value(ACTIVE_PARTITION),
                ":me": value(sort_key),
            },
            "Select": "COUNT",
        }
        return sum(int(page.get("Count", 0)) for page in self._pages(query, "count queue position"))

    def raise_priority(self, job: Job, priority: Priority, now: datetime) -> Job | None:
        below = [p for p in Priority if p.rank > priority.rank]
        if not below or not (job.status is JobStatus.PENDING or job.awaiting_retry):
            return None
        lower = [f":below{i}" for i in range(len(below))]
        values: dict[str, Any] = {
            **{name: value(p.value) for name, p in zip(lower, below, strict=True)},
            ":p": value(priority.value),
            ":now": value(to_iso(now)),
            ":rid": value(job.request_id),
            ":status": value(job.status.value),
        }
        if job.status is JobStatus.PENDING:
            # Its place in the active index moves with it; sweep_at is the new send.
            update = "SET priority = :p, queue_sk = :sk, updated_at = :now, sweep_at = :now"
            values[":sk"] = value(queue_sort_key(priority, job.enqueued_at, job.username))
            waiting = "#status = :status"
        else:
            # Awaiting its retry: not in the active index, and the retry time stands.
            update = "SET priority = :p, updated_at = :now"
            waiting = "#status = :status AND attribute_exists(next_retry_at)"
        try:
            response = self.client.update_item(
                TableName=self._jobs_table,
                Key={"username": value(job.username)},
                UpdateExpression=update,
                # Only ever upward, and only while the job still waits as we saw it: a
                # request holding an older snapshot must neither raise it twice nor
                # lower a job someone else already raised.
                ConditionExpression=(
                    f"request_id = :rid AND {waiting} AND priority IN ({', '.join(lower)})"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise aws.storage_error(exc, "raise priority") from exc
        except BotoCoreError as exc:
            raise aws.storage_error(exc, "raise priority") from exc
        return job_from_item(deserialize(response["Attributes"]))

    # -- worker ---------------------------------------------------------------

    def claim(
        self,
        username: str,
        request_id: str,
        *,
        now: datetime,
        lease_until: datetime,
        max_attempts: int,
    ) -> Job | None:
        """Take the job for one attempt, or None if this message may not run it: a
        duplicate delivery (someone holds a live lease), an older request_id, a
        finished job, or attempts used up (the sweeper closes those)."""
        try:
            response = self.client.update_item(
                TableName=self._jobs_table,
                Key={"username": value(username)},
                UpdateExpression=(
                    "SET #status = :processing, attempts = attempts + :one, last_attempt = :now,"
                    " lease_until = :lease, updated_at = :now, sweep_pk = :processing, sweep_at = :lease"
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
                    ":lease": value(to_iso(lease_until)),
                    ":rid": value(request_id),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise aws.storage_error(exc, "claim job") from exc
        except BotoCoreError as exc:
            raise aws.storage_error(exc, "claim job") from exc
        return job_from_item(deserialize(response["Attributes"]))

    def finish(self, claimed: Job, outcome: Job) -> bool:
        """Store `outcome` if we still hold the claim `claimed`; False if we lost it
        (our lease expired and another attempt took the job)."""
        if claimed.lease_until is None:
            raise ValueError("finish() needs the claimed job, with its lease")
        return self._put_if(
            outcome,
            "request_id = :rid AND #status = :processing AND lease_until = :lease",
            {
                ":rid": claimed.request_id,
                ":processing": JobStatus.PROCESSING.value,
                ":lease": to_iso(claimed.lease_until),
            },
            "finish job",
        )

    def _put_if(self, job: Job, condition: str, values: dict[str, Any], what: str) -> bool:
        """Write the whole job if `condition` holds; False when it does not."""
        try:
            self.client.put_item(
                TableName=self._jobs_table,
                Item=serialize(job_to_item(job)),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={k: value(v) for k, v in values.items()},
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise aws.storage_error(exc, what) from exc
        except BotoCoreError as exc:
            raise aws.storage_error(exc, what) from exc
        return True

    def _pages(self, query: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
        """Every page of a query, following LastEvaluatedKey."""
        start: dict[str, Any] | None = None
        while True:
            kwargs = {**query, "TableName": self._jobs_table}
            if start:
                kwargs["ExclusiveStartKey"] = start
            try:
                response: dict[str, Any] = dict(self.client.query(**kwargs))
            except (ClientError, BotoCoreError) as exc:
                raise aws.storage_error(exc, what) from exc
            yield response
            start = response.get("LastEvaluatedKey")
            if not start:
                return

    # -- sweeper --------------------------------------------------------------

    def due(
        self,
        status: JobStatus,
        before: datetime,
        *,
        limit: int,
        start: dict[str, Any] | None = None,
    ) -> tuple[list[Job], dict[str, Any] | None]:
        """One page of jobs in `status` whose sweep time is at or before `before`,
        oldest first, from the sparse SweepIndex (never the table)."""
        kwargs: dict[str, Any] = {
            "TableName": self._jobs_table,
            "IndexName": SWEEP_INDEX,
            "KeyConditionExpression": "sweep_pk = :status AND sweep_at <= :before",
            "ExpressionAttributeValues": {
                ":status": value(status.value),
                ":before": value(to_iso(before)),
            },
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        try:
            response = self.client.query(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise aws.storage_error(exc, "query due jobs") from exc
        jobs = [job_from_item(deserialize(item)) for item in response.get("Items", [])]
        return jobs, response.get("LastEvaluatedKey")

    def replace(self, expected: Job, new: Job) -> bool:
        """Store `new` only if the job is still exactly the `expected` version
        (same request, status and updated_at): two sweepers reading the same job
        cannot both act on it."""
        if expected.updated_at is None:
            raise ValueError("replace() needs a stored job (with updated_at)")
        return self._put_if(
            new,
            "request_id = :rid AND #status = :status AND updated_at = :version",
            {
                ":rid": expected.request_id,
                ":status": expected.status.value,
                ":version": to_iso(expected.updated_at),
            },
            "replace job",
        )

    def active_counts(self) -> dict[str, dict[str, int]]:
        """Jobs by status and priority, from the SweepIndex: PENDING, PROCESSING and
        FAILED awaiting retry. Cost follows live work, not completed history."""
        counts: dict[str, dict[str, int]] = {}
        for status in (JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.FAILED):
            by_priority = {p.value: 0 for p in Priority}
            query = {
                "IndexName": SWEEP_INDEX,
                "KeyConditionExpression": "sweep_pk = :status",
                "ExpressionAttributeValues": {":status": value(status.value)},
                "ProjectionExpression": "priority",
            }
            for page in self._pages(query, "count jobs"):
                for item in page.get("Items", []):
                    priority = str(deserialize(item).get("priority", ""))
                    by_priority[priority] = by_priority.get(priority, 0) + 1
            counts[status.value] = by_priority
        return counts
