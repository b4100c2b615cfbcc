"""The viral-ideas feed: profiles analysed by the real worker (sample provider), read
through the API, checked against the Content table itself. The tests whose answer
rests on DynamoDB's own Query semantics (key conditions, Limit before the filter,
LastEvaluatedKey) run on moto and on DynamoDB Local (`ddblocal`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from devstack.emulator import Emulator
from devstack.invoke import LocalApi
from devstack.template import Stack
from tests.support import StepClock, drain, run_worker
from viralspot import bootstrap, feed
from viralspot.adapters import aws
from viralspot.adapters.codec import deserialize
from viralspot.config import get_settings
from viralspot.cursors import decode_cursor, encode_cursor
from viralspot.feed import FEED_CURSOR
from viralspot.jobs import Source
from viralspot.providers import ProviderReel
from viralspot.providers.sample import SampleProvider

PROFILES = ("natgeo", "nasa", "bbcfood")


def analyse(api: LocalApi, stack: Stack, aws_env: Emulator, *names: str) -> None:
    for name in names:
        code, _, _ = api.request("POST", f"/api/profile/{name}/request")
        assert code == 200
    result = run_worker(stack, drain(aws_env, stack.refs["HighQueue"]), "HighQueue")
    assert result == {"batchItemFailures": []}
    # Their similar profiles wait on the low queue; these tests do not crawl.
    drain(aws_env, stack.refs["LowQueue"])


def feed_page(api: LocalApi, **params: Any) -> tuple[int, dict[str, Any]]:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    code, _, body = api.request("GET", f"/api/viral-ideas/reels?{query}")
    assert isinstance(body, dict)
    return code, body


def walk(api: LocalApi, **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of a listing, following next_cursor."""
    cursor = None
    while True:
        code, body = feed_page(api, **params, cursor=cursor)
        assert code == 200, body
        yield body["data"]
        cursor = body["data"].get("next_cursor")
        if not cursor:
            return


def stored_reels(aws_env: Emulator, stack: Stack) -> list[dict[str, Any]]:
    """The Content table as it is, read whole (the ground truth, not the feed's path)."""
    client = aws_env.client("dynamodb")
    items, start = [], None
    while True:
        kwargs: dict[str, Any] = {"TableName": stack.refs["ContentTable"]}
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = client.scan(**kwargs)
        items += [deserialize(i) for i in response["Items"]]
        start = response.get("LastEvaluatedKey")
        if not start:
            return items


def expected(
    items: list[dict[str, Any]],
    *,
    min_score: float = feed.DEFAULT_MIN_SCORE,
    since: date | None = None,
    category: str | None = None,
) -> list[tuple[str, str]]:
    start = since or datetime.now(UTC).date() - timedelta(days=feed.DEFAULT_WINDOW_DAYS)
    chosen = [
        i
        for i in items
        if i["outlier_score"] >= min_score
        and i["taken_at"] >= f"{start.isoformat()}T00:00:00.000Z"
        and (category is None or (i.get("category") or "").lower() == category.lower())
    ]
    chosen.sort(key=lambda i: (i["outlier_score"], i["username"], i["shortcode"]), reverse=True)
    return [(i["username"], i["shortcode"]) for i in chosen]


def listed(pages: Iterator[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["username"], r["shortcode"]) for page in pages for r in page["reels"]]


@pytest.fixture
def three(api: LocalApi, stack: Stack, aws_env: Emulator) -> list[dict[str, Any]]:
    analyse(api, stack, aws_env, *PROFILES)
    return stored_reels(aws_env, stack)


@pytest.mark.ddblocal
def test_feed_ranks_reels_across_profiles(api: LocalApi, three: list[dict[str, Any]]) -> None:
    code, body = feed_page(api)
    assert code == 200
    data = body["data"]
    reels = data["reels"]
    assert data["count"] == len(reels) > 0
    assert len({r["username"] for r in reels}) >= 2
    scores = [r["outlier_score"] for r in reels]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= feed.DEFAULT_MIN_SCORE
    assert (
        data["since"]
        == (datetime.now(UTC).date() - timedelta(days=feed.DEFAULT_WINDOW_DAYS)).isoformat()
    )

    # Each reel as stored, with its profile's followers and category beside it.
    stored = {(i["username"], i["shortcode"]): i for i in three}
    _, _, profile = api.request("GET", f"/api/profile/{reels[0]['username']}")
    first = reels[0]
    item = stored[(first["username"], first["shortcode"])]
    for field in ("url", "outlier_score", "view_count", "like_count", "comment_count", "caption"):
        assert first[field] == item[field]
    assert first["thumbnail_url"] == item["thumbnail_url"]
    assert first["taken_at"].startswith(item["taken_at"][:19])
    assert first["followers_count"] == profile["data"]["followers_count"]
    assert first["category"] == profile["data"]["category"]
    assert first["crawl_depth"] is False


@pytest.mark.ddblocal
def test_paging_visits_every_listed_reel_once_in_order(
    api: LocalApi, three: list[dict[str, Any]]
) -> None:
    truth = expected(three, min_score=1.5)
    assert len(truth) > 7  # enough for several pages of 3
    pages = list(walk(api, min_score=1.5, limit=3))
    assert len(pages) >= 3
    assert all(page["count"] <= 3 for page in pages)
    assert listed(iter(pages)) == truth  # no repeat, no gap, one order across pages

    # min_score is a lower bound, on the stored (4-decimal) scores.
    for min_score in (0, 2.5, 5):
        assert listed(walk(api, min_score=min_score, limit=100)) == expected(
            three, min_score=min_score
        )


@pytest.mark.ddblocal
def test_since_and_category_filter(api: LocalApi, three: list[dict[str, Any]]) -> None:
    today = datetime.now(UTC).date()
    # Weekday boundaries: the oldest week of the window is read with a filter.
    for days, limit in ((9, 4), (100, 40)):
        since = today - timedelta(days=days)
        got = list(walk(api, min_score=1, since=since.isoformat(), limit=limit))
        assert listed(iter(got)) == expected(three, min_score=1, since=since)
        assert all(page["since"] == since.isoformat() for page in got)
        assert all(r["taken_at"] >= since.isoformat() for page in got for r in page["reels"])
    wide = expected(three, min_score=1, since=today - timedelta(days=100))
    narrow = expected(three, min_score=1, since=today - timedelta(days=9))
    assert set(narrow) < set(wide)

    category = next(i["category"] for i in three if i["username"] == PROFILES[0])
    got_category = listed(walk(api, min_score=0, category=f"  {category.upper()} ", limit=20))
    assert got_category == expected(three, min_score=0, category=category)
    assert PROFILES[0] in {name for name, _ in got_category}
    _, nobody = feed_page(api, category="no such category")
    assert nobody["data"] == {"reels": [], "count": 0, "since": nobody["data"]["since"]}


@pytest.mark.ddblocal
def test_reanalysis_replaces_the_profiles_reels(
    api: LocalApi, stack: Stack, aws_env: Emulator, three: list[dict[str, Any]]
) -> None:
    name = PROFILES[0]
    before = {r["shortcode"]: r for r in _of(api, name)}
    assert before

    # A week later the profile is stale; asked again, the worker analyses it anew and
    # this time the provider reports 10x the views on its best reel in the window.
    clock = StepClock()
    clock.advance(days=8)
    ctx = bootstrap.build(get_settings(), clock)
    decision = ctx.intake(
        name,
        Source.FRONTEND,
    )
    assert decision.answer.profile_type == "refresh"
    boosted = max(before.values(), key=lambda r: r["outlier_score"])["shortcode"]
    worker = ctx.worker(Boosting(boosted))
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    assert worker.process(body).value == "completed"

    after = _of(api, name)
    shortcodes = [r["shortcode"] for r in after]
    assert len(shortcodes) == len(set(shortcodes))  # each reel once
    new_scores = {r["shortcode"]: r["outlier_score"] for r in after}
    assert set(new_scores) == set(before)
    assert new_scores[boosted] > 5 * before[boosted]["outlier_score"]
    stored = {
        i["shortcode"]: i["outlier_score"]
        for i in stored_reels(aws_env, stack)
        if i["username"] == name
    }
    assert all(stored[code] == score for code, score in new_scores.items())


class Boosting(SampleProvider):
    """The sample data (dated back from today, as the stack's provider), with ten
    times the views on one reel (none when `shortcode` is empty)."""

    def __init__(self, shortcode: str) -> None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        super().__init__(reference_time=today)
        self.shortcode = shortcode

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        return [
            r.model_copy(update={"view_count": r.view_count * 10})
            if r.shortcode == self.shortcode
            else r
            for r in super().fetch_reels(username, target)
        ]


def _of(api: LocalApi, name: str) -> list[dict[str, Any]]:
    return [
        r
        for page in walk(api, min_score=0, limit=100)
        for r in page["reels"]
        if r["username"] == name
    ]


def test_crawled_profiles_are_listed_and_marked(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    run_worker(stack, drain(aws_env, stack.refs["HighQueue"]), "HighQueue")
    discovered = drain(aws_env, stack.refs["LowQueue"])
    assert discovered
    assert run_worker(stack, discovered, "LowQueue") == {"batchItemFailures": []}

    reels = [r for page in walk(api, min_score=0, limit=100) for r in page["reels"]]
    crawled = {r["username"] for r in reels if r["crawl_depth"]}
    assert "natgeo" not in crawled
    assert crawled  # discovered profiles, analysed at crawl depth, are in the feed
    assert {r["username"] for r in reels if not r["crawl_depth"]} == {"natgeo"}

    # Later, a person asks for one of them: analysed in full, its feed reels are the
    # new analysis's, unmarked, and none of the crawl's is left.
    deepened = sorted(crawled)[0]
    before = {r["shortcode"] for r in reels if r["username"] == deepened}
    clock = StepClock()
    clock.advance(minutes=11)  # past "recently completed"
    ctx = bootstrap.build(get_settings(), clock)
    decision = ctx.intake(
        deepened,
        Source.FRONTEND,
    )
    assert decision.answer.queued
    worker = ctx.worker(Boosting(shortcode=""))
    assert worker.process(drain(aws_env, stack.refs["HighQueue"])[0]["Body"]).value == "completed"
    after = [
        r
        for page in walk(api, min_score=0, limit=100)
        for r in page["reels"]
        if r["username"] == deepened
    ]
    assert after
    assert not any(r["crawl_depth"] for r in after)
    stored = {i["shortcode"] for i in stored_reels(aws_env, stack) if i["username"] == deepened}
    assert len(stored) == 100  # the full analysis, and only it
    listed_now = {r["shortcode"] for r in after}
    assert listed_now <= stored
    assert before - stored  # the sample's crawl picked other reels than the full analysis
    assert listed_now.isdisjoint(before - stored)


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"min_score": "-1"}, "min_score"),
        ({"min_score": "abc"}, "min_score"),
        ({"min_score": "inf"}, "min_score"),
        ({"min_score": "nan"}, "min_score"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-30"}, "since must be a calendar date"),
        ({"since": "0"}, "since"),  # not a Unix timestamp
        ({"since": "2026-11-03T00:00:00"}, "since"),
        ({"category": "   "}, "category must not be blank"),
        ({"category": "x" * 101}, "category"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": "bm90IGpzb24"}, "Invalid cursor"),  # base64 of "not json"
        # A cursor of another listing (signed when the test runs: the key is the stack's).
        ({"cursor": "posts"}, "Invalid cursor"),
    ],
)
def test_bad_parameters_are_400_with_a_detail(
    api: LocalApi, aws_calls: Any, params: dict[str, str], detail: str
) -> None:
    if params.get("cursor") == "posts":
        params = {"cursor": encode_cursor({"key": {"username": "x"}})}
    aws_calls.reset()
    code, body = feed_page(api, **params)
    assert code == 400, body
    assert body["success"] is False
    assert detail in body["detail"]
    assert aws_calls.calls == []  # refused before any read


def test_a_tampered_or_foreign_cursor_is_400_never_500(
    api: LocalApi, three: list[dict[str, Any]], aws_calls: Any
) -> None:
    _, body = feed_page(api, min_score=1, limit=2)
    cursor = body["data"]["next_cursor"]
    assert cursor
    good = decode_cursor(cursor, kind=FEED_CURSOR)
    code, _ = feed_page(api, min_score=1, limit=2, cursor=cursor)
    assert code == 200

    tampered = [
        {**good, "after": "9999999999.9999#NotAName#x"},
        {**good, "after": 42},
        {**good, "after": "0000000000.0000#a#b"},  # below min_score
        {**good, "min": "0000000000.0000"},
        {**good, "from": "1999-01-01"},
        {**good, "to": "2026-13-01"},
        {**good, "to": "2026-12-02"},  # not a Monday
        {**good, "v": 2},
        {**good, "v": True},
        {**good, "cat": "chef"},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "since"},
    ]
    aws_calls.reset()
    for forged in tampered:
        code, answer = feed_page(
            api, min_score=1, limit=2, cursor=encode_cursor(forged, kind=FEED_CURSOR)
        )
        assert code == 400, (forged, answer)
        assert answer["detail"].startswith("Invalid cursor")
    # The same position signed for the posts listing, or altered: the signature fails.
    for other_kind in (
        encode_cursor(good),
        cursor[:-3] + ("AAA" if cursor[-3:] != "AAA" else "BBB"),
    ):
        code, answer = feed_page(api, min_score=1, limit=2, cursor=other_kind)
        assert code == 400, answer
        assert answer["detail"].startswith("Invalid cursor")
    # Another listing's cursor: same page, other filters.
    for other in ({"min_score": 3}, {"category": "chef"}, {"since": date.today().isoformat()}):
        code, answer = feed_page(api, limit=2, cursor=cursor, **{"min_score": 1, **other})
        assert code == 400, answer
        assert "other filters" in answer["detail"]
    assert aws_calls.calls == []


def test_storage_unreachable_is_503_with_retry_after(
    api: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    aws.reset_clients()
    bootstrap.reset()
    code, headers, body = api.request("GET", "/api/viral-ideas/reels")
    assert code == 503
    assert body == {"success": False, "detail": "Storage is temporarily unavailable. Please retry."}
    assert headers.get("Retry-After") == "5"
