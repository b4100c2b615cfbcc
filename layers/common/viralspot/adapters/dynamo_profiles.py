"""The Profiles table on DynamoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from viralspot.adapters import aws
from viralspot.adapters.codec import deserialize, value
from viralspot.clock import from_iso
from viralspot.profiles import Profile

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_DATETIME_FIELDS = ("created_at", "updated_at", "last_scraped_at")


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
