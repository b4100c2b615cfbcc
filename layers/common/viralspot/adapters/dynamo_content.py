"""The Content table on DynamoDB: reels written in batches, read through two local
secondary indexes so every sort order pages natively, and two write-sharded global
indexes for the viral-ideas feed (viralspot.feed).

- PopularIndex sorts on `popularity` = "<outlier score, zero-padded>#<views, zero-padded>",
  so "popular" is outlier score first, then views, as a plain string order.
- RecentIndex sorts on `taken_at` (fixed-width ISO), both directions.
- FeedIndex (`feed_pk`, `feed_sk`) and CategoryFeedIndex (`feed_cat_pk`, `feed_sk`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from viralspot.adapters import aws
from viralspot.adapters.codec import deserialize, serialize, start_key, value
from viralspot.analytics import ScoredReel
from viralspot.clock import from_iso, to_iso
from viralspot.content import Post, PostSort
from viralspot.cursors import decode_cursor, encode_cursor
from viralspot.errors import InvalidInput, StorageUnavailable
from viralspot.feed import (
    FeedIndexName,
    FeedProfile,
    FeedReel,
    Ranked,
    StreamChunk,
    StreamRead,
    feed_attributes,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

POPULAR_INDEX = "PopularIndex"
RECENT_INDEX = "RecentIndex"
FEED_INDEXES = {
    FeedIndexName.ALL: ("FeedIndex", "feed_pk"),
    FeedIndexName.CATEGORY: ("CategoryFeedIndex", "feed_cat_pk"),
}
# A feed page's first round is one Query per (week, shard): run them side by side.
# Below botocore's pool of 10 connections, so no call waits for a connection.
FEED_READERS = 8
# Each index's LastEvaluatedKey: the table's key plus the index's sort key (the
# template declares them; a test holds the two together). A cursor's key must be
# exactly this, or it never reaches DynamoDB.
INDEX_KEYS: dict[str, dict[str, str]] = {
    POPULAR_INDEX: {"username": "S", "shortcode": "S", "popularity": "S"},
    RECENT_INDEX: {"username": "S", "shortcode": "S", "taken_at": "S"},
}
CURSOR_KIND = "posts"
BATCH_SIZE = 25  # BatchWriteItem's limit
MAX_UNPROCESSED_ROUNDS = 8


def popularity_key(outlier_score: float, view_count: int) -> str:
    return f"{max(outlier_score, 0.0):015.4f}#{max(view_count, 0):015d}"


def reel_to_item(
    username: str, reel: ScoredReel, data_source: str, profile: FeedProfile
) -> dict[str, Any]:
    """The Content item of a reel, feed keys included: what the worker writes."""
    data: dict[str, Any] = reel.model_dump(mode="python")
    data["taken_at"] = to_iso(reel.taken_at)
    data["username"] = username
    data["popularity"] = popularity_key(reel.outlier_score, reel.view_count)
    data["data_source"] = data_source
    data.update(feed_attributes(username, reel, profile))
    return data


def post_from_item(item: dict[str, Any]) -> Post:
    data = dict(item)
    data["taken_at"] = from_iso(data["taken_at"])
    return Post.model_validate(data)


def feed_reel_from_item(item: dict[str, Any]) -> FeedReel:
    data = dict(item)
    data["taken_at"] = from_iso(data["taken_at"])
    return FeedReel.model_validate(data)


class DynamoContentStore:
    def __init__(
        self,
        content_table: str,
        client: DynamoDBClient | None = None,
        sleep: Any = time.sleep,
    ) -> None:
        self._table = content_table
        self._client = client
        self._sleep = sleep

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

    def put_reels(
        self,
        username: str,
        reels: Sequence[ScoredReel],
        data_source: str,
        *,
        profile: FeedProfile,
    ) -> None:
        """Idempotent: items are keyed by (username, shortcode), so a re-run overwrites,
        feed keys included."""
        requests = [
            {"PutRequest": {"Item": serialize(reel_to_item(username, reel, data_source, profile))}}
            for reel in reels
        ]
        for start in range(0, len(requests), BATCH_SIZE):
            self._write_batch(requests[start : start + BATCH_SIZE])

    def _write_batch(self, batch: list[dict[str, Any]]) -> None:
        pending: list[Any] = batch
        for round_number in range(MAX_UNPROCESSED_ROUNDS):
            try:
                response = aws.retry_conflicts(
                    partial(self.client.batch_write_item, RequestItems={self._table: pending}),
                    "write reels",
                )
            except (ClientError, BotoCoreError) as exc:
                raise aws.storage_error(exc, "write reels") from exc
            pending = list(response.get("UnprocessedItems", {}).get(self._table, []))
            if not pending:
                return
            # Unprocessed items mean throttling: back off before resending only those.
            self._sleep(min(0.05 * 2**round_number, 1.0))
        raise StorageUnavailable(f"write reels: {len(pending)} items still unprocessed")

    def remove_other_reels(self, username: str, keep: set[str]) -> int:
        """Delete the profile's reels not in `keep` (a refresh's analysed set): a read
        of the keys, then batched deletes. Idempotent, like the writes before it."""
        stale: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "username = :u",
                "ExpressionAttributeValues": {":u": value(username)},
                "ProjectionExpression": "shortcode",
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            try:
                response = self.client.query(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise aws.storage_error(exc, "list reels") from exc
            stale += [
                code
                for item in response.get("Items", [])
                if (code := str(deserialize(item)["shortcode"])) not in keep
            ]
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        deletes = [
            {"DeleteRequest": {"Key": {"username": value(username), "shortcode": value(code)}}}
            for code in stale
        ]
        for first in range(0, len(deletes), BATCH_SIZE):
            self._write_batch(deletes[first : first + BATCH_SIZE])
        return len(stale)

    def page(
        self, username: str, sort: PostSort, limit: int, cursor: str | None
    ) -> tuple[list[Post], str | None]:
        index = POPULAR_INDEX if sort is PostSort.POPULAR else RECENT_INDEX
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "username = :u",
            "ExpressionAttributeValues": {":u": value(username)},
            "ScanIndexForward": sort is PostSort.OLDEST,
            "Limit": limit,
        }
        if cursor:
            start = decode_cursor(cursor, kind=CURSOR_KIND)
            if start.get("username") != username or start.get("sort") != sort.value:
                raise InvalidInput("Invalid cursor: it belongs to another listing")
            kwargs["ExclusiveStartKey"] = start_key(
                start.get("key"), INDEX_KEYS[index], equal={"username": username}
            )
        try:
            response = self.client.query(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise aws.storage_error(exc, "read posts") from exc
        posts = [post_from_item(deserialize(item)) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        next_cursor = (
            encode_cursor(
                {"username": username, "sort": sort.value, "key": deserialize(last)},
                kind=CURSOR_KIND,
            )
            if last
            else None
        )
        return posts, next_cursor

    # -------------------------------------------------------------- the feed

    def read_streams(self, reads: Sequence[StreamRead]) -> list[StreamChunk]:
        if len(reads) <= 1:
            return [self._read_stream(read) for read in reads]
        with ThreadPoolExecutor(max_workers=min(FEED_READERS, len(reads))) as pool:
            return list(pool.map(self._read_stream, reads))

    def _read_stream(self, read: StreamRead) -> StreamChunk:
        index_name, partition_attribute = FEED_INDEXES[read.index]
        values: dict[str, Any] = {":pk": value(read.partition), ":lowest": value(read.lowest)}
        if read.below is None:
            condition = "#pk = :pk AND feed_sk >= :lowest"
            limit = read.limit
        else:
            # Key conditions have no "between, upper bound excluded": the reel at
            # `below` (the last one served) is read once more and dropped.
            condition = "#pk = :pk AND feed_sk BETWEEN :lowest AND :below"
            values[":below"] = value(read.below)
            limit = read.limit + (1 if read.resume is None else 0)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#pk": partition_attribute},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if read.taken_from is not None:
            kwargs["FilterExpression"] = "taken_at >= :taken_from"
            values[":taken_from"] = value(to_iso(read.taken_from))
        kwargs["ExpressionAttributeValues"] = values
        if read.resume is not None:
            kwargs["ExclusiveStartKey"] = read.resume
        try:
            response = self.client.query(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise aws.storage_error(exc, "read the feed") from exc
        entries = []
        for raw in response.get("Items", []):
            item = deserialize(raw)
            if item["feed_sk"] != read.below:
                entries.append(Ranked(rank=item["feed_sk"], reel=feed_reel_from_item(item)))
        last = response.get("LastEvaluatedKey")
        frontier = str(deserialize(last)["feed_sk"]) if last else None
        return StreamChunk(entries=entries, frontier=frontier, resume=last)
