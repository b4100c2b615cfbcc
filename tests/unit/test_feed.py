"""The feed's rules: keys, parameters, cursors, and the merge across shards (on an
in-memory index with DynamoDB's Query semantics, tests/fakes/memory_feed.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.memory_feed import MemoryFeedIndex
from viralspot import cursors, feed
from viralspot.adapters.dynamo_content import reel_to_item
from viralspot.analytics import ScoredReel
from viralspot.clock import to_iso
from viralspot.cursors import decode_cursor, encode_cursor
from viralspot.errors import InvalidInput
from viralspot.feed import FEED_CURSOR, FeedProfile

NOW = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)  # a Thursday
USERS = ("alpha", "beta.b", "c_c", "delta", "echo9")
CATEGORIES = ("Chef", "Artist", None)


@pytest.fixture(autouse=True)
def cursor_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Cursors are signed with the stack's key (Secrets Manager); the fakes have none.
    monkeypatch.setattr(cursors, "_key", lambda: b"unit-test-cursor-key")


def reel(shortcode: str, score: float, taken_at: datetime, views: int = 100) -> ScoredReel:
    return ScoredReel(
        shortcode=shortcode,
        taken_at=taken_at,
        view_count=views,
        url=f"https://www.instagram.com/reel/{shortcode}/",
        outlier_score=score,
        engagement_rate=1.0,
    )


def item(
    username: str,
    shortcode: str,
    score: float,
    taken_at: datetime,
    category: str | None = "Chef",
    crawl: bool = False,
) -> dict[str, Any]:
    profile = FeedProfile(followers_count=1000, category=category, crawl_depth=crawl)
    return reel_to_item(username, reel(shortcode, score, taken_at), "sample", profile)


def read_all(index: MemoryFeedIndex, **params: Any) -> list[feed.FeedPage]:
    pages: list[feed.FeedPage] = []
    cursor = None
    for _ in range(1000):
        page = feed.read_page(index=index, clock=lambda: NOW, cursor=cursor, **params)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages
    raise AssertionError("paging did not end")


def truth(
    items: list[dict[str, Any]],
    *,
    min_score: float = feed.DEFAULT_MIN_SCORE,
    since: date | None = None,
    category: str | None = None,
) -> list[tuple[str, str]]:
    start = since or NOW.date() - timedelta(days=feed.DEFAULT_WINDOW_DAYS)
    newest = feed.week_of(NOW)
    chosen = [
        i
        for i in items
        if i["feed_sk"] >= feed.min_score_key(min_score)
        and i["taken_at"] >= to_iso(datetime.combine(start, datetime.min.time(), UTC))
        and feed.week_of(datetime.fromisoformat(i["taken_at"])) <= newest
        and (category is None or (i["category"] or "").casefold() == category.casefold())
    ]
    chosen.sort(key=lambda i: i["feed_sk"], reverse=True)
    return [(i["username"], i["shortcode"]) for i in chosen]


def listed(pages: list[feed.FeedPage]) -> list[tuple[str, str]]:
    return [(r.username, r.shortcode) for page in pages for r in page.reels]


# ------------------------------------------------------------------ keys


def test_week_is_the_monday_utc() -> None:
    assert feed.week_of(NOW) == date(2026, 11, 30)
    assert feed.week_of(datetime(2026, 11, 30, 0, 0, tzinfo=UTC)) == date(2026, 11, 30)
    assert feed.week_of(datetime(2026, 11, 29, 23, 59, tzinfo=UTC)) == date(2026, 11, 23)
    # A Monday 01:00 in UTC+2 is still Sunday in UTC.
    from datetime import timezone

    plus_two = datetime(2026, 11, 30, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert feed.week_of(plus_two) == date(2026, 11, 23)


def test_shards_are_stable_and_spread() -> None:
    shards = [feed.shard_of("natgeo", f"code{i}") for i in range(8000)]
    assert shards[:50] == [feed.shard_of("natgeo", f"code{i}") for i in range(50)]
    counts = [shards.count(s) for s in range(feed.SHARDS)]
    # No shard takes more than 1/8 of the writes by much (the DESIGN's bound).
    assert max(counts) < 8000 / feed.SHARDS * 1.1


@given(st.floats(0, 1e9), st.floats(0, 1e9))
def test_score_keys_order_as_scores(a: float, b: float) -> None:
    ka, kb = feed.score_key(round(a, 4)), feed.score_key(round(b, 4))
    assert len(ka) == len(kb) == 15
    if round(a, 4) < round(b, 4):
        assert ka < kb


def test_min_score_rounds_up_to_the_stored_precision() -> None:
    assert feed.min_score_key(2) == feed.score_key(2.0) == "0000000002.0000"
    assert feed.min_score_key(2.00001) == "0000000002.0001"
    stored = feed.rank_key(2.0, "a", "b")
    assert stored >= feed.min_score_key(2)
    assert stored < feed.min_score_key(2.00001)


def test_feed_attributes_are_the_reels_own() -> None:
    taken = datetime(2026, 11, 26, 12, tzinfo=UTC)
    attributes = item("natgeo", "AbC", 3.25, taken, category="Digital  Creator", crawl=True)
    shard = feed.shard_of("natgeo", "AbC")
    assert attributes["feed_pk"] == f"2026-11-23#{shard}"
    assert attributes["feed_cat_pk"] == f"digital creator#2026-11-23#{shard}"
    assert attributes["feed_sk"] == "0000000003.2500#natgeo#AbC"
    assert attributes["category"] == "Digital  Creator"
    assert attributes["crawl_depth"] is True
    # No category: not in the category index at all (the key is left out).
    assert item("natgeo", "AbC", 3.25, taken, category=None)["feed_cat_pk"] is None


# ------------------------------------------------------------------ parameters


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_score": -0.1}, "min_score"),
        ({"min_score": float("nan")}, "min_score"),
        ({"min_score": float("inf")}, "min_score"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"category": " \t"}, "category must not be blank"),
        ({"category": "x" * 101}, "category is too long"),
        ({"cursor": "%%%"}, "Invalid cursor"),
    ],
)
def test_bad_parameters_are_refused_before_any_read(params: dict[str, Any], message: str) -> None:
    index = MemoryFeedIndex()
    with pytest.raises(InvalidInput, match=message):
        feed.read_page(index=index, clock=lambda: NOW, **params)
    assert index.reads == []


@pytest.mark.parametrize(
    "raw", ["0", "1700000000", "2026-02-30", "2026-1-3", "2026-11-03T00:00", " 2026-11-03"]
)
def test_since_is_exactly_a_calendar_day(raw: str) -> None:
    with pytest.raises(InvalidInput, match="since must be a calendar date"):
        feed.parse_day(raw)


def test_since_parses_an_iso_day() -> None:
    assert feed.parse_day("2026-11-03") == date(2026, 11, 3)
    assert feed.parse_day(None) is None


def test_default_window_is_the_last_30_days() -> None:
    query = feed.plan(min_score=2, since=None, category=None, limit=20, cursor=None, now=NOW)
    assert query.start == date(2026, 11, 3)
    assert query.weeks == [date(2026, 11, d) for d in (30, 23, 16, 9, 2)]
    oldest = [r for r in feed.streams_for(query) if r.partition.startswith("2026-11-02#")]
    assert len(oldest) == feed.SHARDS
    assert all(r.taken_from == datetime(2026, 11, 3, tzinfo=UTC) for r in oldest)
    assert all(r.taken_from is None for r in feed.streams_for(query) if r not in oldest)


def test_an_older_since_starts_the_window_at_its_limit() -> None:
    since = date(2020, 1, 1)
    query = feed.plan(min_score=2, since=since, category=None, limit=20, cursor=None, now=NOW)
    assert query.start == NOW.date() - timedelta(days=feed.MAX_WINDOW_DAYS)
    assert len(query.weeks) == 27
    page = feed.read_page(index=MemoryFeedIndex(), clock=lambda: NOW, since=since)
    assert page.since == query.start


def test_a_monday_since_needs_no_filter() -> None:
    query = feed.plan(
        min_score=2, since=date(2026, 11, 16), category="Chef", limit=20, cursor=None, now=NOW
    )
    reads = feed.streams_for(query)
    assert len(reads) == 3 * feed.SHARDS
    assert all(r.taken_from is None for r in reads)
    assert all(r.index is feed.FeedIndexName.CATEGORY for r in reads)
    assert reads[0].partition == "chef#2026-11-30#0"


# ------------------------------------------------------------------ the merge

reel_lists = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from([0.0, 0.5, 1.0, 1.99995, 2.0, 2.0, 2.5, 3.3333, 7.0, 12.5]),
        st.integers(0, 70 * 24),  # hours before NOW
        st.sampled_from(CATEGORIES),
    ),
    max_size=160,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reels=reel_lists,
    min_score=st.sampled_from([0, 1, 2, 2.5, 10]),
    since_days=st.one_of(st.none(), st.integers(0, 60)),
    category=st.sampled_from([None, "chef", "ARTIST"]),
    limit=st.integers(1, 40),
    # Reels over 3 days crowd few streams (so top-ups and cut pages happen); over
    # 70 days they spread across every week of the window and beyond.
    spread_days=st.sampled_from([3, 14, 70]),
)
def test_paging_lists_exactly_the_matching_reels_in_order(
    reels: list[tuple[str, float, int, str | None]],
    min_score: float,
    since_days: int | None,
    category: str | None,
    limit: int,
    spread_days: int,
) -> None:
    items = [
        item(user, f"sc{n}", score, NOW - timedelta(hours=hours % (spread_days * 24)), cat)
        for n, (user, score, hours, cat) in enumerate(reels)
    ]
    since = NOW.date() - timedelta(days=since_days) if since_days is not None else None
    params = {"min_score": min_score, "since": since, "category": category, "limit": limit}
    pages = read_all(MemoryFeedIndex(items), **params)
    assert listed(pages) == truth(items, min_score=min_score, since=since, category=category)
    assert all(page.count == len(page.reels) <= limit for page in pages)
    assert all(page.reels for page in pages[:-1])  # every page but the last moves forward


def test_a_page_reads_a_bounded_number_of_items_whatever_the_volume() -> None:
    def cost(profiles: int) -> tuple[int, int]:
        items = [
            item(f"user{p}", f"sc{r}", (p * 7 + r * 13) % 50 / 10, NOW - timedelta(hours=r * 13))
            for p in range(profiles)
            for r in range(30)
        ]
        index = MemoryFeedIndex(items)
        page = feed.read_page(index=index, clock=lambda: NOW, limit=20, min_score=0)
        assert page.count == 20
        return len(index.reads), index.evaluated

    small, large = cost(10), cost(400)
    streams = 5 * feed.SHARDS
    assert small[0] <= 2 * streams
    assert large[0] <= 2 * streams
    # 40 times the profiles, about the same items read (a first chunk per stream, then
    # top-ups of at most the page's size where the merge cannot decide).
    assert large[1] <= 1.5 * small[1]


def test_a_stream_holding_the_whole_page_is_topped_up() -> None:
    # Every reel in one (week, shard): the first chunk cannot fill a page.
    codes = [c for c in (f"hot{i}" for i in range(2000)) if feed.shard_of("hot", c) == 3][:45]
    items = [item("hot", c, 2 + n / 10, NOW - timedelta(hours=1)) for n, c in enumerate(codes)]
    items += [item("cold", f"c{n}", 2.05 + n, NOW - timedelta(days=9)) for n in range(3)]
    index = MemoryFeedIndex(items)
    pages = read_all(index, limit=20)
    assert listed(pages) == truth(items)
    assert [page.count for page in pages] == [20, 20, 8]
    # Per page: one read per stream, and one top-up of the hot stream.
    assert len(index.reads) == 3 * (5 * feed.SHARDS + 1)


def test_a_boundary_week_full_of_older_reels_cuts_the_page_not_the_listing() -> None:
    # The window starts on a Saturday: its oldest week holds five days of older
    # reels, all scoring above everything in the window, which the filter drops.
    since = date(2026, 11, 28)
    older = [
        item("old", f"o{n}", 50 + n / 100, datetime(2026, 11, 24, tzinfo=UTC)) for n in range(2000)
    ]
    inside = [
        item("new", f"n{n}", 2 + n / 100, datetime(2026, 11, 29, tzinfo=UTC) + timedelta(hours=n))
        for n in range(30)
    ]
    index = MemoryFeedIndex(older + inside)
    pages = read_all(index, since=since, limit=10)
    assert listed(pages) == truth(older + inside, since=since)
    assert len(listed(pages)) == 30
    assert all(page.reels for page in pages[:-1]) or len(pages) == 1


def test_cursor_is_opaque_round_trip_and_checked() -> None:
    items = [item("alpha", f"s{i}", 3 + i, NOW - timedelta(days=1)) for i in range(5)]
    index = MemoryFeedIndex(items)
    first = feed.read_page(index=index, clock=lambda: NOW, limit=2)
    assert first.next_cursor
    data = decode_cursor(first.next_cursor, kind=FEED_CURSOR)
    assert data["after"] == feed.rank_key(6, "alpha", "s3")
    assert data["to"] == "2026-11-30"
    # The next page follows even after the week rolls over: the window is the cursor's.
    later = NOW + timedelta(days=5)
    second = feed.read_page(index=index, clock=lambda: later, limit=2, cursor=first.next_cursor)
    assert [r.shortcode for r in second.reels] == ["s2", "s1"]
    assert second.since == first.since
    with pytest.raises(InvalidInput, match="other filters"):
        feed.read_page(index=index, clock=lambda: NOW, min_score=3, cursor=first.next_cursor)
    forged = encode_cursor({**data, "after": ["not", "a", "rank"]}, kind=FEED_CURSOR)
    with pytest.raises(InvalidInput, match="Invalid cursor"):
        feed.read_page(index=index, clock=lambda: NOW, cursor=forged)
    # The same position signed for another listing (posts) opens nothing here.
    with pytest.raises(InvalidInput, match="Invalid cursor"):
        feed.read_page(index=index, clock=lambda: NOW, cursor=encode_cursor(data))
    reads = len(index.reads)
    for bad in (forged, encode_cursor(data), first.next_cursor[:-2] + "AA"):
        with pytest.raises(InvalidInput, match="Invalid cursor"):
            feed.read_page(index=index, clock=lambda: NOW, cursor=bad)
    assert len(index.reads) == reads
