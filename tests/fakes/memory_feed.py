"""The feed reads of `ports.Content` (`read_streams`) in memory, with DynamoDB's
Query semantics, for the merge's rule tests.

Items are built by the adapter's own `reel_to_item`, so they carry exactly the keys
the worker writes. A read is what `DynamoContentStore._read_stream` asks DynamoDB:

- the items of one partition (`feed_pk` or `feed_cat_pk`), `feed_sk` descending,
  from `lowest` up to `below` (inclusive, as BETWEEN is; the reel at `below` is
  dropped after the read, as the adapter does);
- `Limit` counts the items *evaluated*, before the `taken_at` filter, and when it is
  reached the answer carries a LastEvaluatedKey (even if nothing follows), whose
  `feed_sk` is the frontier; `resume` continues strictly after it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from viralspot.adapters.dynamo_content import feed_reel_from_item
from viralspot.clock import to_iso
from viralspot.feed import FeedIndexName, Ranked, StreamChunk, StreamRead

_PARTITION = {FeedIndexName.ALL: "feed_pk", FeedIndexName.CATEGORY: "feed_cat_pk"}


class MemoryFeedIndex:
    def __init__(self, items: Sequence[dict[str, Any]] = ()) -> None:
        self._lock = threading.Lock()
        self.items = {(i["username"], i["shortcode"]): i for i in items}
        self.reads: list[StreamRead] = []
        self.evaluated = 0

    def read_streams(self, reads: Sequence[StreamRead]) -> list[StreamChunk]:
        return [self._read(read) for read in reads]

    def _read(self, read: StreamRead) -> StreamChunk:
        with self._lock:
            self.reads.append(read)
            attribute = _PARTITION[read.index]
            ranked = sorted(
                (
                    i
                    for i in self.items.values()
                    if i.get(attribute) == read.partition
                    and read.lowest <= i["feed_sk"]
                    and (read.below is None or i["feed_sk"] <= read.below)
                    and (read.resume is None or i["feed_sk"] < read.resume)
                ),
                key=lambda i: i["feed_sk"],
                reverse=True,
            )
            limit = read.limit + (1 if read.below is not None and read.resume is None else 0)
            evaluated = ranked[:limit]
            self.evaluated += len(evaluated)
            since = to_iso(read.taken_from) if read.taken_from else None
            entries = [
                Ranked(rank=i["feed_sk"], reel=feed_reel_from_item(i))
                for i in evaluated
                if (since is None or i["taken_at"] >= since) and i["feed_sk"] != read.below
            ]
            last = evaluated[-1]["feed_sk"] if len(evaluated) == limit else None
            return StreamChunk(entries=entries, frontier=last, resume=last)
