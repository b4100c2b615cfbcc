"""The seed's request algorithm, ported step by step to DynamoDB: the baseline.

The seed (README, "The API": the original specification of the request endpoint;
its "Execution Flow" and `request_profile_processing`) keeps
its queue in a Postgres table and decides a request with separate reads and an
unconditional insert. This is the port a straightforward migration would make:

- `SeedProfiles`, key `username` (the seed's `primary_profiles`);
- `SeedQueue`, key `id` (a uuid, as the Postgres row id), columns username,
  source, priority, timestamp, status, attempts, request_id; one GSI on
  `username` (`UsernameIndex`) for "is this username queued / recently done".

Steps of one request, each its own call, as in the seed:

1. GetItem SeedProfiles -> "already fully processed";
2. Query UsernameIndex, filter status IN (PENDING, PROCESSING) -> "already in queue"
   (with a position estimate);
3. Query UsernameIndex, filter status = COMPLETED AND timestamp >= now - 10 min,
   then GetItem SeedProfiles again ("double-check") -> "recently processed";
4. PutItem SeedQueue (no condition: the seed has none);
5. verify: Query UsernameIndex, filter status = PENDING;
6. position: the seed's `select count(id) where priority = ... and timestamp < ...
   and status in (...)`. Without a sparse index the port can only Scan the table
   with a FilterExpression (Select=COUNT), paginated to the end: every page reads
   every item, completed history included.

The seed's other request paths, ported the same way (bench/capacity.py measures
them): `status` (checkProfileStatus: GetItem profile, the username's newest queue
row by Query, then the position count), `pending_job_stats` (getPendingJobStats:
four counts run side by side, as its Promise.all, each a filtered Scan) and `bulk`
(bulkRequestProcessing: every name through `request` at once, as its
Promise.allSettled).

The seed's catch-all error handling (optimistic "queued" answers on failure) is
left out: it changes answers on failure, not the cost of a request, and would
hide a broken benchmark. Not a module of the project: the benchmarks import it.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PROFILES_TABLE = "SeedProfiles"
QUEUE_TABLE = "SeedQueue"
USERNAME_INDEX = "UsernameIndex"
RECENT_WINDOW = timedelta(minutes=10)
ACTIVE = ("PENDING", "PROCESSING")
BATCH = 25


def _s(text: str) -> dict[str, str]:
    return {"S": text}


def now_iso() -> str:
    # The seed uses datetime.now().isoformat(); UTC here so every writer agrees.
    return datetime.now(UTC).isoformat()


@dataclass
class SeedIntake:
    """The seed's `request_profile_processing` over a low-level DynamoDB client."""

    client: Any
    profiles_table: str = PROFILES_TABLE
    queue_table: str = QUEUE_TABLE

    # -- set-up (not on the request path) ------------------------------------

    def create_tables(self) -> None:
        self.client.create_table(
            TableName=self.profiles_table,
            AttributeDefinitions=[{"AttributeName": "username", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "username", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.client.create_table(
            TableName=self.queue_table,
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "username", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": USERNAME_INDEX,
                    "KeySchema": [{"AttributeName": "username", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )

    def add_profile(self, username: str) -> None:
        self.client.put_item(
            TableName=self.profiles_table,
            Item={"username": _s(username), "created_at": _s(now_iso())},
        )

    def load_completed(self, usernames: list[str], at: datetime) -> None:
        """History: one COMPLETED queue row per username, finished at `at`."""
        stamp = at.isoformat()
        for start in range(0, len(usernames), BATCH):
            chunk = [
                {"PutRequest": {"Item": self._row(name, "api", "MEDIUM", stamp, "COMPLETED")}}
                for name in usernames[start : start + BATCH]
            ]
            self.client.batch_write_item(RequestItems={self.queue_table: chunk})

    def load_active(self, usernames: list[str], since: datetime) -> None:
        """A backlog: one PENDING HIGH queue row per username (what the seed inserts for
        every request), enqueued a millisecond apart from `since`, in order."""
        for start in range(0, len(usernames), BATCH):
            chunk = [
                {
                    "PutRequest": {
                        "Item": self._row(
                            name,
                            "frontend",
                            "HIGH",
                            (since + timedelta(milliseconds=start + i)).isoformat(),
                            "PENDING",
                        )
                    }
                }
                for i, name in enumerate(usernames[start : start + BATCH])
            ]
            request: dict[str, Any] = {self.queue_table: chunk}
            while request:
                request = self.client.batch_write_item(RequestItems=request).get("UnprocessedItems")

    def rows_for(self, username: str) -> int:
        """Queue rows of a username (to count duplicates after a race)."""
        response = self.client.query(
            TableName=self.queue_table,
            IndexName=USERNAME_INDEX,
            KeyConditionExpression="username = :u",
            ExpressionAttributeValues={":u": _s(username)},
            Select="COUNT",
        )
        return int(response["Count"])

    @staticmethod
    def _row(username: str, source: str, priority: str, stamp: str, status: str) -> dict[str, Any]:
        return {
            "id": _s(str(uuid.uuid4())),
            "username": _s(username),
            "source": _s(source),
            "priority": _s(priority),
            "timestamp": _s(stamp),
            "status": _s(status),
            "attempts": {"N": "0"},
            "last_attempt": {"NULL": True},
            "error_message": {"NULL": True},
            "request_id": _s(str(uuid.uuid4())[:8]),
        }

    # -- the request path -----------------------------------------------------

    def _by_username(self, username: str, filter_expression: str, **values: str) -> list[Any]:
        response = self.client.query(
            TableName=self.queue_table,
            IndexName=USERNAME_INDEX,
            KeyConditionExpression="username = :u",
            FilterExpression=filter_expression,
            ExpressionAttributeNames={"#status": "status", "#ts": "timestamp"}
            if "#ts" in filter_expression
            else {"#status": "status"},
            ExpressionAttributeValues={
                ":u": _s(username),
                **{f":{k}": _s(v) for k, v in values.items()},
            },
        )
        items: list[Any] = response.get("Items", [])
        return items

    def _profile(self, username: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.profiles_table,
            Key={"username": _s(username)},
            ProjectionExpression="username, created_at",
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def request(self, username: str, source: str = "frontend") -> dict[str, Any]:
        # Step 1: already a primary profile?
        profile = self._profile(username)
        if profile:
            return {
                "queued": False,
                "message": f"Profile {username} is already fully processed",
                "estimated_time": "complete",
                "profile_type": "primary",
                "status": "exists",
                "created_at": profile.get("created_at", {}).get("S"),
                "skip_reason": "already_processed",
            }

        # Step 2: already in the queue (PENDING or PROCESSING)?
        active = self._by_username(
            username, "#status IN (:pending, :processing)", pending=ACTIVE[0], processing=ACTIVE[1]
        )
        if active:
            item = active[0]
            status = item["status"]["S"]
            priority = item["priority"]["S"]
            return {
                "queued": True,
                "message": f"Profile {username} is already in queue (status: {status})",
                "estimated_time": "2-5 minutes",
                "profile_type": "queued",
                "status": status.lower(),
                "priority": priority,
                "queue_position": self.estimate_queue_position(priority, item["timestamp"]["S"]),
                "skip_reason": "already_in_queue",
            }

        # Step 3: completed in the last 10 minutes (and the profile really exists)?
        since = (datetime.now(UTC) - RECENT_WINDOW).isoformat()
        recent = self._by_username(
            username, "#status = :completed AND #ts >= :since", completed="COMPLETED", since=since
        )
        if recent:
            profile = self._profile(username)
            if profile:
                return {
                    "queued": False,
                    "message": f"Profile {username} was recently processed and is now available",
                    "estimated_time": "complete",
                    "profile_type": "primary",
                    "status": "exists",
                    "created_at": profile.get("created_at", {}).get("S"),
                    "skip_reason": "recently_completed",
                }

        # Steps 4-6: insert (HIGH, whatever the source, as the seed does), verify, position.
        stamp = now_iso()
        row = self._row(username, source, "HIGH", stamp, "PENDING")
        self.client.put_item(TableName=self.queue_table, Item=row)
        verified = self._by_username(username, "#status = :pending", pending="PENDING")
        if not verified:
            return {
                "queued": True,
                "message": f"Profile {username} is being processed (verification pending)",
                "estimated_time": "2-5 minutes",
                "profile_type": "processing",
                "status": "pending",
                "priority": "HIGH",
                "verification_status": "pending",
            }
        return {
            "queued": True,
            "message": f"Profile {username} added to high priority processing queue",
            "estimated_time": "2-5 minutes",
            "profile_type": "new",
            "status": "pending",
            "priority": "HIGH",
            "request_id": row["request_id"]["S"],
            "queue_position": self.estimate_queue_position("HIGH", stamp),
            "next_check_recommended": "30 seconds",
        }

    def _count(self, filter_expression: str, values: dict[str, str]) -> int:
        """`select count(id) from queue where ...`: a Scan with a filter, every page."""
        count = 0
        start: dict[str, Any] | None = None
        given = {
            ":pending": _s(ACTIVE[0]),
            ":processing": _s(ACTIVE[1]),
            **{f":{k}": _s(v) for k, v in values.items()},
        }
        # DynamoDB refuses values the expression does not use.
        used = {name: v for name, v in given.items() if name in filter_expression}
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.queue_table,
                "FilterExpression": filter_expression,
                "ExpressionAttributeNames": {"#status": "status", "#ts": "timestamp"}
                if "#ts" in filter_expression
                else {"#status": "status"},
                "ExpressionAttributeValues": used,
                "Select": "COUNT",
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self.client.scan(**kwargs)
            count += int(response.get("Count", 0))
            start = response.get("LastEvaluatedKey")
            if not start:
                return count

    def estimate_queue_position(self, priority: str, timestamp: str) -> int:
        """The seed's `_estimate_queue_position`, query for query."""
        active = "#status IN (:pending, :processing)"
        if priority == "HIGH":
            ahead = self._count(
                f"priority = :p AND #ts < :ts AND {active}", {"p": "HIGH", "ts": timestamp}
            )
            return max(1, ahead + 1)
        if priority == "MEDIUM":
            high = self._count(f"priority = :p AND {active}", {"p": "HIGH"})
            medium = self._count(
                f"priority = :p AND #ts < :ts AND {active}", {"p": "MEDIUM", "ts": timestamp}
            )
            return max(1, high + medium + 1)
        higher = self._count(f"priority IN (:h, :m) AND {active}", {"h": "HIGH", "m": "MEDIUM"})
        low = self._count(
            f"priority = :p AND #ts < :ts AND {active}", {"p": "LOW", "ts": timestamp}
        )
        return max(1, higher + low + 1)

    # -- the other request paths ---------------------------------------------

    def status(self, username: str) -> dict[str, Any]:
        """The seed's `checkProfileStatus`, step by step."""
        profile = self._profile(username)
        if profile:
            return {
                "completed": True,
                "message": "Profile processing completed",
                "created_at": profile.get("created_at", {}).get("S"),
                "profile_type": "primary",
            }
        # findOne({username}).sort({timestamp: -1}): the GSI has no sort key, so every
        # row of the username is read and the newest kept.
        rows: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.queue_table,
                "IndexName": USERNAME_INDEX,
                "KeyConditionExpression": "username = :u",
                "ExpressionAttributeValues": {":u": _s(username)},
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self.client.query(**kwargs)
            rows.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        if not rows:
            return {
                "completed": False,
                "status": "not_found",
                "message": "Profile not found in system",
            }
        item = max(rows, key=lambda row: row["timestamp"]["S"])
        priority = item["priority"]["S"]
        status = item["status"]["S"].lower()
        return {
            "completed": False,
            "status": status,
            "message": f"Profile is {status}",
            "priority": priority,
            "queue_position": self.estimate_queue_position(priority, item["timestamp"]["S"]),
            "attempts": int(item["attempts"]["N"]),
            "request_id": item["request_id"]["S"],
        }

    def pending_job_stats(self) -> dict[str, int]:
        """The seed's `getPendingJobStats`: four counts side by side (its Promise.all)."""
        counts = {
            "high_priority": ("priority = :p AND #status = :pending", {"p": "HIGH"}),
            "medium_priority": ("priority = :p AND #status = :pending", {"p": "MEDIUM"}),
            "low_priority": ("priority = :p AND #status = :pending", {"p": "LOW"}),
            "processing_count": ("#status = :processing", {}),
        }
        with ThreadPoolExecutor(max_workers=len(counts)) as pool:
            futures = {name: pool.submit(self._count, *spec) for name, spec in counts.items()}
            stats = {name: future.result() for name, future in futures.items()}
        stats["total_pending"] = sum(
            stats[name] for name in ("high_priority", "medium_priority", "low_priority")
        )
        return stats

    def bulk(self, usernames: list[str], source: str = "bulk") -> list[dict[str, Any]]:
        """The seed's `bulkRequestProcessing`: every name at once (its Promise.allSettled)."""

        def one(username: str) -> dict[str, Any]:
            try:
                return {
                    "username": username,
                    "success": True,
                    "data": self.request(username, source),
                }
            except Exception as exc:  # allSettled: a failure is a result, not the batch's
                return {"username": username, "success": False, "error": str(exc)}

        # A thread per name, all started before any is joined: every name in flight at
        # once, as Promise.allSettled has them (a pool would reuse a finished thread).
        results: list[dict[str, Any]] = [{} for _ in usernames]

        def run(index: int, username: str) -> None:
            results[index] = one(username)

        threads = [threading.Thread(target=run, args=(i, name)) for i, name in enumerate(usernames)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results
