"""The Profiles table on DynamoDB."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from viralspot.adapters import aws
from viralspot.adapters.codec import deserialize, serialize, value
from viralspot.clock import from_iso, to_iso
from viralspot.errors import StorageUnavailable
from viralspot.profiles import Profile, Tier

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_DATETIME_FIELDS = ("created_at", "updated_at", "last_scraped_at")
MAX_TRANSACTION = 100  # TransactWriteItems' limit


def profile_to_item(profile: Profile) -> dict[str, Any]:
    data: dict[str, Any] = profile.model_dump(mode="python")
    for field in _DATETIME_FIELDS:
        if data.get(field) is not None:
            data[field] = to_iso(data[field])
    data["tier"] = profile.tier.value
    return data


def profile_from_item(item: dict[str, Any]) -> Profile:
    data = dict(item)
    for field in _DATETIME_FIELDS:
        if data.get(field) is not None:
            data[field] = from_iso(data[field])
    return Profile.model_validate(data)


class DynamoProfileStore:
    def __init__(self, profiles_table: str, client: DynamoDBClient | None = None) -> None:
        self._table = profiles_table
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

    def get(self, username: str) -> Profile | None:
        try:
            response = self.client.get_item(
                TableName=self._table, Key={"username": value(username)}
            )
        except (ClientError, BotoCoreError) as exc:
            raise aws.storage_error(exc, "get profile") from exc
        item = response.get("Item")
        return profile_from_item(deserialize(item)) if item else None

    def put_primary(self, profile: Profile) -> None:
        """Write a full analysis over whatever was known (idempotent by key), keeping
        the first `created_at`: when the profile was first seen, not last analysed."""
        full = profile_to_item(profile)
        created = full.pop("created_at", None) or full.get("updated_at")
        full.pop("username")
        item = {k: v for k, v in full.items() if v is not None}
        # Fields the new analysis does not have must not survive from an older record.
        removals = [k for k, v in full.items() if v is None]
        names = {f"#f{i}": field for i, field in enumerate(item)}
        values = {f":v{i}": value(v) for i, v in enumerate(item.values())}
        assignments = [f"#f{i} = :v{i}" for i in range(len(item))]
        assignments.append("created_at = if_not_exists(created_at, :created)")
        values[":created"] = value(created)
        expression = "SET " + ", ".join(assignments)
        if removals:
            expression += " REMOVE " + ", ".join(removals)
        try:
            aws.retry_conflicts(
                lambda: self.client.update_item(
                    TableName=self._table,
                    Key={"username": value(profile.username)},
                    UpdateExpression=expression,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                ),
                "put profile",
            )
        except (ClientError, BotoCoreError) as exc:
            raise aws.storage_error(exc, "put profile") from exc

    def put_secondaries(self, profiles: Sequence[Profile]) -> int:
        """Store light records, never over a primary. One transaction for all; the
        primaries it runs into are dropped and the rest written again. Returns how
        many were written."""
        remaining = list(profiles)[:MAX_TRANSACTION]
        while remaining:
            items: list[Any] = [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": serialize(profile_to_item(p)),
                        "ConditionExpression": "attribute_not_exists(username) OR tier = :secondary",
                        "ExpressionAttributeValues": {":secondary": value(Tier.SECONDARY.value)},
                    }
                }
                for p in remaining
            ]
            try:
                aws.retry_conflicts(
                    partial(self.client.transact_write_items, TransactItems=items),
                    "put secondaries",
                )
                return len(remaining)
            except ClientError as exc:
                if aws.error_code(exc) != "TransactionCanceledException":
                    raise aws.storage_error(exc, "put secondaries") from exc
                reasons: list[Any] = list(exc.response.get("CancellationReasons", []))
                if any(r.get("Code") in aws.UNAVAILABLE_CANCELLATIONS for r in reasons):
                    raise StorageUnavailable("put secondaries: throttled") from exc
                blocked = {
                    i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"
                }
                if not blocked:
                    raise aws.storage_error(exc, "put secondaries") from exc
                remaining = [p for i, p in enumerate(remaining) if i not in blocked]
            except BotoCoreError as exc:
                raise aws.storage_error(exc, "put secondaries") from exc
        return 0

    def get_many(self, usernames: list[str]) -> list[Profile]:
        """Profiles by name, in the order asked, skipping unknown ones."""
        wanted = list(dict.fromkeys(usernames))[:100]
        if not wanted:
            return []
        found: dict[str, Profile] = {}
        keys: list[Any] = [{"username": value(u)} for u in wanted]
        for _ in range(5):
            try:
                response = self.client.batch_get_item(RequestItems={self._table: {"Keys": keys}})
            except (ClientError, BotoCoreError) as exc:
                raise aws.storage_error(exc, "get profiles") from exc
            responses: dict[str, list[Any]] = dict(response.get("Responses", {}))
            for item in responses.get(self._table, []):
                profile = profile_from_item(deserialize(item))
                found[profile.username] = profile
            unprocessed: dict[str, Any] = dict(response.get("UnprocessedKeys", {}))
            keys = list(unprocessed.get(self._table, {}).get("Keys", []))
            if not keys:
                break
        return [found[u] for u in wanted if u in found]
