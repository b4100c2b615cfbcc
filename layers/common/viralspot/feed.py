"""The viral-ideas feed: reels across every analysed profile, highest outlier score first.

How it is stored (the Content table's `FeedIndex` and `CategoryFeedIndex`)
--------------------------------------------------------------------------
Every reel item carries its feed keys, written by the worker with the reel:

* ``feed_pk`` = ``<week>#<shard>``: the Monday (UTC) of the week the reel was
  taken, and one of `SHARDS` shards chosen by a stable hash of the reel's key.
* ``feed_cat_pk`` = ``<category>#<week>#<shard>``: the same, per profile category
  (normalised, case-insensitive); absent when the profile has no category.
* ``feed_sk`` = ``<score, fixed width>#<username>#<shortcode>``: a string order that
  is the outlier-score order, unique per reel, so it is also the paging position.

Why write-sharded: every reel of a week would otherwise share one partition-key
value, and DESIGN.md "Scale" allows no value more than 1/8 of an index's writes.
With `SHARDS` = 8, a shard takes at most 1/8 even if every write of the moment
falls in one week.

How it is read
--------------
A page merges the (week, shard) streams of the window newest-first (`merge`): each
stream is one Query, descending on ``feed_sk`` and bounded below by ``min_score``
(a key condition, not a filter), first with a small Limit, then topped up only
where the merge cannot yet decide. What a page costs depends on the window (weeks
x shards) and `limit`, never on how many profiles were analysed.

The items are the reels themselves (key ``username`` + ``shortcode``), so a
re-analysis overwrites each reel with its new score and keys: it is never listed
twice. The profile's followers, category and analysis depth are copied onto its
reels when they are written, so a page needs no second read.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from viralspot.analytics import ScoredReel

# The one cursor codec (signed, so only cursors this API issued open a page).
from viralspot.cursors import decode_cursor, encode_cursor
from viralspot.errors import InvalidInput
from viralspot.ports import Content

SHARDS = 8
DEFAULT_MIN_SCORE = 2.0
MAX_MIN_SCORE = 1_000_000.0
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Without `since`, the feed covers the last 30 days (the original system's window).
DEFAULT_WINDOW_DAYS = 30
# A window reaches back 26 weeks at most (an older `since` starts it there): a page
# queries every (week, shard) of its window.
MAX_WINDOW_DAYS = 182
MAX_CATEGORY_LENGTH = 100

# Score as a fixed-width decimal string: 10 integer digits, 4 decimals (the
# analytics round scores to 4), so string order is numeric order.
_SCORE_QUANTUM = Decimal("0.0001")
_MAX_SCORE = Decimal("9999999999.9999")
_SCORE_KEY = re.compile(r"\d{10}\.\d{4}")
_RANK_KEY = re.compile(r"\d{10}\.\d{4}#[a-z0-9._]{1,30}#[^#]{1,256}")
_CURSOR_FIELDS = frozenset({"v", "after", "from", "to", "min", "since", "cat"})
_CURSOR_VERSION = 1
# Signed with the cursor's kind: a posts cursor never opens a feed page, nor the reverse.
FEED_CURSOR = "feed"
# First read of each stream: about twice its fair share of the page, at least a few.
_MIN_CHUNK = 4


class FeedIndexName(StrEnum):
    ALL = "all"
    CATEGORY = "category"


# ------------------------------------------------------------------ keys


def week_of(moment: datetime) -> date:
    """The Monday (UTC) of the week `moment` falls in: the feed's time bucket."""
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def shard_of(username: str, shortcode: str) -> int:
    # A stable hash (not hash(): it changes per process), so a re-analysis writes a
    # reel to the same shard and spreads a week's reels evenly over all of them.
    digest = hashlib.sha256(f"{username}#{shortcode}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % SHARDS


def score_key(score: float) -> str:
    value = Decimal(repr(max(score, 0.0))).quantize(_SCORE_QUANTUM)
    return f"{min(value, _MAX_SCORE):015.4f}"


def min_score_key(min_score: float) -> str:
    """The lowest `feed_sk` a reel scoring at least `min_score` can have. Rounded
    up to the stored precision, so 2.00001 does not let a 2.0000 reel through."""
    value = Decimal(repr(min_score)).quantize(_SCORE_QUANTUM, rounding=ROUND_CEILING)
    return f"{min(value, _MAX_SCORE):015.4f}"


def rank_key(score: float, username: str, shortcode: str) -> str:
    return f"{score_key(score)}#{username}#{shortcode}"


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
DAY_PATTERN = f"^{_DAY.pattern}$"


def parse_day(raw: str | None) -> date | None:
    """`since` as a calendar day, from exactly YYYY-MM-DD (no timestamps, no times)."""
    if raw is None:
        return None
    try:
        if not _DAY.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("since must be a calendar date, YYYY-MM-DD (e.g. 2026-11-03)") from None


def normalise_category(raw: str) -> str:
    """Case- and spacing-insensitive: 'Digital  creator' and 'digital creator' are one."""
    return " ".join(raw.split()).casefold()


def partition(index: FeedIndexName, week: date, shard: int, category: str | None = None) -> str:
    bucket = f"{week.isoformat()}#{shard}"
    return f"{category}#{bucket}" if index is FeedIndexName.CATEGORY else bucket


class FeedProfile(BaseModel):
    """What the feed shows of a reel's profile, copied onto each of its reels."""

    model_config = ConfigDict(frozen=True)

    followers_count: int = 0
    category: str | None = None
    # Analysed from a crawler's job (fewer reels, LOW priority), not at a person's request.
    crawl_depth: bool = False


def feed_attributes(username: str, reel: ScoredReel, profile: FeedProfile) -> dict[str, Any]:
    """The attributes that list a reel in the feed: written with the reel, so a
    re-analysis replaces them (new score, new sort key) instead of adding a copy."""
    week = week_of(reel.taken_at)
    shard = shard_of(username, reel.shortcode)
    category = normalise_category(profile.category) if profile.category else ""
    return {
        "feed_pk": partition(FeedIndexName.ALL, week, shard),
        "feed_cat_pk": (
            partition(FeedIndexName.CATEGORY, week, shard, category) if category else None
        ),
        "feed_sk": rank_key(reel.outlier_score, username, reel.shortcode),
        "followers_count": profile.followers_count,
        "category": profile.category,
        "crawl_depth": profile.crawl_depth,
    }


# ------------------------------------------------------------------ answers


class FeedReel(BaseModel):
    """A reel as the feed lists it, with what the feed shows of its profile."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    username: str
    shortcode: str
    url: str
    outlier_score: float
    view_count: int = 0
    like_count: int = 0
    comment_count: int = 0
    taken_at: datetime
    caption: str = ""
    thumbnail_url: str | None = None
    followers_count: int = 0
    category: str | None = None
    crawl_depth: bool = False


class FeedPage(BaseModel):
    reels: list[FeedReel]
    count: int
    next_cursor: str | None = None
    # The window's first day: `since`, or the default window's start when none was given.
    since: date


# ------------------------------------------------------------------ what a read asks and gets


@dataclass(frozen=True)
class StreamRead:
    """One Query on one (week, shard) of an index: descending `feed_sk`, at least
    `lowest`, strictly below `below` when set, `taken_at >= taken_from` when set."""

    index: FeedIndexName
    partition: str
    lowest: str
    below: str | None
    taken_from: datetime | None
    limit: int
    resume: Any = None  # the adapter's own position within this stream


@dataclass(frozen=True)
class Ranked:
    rank: str
    reel: FeedReel


@dataclass(frozen=True)
class StreamChunk:
    entries: list[Ranked]
    # `feed_sk` of the last item the Query evaluated (returned or filtered out):
    # every unread item of the stream ranks below it. None when the stream is done.
    frontier: str | None
    resume: Any = None


# ------------------------------------------------------------------ the request


@dataclass(frozen=True)
class FeedQuery:
    min_key: str
    since: date | None  # as asked (None: the default window)
    category: str | None  # normalised
    limit: int
    start: date  # first day of the window
    newest_week: date
    after: str | None  # rank of the previous page's last reel

    @property
    def weeks(self) -> list[date]:
        """Newest first, from the window's newest week back to the week of `start`."""
        found, week = [], self.newest_week
        while week >= week_of(datetime.combine(self.start, time(), UTC)):
            found.append(week)
            week -= timedelta(weeks=1)
        return found

    def cursor_after(self, rank: str) -> str:
        return encode_cursor(
            {
                "v": _CURSOR_VERSION,
                "after": rank,
                "from": self.start.isoformat(),
                "to": self.newest_week.isoformat(),
                "min": self.min_key,
                "since": self.since.isoformat() if self.since else None,
                "cat": self.category,
            },
            kind=FEED_CURSOR,
        )


def plan(
    *,
    min_score: float,
    since: date | None,
    category: str | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> FeedQuery:
    """Check every parameter (InvalidInput, before any read) and fix the window."""
    if not math.isfinite(min_score) or not 0 <= min_score <= MAX_MIN_SCORE:
        raise InvalidInput(f"min_score must be a number from 0 to {MAX_MIN_SCORE:g}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    cat: str | None = None
    if category is not None:
        cat = normalise_category(category)
        if not cat:
            raise InvalidInput("category must not be blank")
        if len(cat) > MAX_CATEGORY_LENGTH:
            raise InvalidInput(f"category is too long (max {MAX_CATEGORY_LENGTH} characters)")
    today = now.astimezone(UTC).date()
    # An older `since` is not an error, just more than one page may read: the window
    # starts MAX_WINDOW_DAYS ago, and the page's `since` says so.
    earliest = today - timedelta(days=MAX_WINDOW_DAYS)
    query = FeedQuery(
        min_key=min_score_key(min_score),
        since=since,
        category=cat,
        limit=limit,
        start=max(since, earliest) if since else today - timedelta(days=DEFAULT_WINDOW_DAYS),
        newest_week=week_of(now),
        after=None,
    )
    if cursor is None:
        return query
    return _resume(query, decode_cursor(cursor, kind=FEED_CURSOR))


def _bad_cursor(why: str) -> InvalidInput:
    return InvalidInput(f"Invalid cursor: {why}; pass back the next_cursor of a previous page")


def _resume(query: FeedQuery, data: dict[str, Any]) -> FeedQuery:
    """The next page of the same listing: the cursor's window, checked field by field."""
    if set(data) != _CURSOR_FIELDS or type(data["v"]) is not int or data["v"] != _CURSOR_VERSION:
        raise _bad_cursor("it is not a feed cursor")
    after, start, newest, lowest = data["after"], data["from"], data["to"], data["min"]
    if not all(isinstance(v, str) for v in (after, start, newest, lowest)):
        raise _bad_cursor("it is not a feed cursor")
    if not _RANK_KEY.fullmatch(after) or not _SCORE_KEY.fullmatch(lowest):
        raise _bad_cursor("it is not a feed cursor")
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(newest)
    except ValueError:
        raise _bad_cursor("it is not a feed cursor") from None
    if (
        last.weekday() != 0
        or first > last + timedelta(days=6)
        or (last - first).days > MAX_WINDOW_DAYS + 7
    ):
        raise _bad_cursor("its window is not one this API makes")
    asked_since = query.since.isoformat() if query.since else None
    if lowest != query.min_key or data["since"] != asked_since or data["cat"] != query.category:
        raise _bad_cursor("it belongs to a listing with other filters")
    if query.since is not None and first < query.since:
        raise _bad_cursor("it belongs to a listing with other filters")
    if after < lowest:
        raise _bad_cursor("its position is below min_score")
    return FeedQuery(
        min_key=query.min_key,
        since=query.since,
        category=query.category,
        limit=query.limit,
        start=first,
        newest_week=last,
        after=after,
    )


# ------------------------------------------------------------------ the merge


@dataclass
class _Stream:
    read: StreamRead
    buffer: deque[Ranked] = field(default_factory=deque)
    frontier: str | None = None
    started: bool = False

    @property
    def done(self) -> bool:
        return self.started and self.frontier is None

    def take(self, chunk: StreamChunk) -> None:
        self.started = True
        self.buffer.extend(chunk.entries)
        self.frontier = chunk.frontier
        self.read = replace(self.read, resume=chunk.resume)

    def may_hold_above(self, rank: str | None) -> bool:
        """Whether an unread item of this stream could rank above `rank`."""
        if self.buffer or self.done:
            return False
        return not self.started or rank is None or (self.frontier or "") > rank


def streams_for(query: FeedQuery) -> list[StreamRead]:
    index = FeedIndexName.CATEGORY if query.category else FeedIndexName.ALL
    window_start = datetime.combine(query.start, time(), UTC)
    reads = []
    for week in query.weeks:
        # Only the oldest week can hold reels from before the window's first day.
        boundary = window_start if week < query.start else None
        for shard in range(SHARDS):
            reads.append(
                StreamRead(
                    index=index,
                    partition=partition(index, week, shard, query.category),
                    lowest=query.min_key,
                    below=query.after,
                    taken_from=boundary,
                    limit=0,
                )
            )
    return reads


def merge(query: FeedQuery, index: Content) -> FeedPage:
    """The next `limit` reels of the window, in descending rank, exactly.

    A reel is emitted only when no stream can still hold a higher one: a stream
    with an empty buffer that is not done bounds its unread items by its frontier,
    and is read further only when that bound is above the best buffered reel.
    Top-up reads are capped at as many as there are streams, except while the page
    is still empty (so every page moves forward); a page cut by the cap is shorter
    than `limit` and still has a next_cursor."""
    streams = [_Stream(read) for read in streams_for(query)]
    first_chunk = max(_MIN_CHUNK, math.ceil(2 * query.limit / max(len(streams), 1)))
    _fill(index, streams, min(first_chunk, query.limit))
    top_ups = 0
    page: list[Ranked] = []
    cut = False
    while len(page) < query.limit:
        best = max((s for s in streams if s.buffer), key=lambda s: s.buffer[0].rank, default=None)
        best_rank = best.buffer[0].rank if best else None
        blocking = [s for s in streams if s.may_hold_above(best_rank)]
        if blocking:
            if page and top_ups >= len(streams):
                cut = True
                break
            top_ups += len(blocking)
            _fill(index, blocking, query.limit - len(page))
            continue
        if best is None:
            break
        page.append(best.buffer.popleft())
    more = cut or any(s.buffer or not s.done for s in streams)
    next_cursor = query.cursor_after(page[-1].rank) if page and more else None
    reels = [entry.reel for entry in page]
    return FeedPage(reels=reels, count=len(reels), next_cursor=next_cursor, since=query.start)


def _fill(index: Content, streams: list[_Stream], limit: int) -> None:
    reads = [replace(s.read, limit=limit) for s in streams]
    for stream, chunk in zip(streams, index.read_streams(reads), strict=True):
        stream.take(chunk)


def read_page(
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    since: date | None = None,
    category: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    index: Content,
    clock: Callable[[], datetime],
) -> FeedPage:
    query = plan(
        min_score=min_score,
        since=since,
        category=category,
        limit=limit,
        cursor=cursor,
        now=clock(),
    )
    return merge(query, index)
