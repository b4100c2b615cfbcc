"""Write sharding of index partition keys (DESIGN.md "Data", "Scale").

One DynamoDB partition takes 1,000 writes/s, and a throttled GSI write fails the
base-table write. So no partition-key value may take more than 1/8 of an index's
writes: keys that every job would share ("ACTIVE", "PENDING") get a shard suffix
derived from the username, and readers query every shard.
"""

from __future__ import annotations

import zlib

# 16 shards: each takes 1/16 of the writes on average; even at 1,000 jobs the
# busiest shard stays far below 1/8 (docs/scale.md has the arithmetic).
INDEX_SHARDS = 16


def shard_of(username: str, shards: int = INDEX_SHARDS) -> int:
    """A stable shard for a username: every write of one job lands in the same shard,
    so moving within an index (a priority raise) never moves between partitions."""
    return zlib.crc32(username.encode()) % shards


def sharded(prefix: str, shard: int) -> str:
    return f"{prefix}#{shard:02d}"
