"""The rapidapi adapter against a real HTTP server on loopback speaking its wire format."""

from __future__ import annotations

import email.utils
import logging
import math
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import ValidationError

from tests.fakes.rapidapi_server import FakeRapidApi, RecordedRequest, Reply
from viralspot import bootstrap
from viralspot.errors import (
    ErrorKind,
    ProfileNotFound,
    ProviderSystemic,
    ProviderTransient,
    ProviderUnauthorized,
    ProviderUnavailable,
)
from viralspot.pipeline import Worker
from viralspot.ports import Provider
from viralspot.providers.rapidapi import (
    DEFAULT_HOST,
    PROFILE_PATH,
    REELS_PATH,
    SIMILAR_PATH,
    RapidApiProvider,
    rapidapi_from_parameters,
)
from viralspot.providers.rapidapi import client as client_module
from viralspot.providers.rapidapi import provider as provider_module
from viralspot.providers.rapidapi.models import Account, Reel, SimilarAccount

API_KEY = "test-key"
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


@pytest.fixture
def fake() -> Iterator[FakeRapidApi]:
    with FakeRapidApi() as server:
        yield server
        assert server.unexpected == [], "the adapter called a path the test did not script"


@pytest.fixture
def sleeps() -> list[float]:
    return []


MakeProvider = Callable[..., RapidApiProvider]


@pytest.fixture
def make_provider(fake: FakeRapidApi, sleeps: list[float]) -> MakeProvider:
    def make(**options: Any) -> RapidApiProvider:
        settings: dict[str, Any] = {
            "base_url": fake.base_url,
            "timeout": 2.0,
            "sleep": sleeps.append,
        }
        settings.update(options)
        return RapidApiProvider(API_KEY, **settings)

    return make


@pytest.fixture
def provider(make_provider: MakeProvider) -> RapidApiProvider:
    return make_provider()


@pytest.fixture
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    # Attached to the adapter's own loggers (the transport's and the port's) so the
    # capture does not depend on how Powertools wires propagation to the root logger
    # in this process.
    records: list[logging.LogRecord] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = ListHandler(level=logging.DEBUG)
    targets = [logging.getLogger(module.logger.name) for module in (client_module, provider_module)]
    previous_levels = [target.level for target in targets]
    for target in targets:
        target.addHandler(handler)
        target.setLevel(logging.DEBUG)
    yield records
    for target, level in zip(targets, previous_levels, strict=True):
        target.removeHandler(handler)
        target.setLevel(level)


def profile_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "username": "alice",
        "full_name": "Alice Liddell",
        "biography": "down the rabbit hole",
        "follower_count": 12345,
        "following_count": 67,
        "media_count": 89,
        "profile_pic_url": "https://cdn.example/alice.jpg",
        "is_verified": True,
        "is_private": False,
        "is_business": True,
        "external_url": "https://alice.example",
        "category": "Artist",
    }
    body.update(overrides)
    return body


def media(code: str | None, *, taken_at: int | None = T0, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": f"pk-{code}", "play_count": 100, "like_count": 10}
    if code is not None:
        item["code"] = code
    if taken_at is not None:
        item["taken_at"] = taken_at
    item.update(fields)
    return {"node": {"media": item}}


def reels_page(codes: list[str], token: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"reels": [media(code) for code in codes]}
    if token is not None:
        body["pagination_token"] = token
    return body


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_satisfies_the_provider_port(provider: RapidApiProvider) -> None:
    port: Provider = provider
    assert port.name == "rapidapi"
    assert API_KEY not in repr(provider)


# -- wire format -----------------------------------------------------------------------


def test_profile_request_sends_rapidapi_headers_and_form_body(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(PROFILE_PATH, Reply(body=profile_body()))

    provider.fetch_profile("alice")

    [request] = fake.requests
    assert request.method == "POST"
    assert request.headers["x-rapidapi-key"] == API_KEY
    assert request.headers["x-rapidapi-host"] == DEFAULT_HOST
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.fields == {"username_or_url": "alice"}


def test_custom_host_goes_into_the_host_header(
    fake: FakeRapidApi, make_provider: MakeProvider
) -> None:
    fake.script(PROFILE_PATH, Reply(body=profile_body()))

    make_provider(host="other.p.rapidapi.com").fetch_profile("alice")

    assert fake.requests[0].headers["x-rapidapi-host"] == "other.p.rapidapi.com"


def test_reels_request_form_fields(fake: FakeRapidApi, provider: RapidApiProvider) -> None:
    fake.script(REELS_PATH, Reply(body=reels_page(["a"])))

    provider.fetch_reels("alice", 7)

    [request] = fake.requests
    assert request.method == "POST"
    assert request.headers["x-rapidapi-key"] == API_KEY
    assert request.fields == {"username_or_url": "alice", "amount": "7"}


def test_similar_is_a_get_with_the_username_in_the_query(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(SIMILAR_PATH, Reply(body=[{"username": "bob"}]))

    provider.fetch_similar("alice", 5)

    [request] = fake.requests
    assert request.method == "GET"
    assert request.fields == {"username_or_url": "alice"}
    assert request.body == b""
    assert request.headers["x-rapidapi-key"] == API_KEY


# -- mapping ---------------------------------------------------------------------------


def test_profile_fields_are_mapped(fake: FakeRapidApi, provider: RapidApiProvider) -> None:
    fake.script(PROFILE_PATH, Reply(body=profile_body()))

    profile = provider.fetch_profile("alice")

    assert profile.username == "alice"
    assert profile.full_name == "Alice Liddell"
    assert profile.biography == "down the rabbit hole"
    assert profile.followers_count == 12345
    assert profile.following_count == 67
    assert profile.posts_count == 89
    assert profile.profile_pic_url == "https://cdn.example/alice.jpg"
    assert profile.is_verified is True
    assert profile.is_private is False
    assert profile.is_business is True
    assert profile.external_url == "https://alice.example"
    assert profile.category == "Artist"


def test_profile_nulls_become_defaults(fake: FakeRapidApi, provider: RapidApiProvider) -> None:
    fake.script(
        PROFILE_PATH,
        Reply(
            body=profile_body(
                full_name=None,
                biography=None,
                follower_count=None,
                external_url="",
                category=None,
                is_verified=None,
            )
        ),
    )

    profile = provider.fetch_profile("alice")

    assert profile.full_name == ""
    assert profile.biography == ""
    assert profile.followers_count == 0
    assert profile.external_url is None
    assert profile.category is None
    assert profile.is_verified is False


def test_reel_fields_are_mapped(fake: FakeRapidApi, provider: RapidApiProvider) -> None:
    item = media(
        "C0DE1",
        pk=3141592653589793,
        play_count=1500,
        like_count=120,
        comment_count=7,
        caption={"text": "hello reel"},
        video_duration=12.5,
        image_versions2={
            "candidates": [
                {"url": "https://cdn.example/big.jpg"},
                {"url": "https://cdn.example/small.jpg"},
            ]
        },
    )
    fake.script(REELS_PATH, Reply(body={"reels": [item]}))

    [reel] = provider.fetch_reels("alice", 1)

    assert reel.shortcode == "C0DE1"
    assert reel.pk == "3141592653589793"
    assert reel.taken_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert reel.taken_at.utcoffset() is not None
    assert reel.view_count == 1500
    assert reel.like_count == 120
    assert reel.comment_count == 7
    assert reel.caption == "hello reel"
    assert reel.video_duration == 12.5
    assert reel.thumbnail_url == "https://cdn.example/big.jpg"
    assert reel.url == "https://www.instagram.com/reel/C0DE1/"


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"view_count": 42}, 42),
        ({"ig_play_count": 43}, 43),
        ({"play_count": None, "ig_play_count": 44}, 44),
        ({"play_count": None}, 0),
        ({}, 0),
    ],
)
def test_view_count_falls_back_and_null_is_zero(
    fake: FakeRapidApi, provider: RapidApiProvider, counts: dict[str, Any], expected: int
) -> None:
    item = media("V1")
    del item["node"]["media"]["play_count"]
    item["node"]["media"].update(counts)
    fake.script(REELS_PATH, Reply(body={"reels": [item]}))

    [reel] = provider.fetch_reels("alice", 1)

    assert reel.view_count == expected


def test_reel_with_null_caption_and_no_thumbnail(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(
        REELS_PATH,
        Reply(body={"reels": [media("N1", caption=None, image_versions2={"candidates": []})]}),
    )

    [reel] = provider.fetch_reels("alice", 1)

    assert reel.caption == ""
    assert reel.thumbnail_url is None
    assert reel.video_duration is None


def test_items_without_code_or_taken_at_are_skipped_not_fatal(
    fake: FakeRapidApi,
    provider: RapidApiProvider,
    captured_logs: list[logging.LogRecord],
) -> None:
    fake.script(
        REELS_PATH,
        Reply(
            body={
                "reels": [
                    media(None),
                    media("OK1"),
                    media("NODATE", taken_at=None),
                    {"node": None},
                    "junk",
                    media("OK2"),
                ]
            }
        ),
    )

    reels = provider.fetch_reels("alice", 10)

    assert [reel.shortcode for reel in reels] == ["OK1", "OK2"]
    assert any(
        record.levelno == logging.DEBUG and "skipped" in record.getMessage()
        for record in captured_logs
    )


# Any JSON value, weighted towards what broke hand-written mappings: infinities,
# NaN, numbers too big for a float, numbers and non-numbers as text.
AWKWARD = [math.inf, -math.inf, math.nan, 10**400, -(10**400), "1e400", "nan", "12", "-3", ""]
JSON = st.recursive(
    st.sampled_from(AWKWARD)
    | st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["text", "url", "candidates", "media"]), children)
    ),
    max_leaves=8,
)
# What a reel or an account cannot exist without; any other field may be garbage.
REEL_ESSENTIALS = ("code", "taken_at")
REEL_FIELDS = (
    "pk",
    "play_count",
    "view_count",
    "ig_play_count",
    "like_count",
    "comment_count",
    "caption",
    "video_duration",
    "image_versions2",
)
ACCOUNT_ESSENTIALS = ("username", "user")
ACCOUNT_FIELDS = (
    "full_name",
    "biography",
    "follower_count",
    "following_count",
    "media_count",
    "profile_pic_url",
    "is_verified",
    "is_private",
    "is_business",
    "external_url",
    "category",
)


def some_of(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=dict.fromkeys(keys, JSON))


# Timing is not what these check: the machine running them may be busy.
LENIENT = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@LENIENT
@given(
    essentials=some_of(REEL_ESSENTIALS),
    fields=some_of(REEL_FIELDS),
    wrap=st.sampled_from([0, 1, 2]),
)
def test_a_reel_is_skipped_only_without_code_or_time(
    essentials: dict[str, Any], fields: dict[str, Any], wrap: int
) -> None:
    media = {"code": "C0DE", "taken_at": T0, **essentials, **fields}
    item: Any = [media, {"media": media}, {"node": {"media": media}}][wrap]
    try:
        reel = Reel.model_validate(item).to_reel()
    except ValidationError:
        assert essentials, "a reel with a code and a time was skipped for another field"
        return
    assert reel.shortcode
    assert min(reel.view_count, reel.like_count, reel.comment_count) >= 0
    # DynamoDB stores no NaN or infinity: such a duration is no duration.
    assert reel.video_duration is None or math.isfinite(reel.video_duration)


@LENIENT
@given(essentials=some_of(ACCOUNT_ESSENTIALS), fields=some_of(ACCOUNT_FIELDS))
def test_an_account_is_invalid_only_without_a_username(
    essentials: dict[str, Any], fields: dict[str, Any]
) -> None:
    answer = {"username": "alice", **essentials, **fields}
    for model in (Account, SimilarAccount):
        try:
            profile = model.model_validate(answer).to_profile()
        except ValidationError:
            assert essentials, "an account with a username was refused for another field"
            continue
        assert profile.username
        assert min(profile.followers_count, profile.following_count, profile.posts_count) >= 0


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan, "1e400", "nan"])
def test_numbers_no_float_can_hold_are_no_numbers(
    fake: FakeRapidApi, provider: RapidApiProvider, number: Any
) -> None:
    item = media(
        "BIG",
        play_count=number,
        like_count=number,
        comment_count=number,
        video_duration=number,
    )
    fake.script(REELS_PATH, Reply(body={"reels": [item]}))
    fake.script(PROFILE_PATH, Reply(body=profile_body(follower_count=number, media_count=number)))

    [reel] = provider.fetch_reels("alice", 1)
    profile = provider.fetch_profile("alice")

    assert (reel.view_count, reel.like_count, reel.comment_count) == (0, 0, 0)
    assert reel.video_duration is None
    assert (profile.followers_count, profile.posts_count) == (0, 0)


@pytest.mark.parametrize("taken_at", [math.inf, math.nan, 10**20, "1e400", "soon", True, []])
def test_a_reel_whose_time_is_no_time_is_skipped(
    fake: FakeRapidApi, provider: RapidApiProvider, taken_at: Any
) -> None:
    fake.script(REELS_PATH, Reply(body={"reels": [media("BAD", taken_at=taken_at), media("OK")]}))

    reels = provider.fetch_reels("alice", 10)

    assert [reel.shortcode for reel in reels] == ["OK"]


# -- pagination ------------------------------------------------------------------------


def test_pages_through_tokens_and_deduplicates(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    pages = {
        None: reels_page(["a", "b", "c"], token="t1"),
        "t1": reels_page(["c", "d"], token="t2"),  # "c" repeated across pages
        "t2": reels_page(["d", "e", "a"], token=""),  # empty token: the end
    }

    def by_token(request: RecordedRequest) -> Reply:
        return Reply(body=pages[request.fields.get("pagination_token")])

    fake.route(REELS_PATH, by_token)

    reels = provider.fetch_reels("alice", 100)

    assert [reel.shortcode for reel in reels] == ["a", "b", "c", "d", "e"]
    requests = fake.requests_to(REELS_PATH)
    assert len(requests) == 3
    assert "pagination_token" not in requests[0].fields
    assert requests[1].fields["pagination_token"] == "t1"
    assert requests[2].fields["pagination_token"] == "t2"
    # Page size is capped at 50 whatever the target.
    assert [request.fields["amount"] for request in requests] == ["50", "50", "50"]


def test_stops_paging_once_target_is_reached(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(
        REELS_PATH,
        Reply(body=reels_page(["a", "b", "c"], token="t1")),
        Reply(body=reels_page(["d", "e", "f"], token="t2")),
        Reply(body=reels_page(["g", "h"], token="t3")),
    )

    reels = provider.fetch_reels("alice", 4)

    assert [reel.shortcode for reel in reels] == ["a", "b", "c", "d"]
    requests = fake.requests_to(REELS_PATH)
    assert len(requests) == 2  # tokens remained, yet no third page
    assert [request.fields["amount"] for request in requests] == ["4", "1"]


def test_page_count_is_bounded(fake: FakeRapidApi, make_provider: MakeProvider) -> None:
    counter = iter(range(1000))

    def endless(_: RecordedRequest) -> Reply:
        n = next(counter)
        return Reply(body=reels_page([f"r{n}a", f"r{n}b"], token=f"t{n}"))

    fake.route(REELS_PATH, endless)

    reels = make_provider(max_reel_pages=3).fetch_reels("alice", 100)

    assert len(fake.requests_to(REELS_PATH)) == 3
    assert len(reels) == 6


@pytest.mark.parametrize(
    ("first_page", "expected"),
    [
        (reels_page(["a"]), ["a"]),  # no token at all
        (reels_page(["a"], token=""), ["a"]),
        ({"reels": [], "pagination_token": "t1"}, []),  # empty page despite a token
        ({"reels": None, "pagination_token": "t1"}, []),
    ],
)
def test_stops_when_there_is_nothing_more(
    fake: FakeRapidApi,
    provider: RapidApiProvider,
    first_page: dict[str, Any],
    expected: list[str],
) -> None:
    fake.script(REELS_PATH, Reply(body=first_page), Reply(body=reels_page(["zz"], token="t9")))

    reels = provider.fetch_reels("alice", 10)

    assert [reel.shortcode for reel in reels] == expected
    assert len(fake.requests_to(REELS_PATH)) == 1


def test_zero_target_makes_no_request(fake: FakeRapidApi, provider: RapidApiProvider) -> None:
    assert provider.fetch_reels("alice", 0) == []
    assert fake.requests == []


# -- retries and classification ----------------------------------------------------------


def test_429_with_retry_after_is_honoured_then_succeeds(
    fake: FakeRapidApi, provider: RapidApiProvider, sleeps: list[float]
) -> None:
    fake.script(
        PROFILE_PATH,
        Reply(429, {"message": "Too many requests"}, headers={"Retry-After": "3"}),
        Reply(body=profile_body()),
    )

    profile = provider.fetch_profile("alice")

    assert profile.username == "alice"
    assert sleeps == [3.0]
    assert len(fake.requests) == 2


def test_429_forever_raises_transient_with_retry_after(
    fake: FakeRapidApi, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    fake.script(PROFILE_PATH, Reply(429, {"message": "slow down"}, headers={"Retry-After": "2"}))

    with pytest.raises(ProviderTransient) as caught:
        make_provider(max_retries=2).fetch_profile("alice")

    assert caught.value.retry_after == 2.0
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert len(fake.requests) == 3
    assert sleeps == [2.0, 2.0]


def test_long_retry_after_is_left_to_the_job_backoff(
    fake: FakeRapidApi, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    fake.script(PROFILE_PATH, Reply(503, {"message": "busy"}, headers={"Retry-After": "120"}))

    # 503: the provider says it is down, a fault that is not the job's (it pauses).
    with pytest.raises(ProviderUnavailable) as caught:
        make_provider(max_retry_after=5.0).fetch_profile("alice")

    assert caught.value.retry_after == 120.0
    assert sleeps == []
    assert len(fake.requests) == 1


def test_500_then_success_uses_backoff(
    fake: FakeRapidApi, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    fake.script(
        PROFILE_PATH, Reply(500, {"message": "oops"}), Reply(body=profile_body(username="bob"))
    )

    profile = make_provider(backoff_base=0.25).fetch_profile("bob")

    assert profile.username == "bob"
    assert sleeps == [0.25]


def test_backoff_grows_exponentially_and_then_gives_up(
    fake: FakeRapidApi, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    fake.script(PROFILE_PATH, Reply(502, b"<html>bad gateway</html>"))

    with pytest.raises(ProviderUnavailable) as caught:
        make_provider(max_retries=3, backoff_base=0.5).fetch_profile("alice")

    assert sleeps == [0.5, 1.0, 2.0]
    assert caught.value.retry_after is None
    assert len(fake.requests) == 4


@pytest.mark.parametrize(
    "body",
    [
        {"error": "Please try again later"},
        {"message": "Rate limit exceeded"},
        {"message": "429 Too Many Requests"},
        {"error": {"message": "too many requests"}},
        {"error": "something we have never seen"},  # unknown: not worth failing for good
    ],
)
def test_transient_error_in_a_200_body_is_retried_then_raised(
    fake: FakeRapidApi, make_provider: MakeProvider, sleeps: list[float], body: dict[str, Any]
) -> None:
    fake.script(PROFILE_PATH, Reply(200, body))

    with pytest.raises(ProviderTransient):
        make_provider(max_retries=2).fetch_profile("alice")

    assert len(fake.requests) == 3
    assert len(sleeps) == 2


def test_transient_error_in_a_200_body_then_success(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(
        REELS_PATH,
        Reply(200, {"error": "Please try again later"}),
        Reply(body=reels_page(["a", "b"])),
    )

    reels = provider.fetch_reels("alice", 5)

    assert [reel.shortcode for reel in reels] == ["a", "b"]


@pytest.mark.parametrize(
    "message", ["User does not exist", "user not found", "No user with that name"]
)
def test_not_found_in_a_200_body_is_permanent_and_not_retried(
    fake: FakeRapidApi, provider: RapidApiProvider, sleeps: list[float], message: str
) -> None:
    fake.script(PROFILE_PATH, Reply(200, {"message": message}))

    with pytest.raises(ProfileNotFound) as caught:
        provider.fetch_profile("ghost")

    assert caught.value.kind is ErrorKind.PERMANENT
    assert len(fake.requests) == 1
    assert sleeps == []


def test_not_found_on_the_reels_endpoint(fake: FakeRapidApi, provider: RapidApiProvider) -> None:
    fake.script(REELS_PATH, Reply(200, {"error": "User does not exist"}))

    with pytest.raises(ProfileNotFound):
        provider.fetch_reels("ghost", 10)

    assert len(fake.requests) == 1


def test_404_is_profile_not_found_without_retry(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(PROFILE_PATH, Reply(404, {"message": "Not Found"}))

    with pytest.raises(ProfileNotFound):
        provider.fetch_profile("ghost")

    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "body"), [(400, {"message": "invalid username"}), (422, {}), (409, {})]
)
def test_other_client_errors_are_bounded_transient_failures(
    fake: FakeRapidApi, provider: RapidApiProvider, status: int, body: dict[str, Any]
) -> None:
    # Only the provider's own "not found" / "private" are permanent (DESIGN.md): an
    # answer we do not understand costs an attempt, never the job at once.
    fake.script(PROFILE_PATH, Reply(status, body))

    with pytest.raises(ProviderTransient) as caught:
        provider.fetch_profile("ghost")

    assert caught.value.kind is ErrorKind.TRANSIENT


def test_private_account_is_profile_not_found(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(PROFILE_PATH, Reply(body=profile_body(is_private=True)))

    with pytest.raises(ProfileNotFound, match="private"):
        provider.fetch_profile("alice")

    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_unauthorized_logged_and_not_retried(
    fake: FakeRapidApi,
    provider: RapidApiProvider,
    sleeps: list[float],
    captured_logs: list[logging.LogRecord],
    status: int,
) -> None:
    fake.script(PROFILE_PATH, Reply(status, {"message": "You are not subscribed to this API."}))

    with pytest.raises(ProviderUnauthorized) as caught:
        provider.fetch_profile("alice")

    # Systemic: the job pauses rather than fails (tests/integration/test_lifecycle.py).
    assert isinstance(caught.value, ProviderSystemic)
    assert len(fake.requests) == 1
    assert sleeps == []
    assert any(record.levelno == logging.ERROR for record in captured_logs)
    for record in captured_logs:
        assert API_KEY not in record.getMessage()
        assert API_KEY not in repr(record.__dict__)
    assert API_KEY not in str(caught.value)


def test_auth_complaint_in_a_200_body_is_unauthorized(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(PROFILE_PATH, Reply(200, {"message": "Invalid API key. Go to docs"}))

    with pytest.raises(ProviderUnauthorized):
        provider.fetch_profile("alice")

    assert len(fake.requests) == 1


def test_retry_after_as_http_date_is_honoured(
    fake: FakeRapidApi, provider: RapidApiProvider, sleeps: list[float]
) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    fake.script(
        PROFILE_PATH,
        Reply(503, {"message": "busy"}, headers={"Retry-After": when}),
        Reply(body=profile_body()),
    )

    provider.fetch_profile("alice")

    [slept] = sleeps
    assert 0.0 < slept <= 2.0


def test_malformed_json_is_transient_after_retries(
    fake: FakeRapidApi, make_provider: MakeProvider
) -> None:
    fake.script(PROFILE_PATH, Reply(200, b"{not json"))

    with pytest.raises(ProviderTransient, match="malformed"):
        make_provider(max_retries=1).fetch_profile("alice")

    assert len(fake.requests) == 2


def test_profile_answer_without_username_is_transient(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(PROFILE_PATH, Reply(200, {"status": "ok"}))

    with pytest.raises(ProviderTransient):
        provider.fetch_profile("alice")


def test_read_timeout_is_transient(fake: FakeRapidApi, make_provider: MakeProvider) -> None:
    fake.script(PROFILE_PATH, Reply(body=profile_body(), delay=1.0))
    started = time.monotonic()

    with pytest.raises(ProviderTransient) as caught:
        make_provider(timeout=0.2, max_retries=0).fetch_profile("alice")

    assert time.monotonic() - started < 0.9  # the client gave up, it did not wait the reply out
    assert "Timeout" in str(caught.value)


def test_connection_refused_is_the_provider_down_and_retried(sleeps: list[float]) -> None:
    provider = RapidApiProvider(
        API_KEY, base_url=f"http://127.0.0.1:{closed_port()}", sleep=sleeps.append, max_retries=2
    )

    with pytest.raises(ProviderUnavailable):
        provider.fetch_profile("alice")

    assert len(sleeps) == 2


# -- similar accounts ----------------------------------------------------------------------


SIMILAR_USERS: list[dict[str, Any]] = [
    {"username": "bob", "full_name": "Bob", "is_verified": True, "follower_count": 500},
    {"full_name": "no username here"},
    {"username": "ALICE"},  # the profile itself, in another case
    {"username": "carol", "profile_pic_url": "https://cdn.example/carol.jpg"},
    {"username": "bob"},  # repeated
    {"username": "dave", "is_private": True},
    {"username": "erin"},
]


@pytest.mark.parametrize(
    "body",
    [
        SIMILAR_USERS,
        {"data": SIMILAR_USERS},
        {"users": SIMILAR_USERS},
        {"similar_accounts": SIMILAR_USERS},
        {"data": {"accounts": SIMILAR_USERS}},
    ],
    ids=["list", "data", "users", "similar_accounts", "nested"],
)
def test_similar_accepts_response_shapes_and_excludes_self(
    fake: FakeRapidApi, provider: RapidApiProvider, body: Any
) -> None:
    fake.script(SIMILAR_PATH, Reply(body=body))

    similar = provider.fetch_similar("alice", 10)

    assert [profile.username for profile in similar] == ["bob", "carol", "dave", "erin"]
    bob = similar[0]
    assert bob.full_name == "Bob"
    assert bob.is_verified is True
    assert bob.followers_count == 500
    assert similar[1].profile_pic_url == "https://cdn.example/carol.jpg"
    assert similar[2].is_private is True


def test_similar_names_follow_the_one_username_rule(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(
        SIMILAR_PATH,
        Reply(
            body=[
                {"username": "@Bob"},
                {"username": "bob"},  # the same account, spelled as the rule spells it
                {"username": "has space"},
                {"username": "@@carol"},
                {"username": "a" * 31},
                {"username": "dot."},
                {"username": " Erin "},  # surrounding blanks are the provider's, not the name's
            ]
        ),
    )

    similar = provider.fetch_similar("@Alice", 10)

    assert [profile.username for profile in similar] == ["bob", "erin"]


def test_similar_respects_limit(fake: FakeRapidApi, provider: RapidApiProvider) -> None:
    fake.script(SIMILAR_PATH, Reply(body={"users": SIMILAR_USERS}))

    similar = provider.fetch_similar("alice", 2)

    assert [profile.username for profile in similar] == ["bob", "carol"]


def test_similar_failure_is_classified(fake: FakeRapidApi, make_provider: MakeProvider) -> None:
    fake.script(SIMILAR_PATH, Reply(500, {"message": "boom"}))

    with pytest.raises(ProviderTransient):
        make_provider(max_retries=0).fetch_similar("alice", 5)


def test_similar_without_any_list_is_transient(
    fake: FakeRapidApi, provider: RapidApiProvider
) -> None:
    fake.script(SIMILAR_PATH, Reply(body={"status": "ok"}))

    with pytest.raises(ProviderTransient):
        provider.fetch_similar("alice", 5)


# -- the SSM factory -----------------------------------------------------------------------


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # An endpoint override (the emulator fixtures set one) would route around moto.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SSM", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # Powertools keeps one SSM client and its cache module-wide; neither may leak
    # between tests (or outlive the moto mock they were created under).
    parameters.clear_caches()
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")
    parameters.clear_caches()


def test_factory_reads_the_key_from_a_securestring(ssm: Any, fake: FakeRapidApi) -> None:
    ssm.put_parameter(Name="/viralspot/rapidapi-key", Value="ssm-test-key", Type="SecureString")
    fake.script(PROFILE_PATH, Reply(body=profile_body()))

    provider = rapidapi_from_parameters(
        "/viralspot/rapidapi-key", "custom.p.rapidapi.com", base_url=fake.base_url
    )
    provider.fetch_profile("alice")

    assert fake.requests[0].headers["x-rapidapi-key"] == "ssm-test-key"
    assert fake.requests[0].headers["x-rapidapi-host"] == "custom.p.rapidapi.com"


def test_factory_caches_the_key(ssm: Any, fake: FakeRapidApi) -> None:
    ssm.put_parameter(Name="/viralspot/rapidapi-key", Value="first-key", Type="SecureString")
    rapidapi_from_parameters("/viralspot/rapidapi-key", DEFAULT_HOST)
    ssm.put_parameter(
        Name="/viralspot/rapidapi-key", Value="second-key", Type="SecureString", Overwrite=True
    )
    fake.script(PROFILE_PATH, Reply(body=profile_body()))

    rapidapi_from_parameters(
        "/viralspot/rapidapi-key", DEFAULT_HOST, base_url=fake.base_url
    ).fetch_profile("alice")

    assert fake.requests[0].headers["x-rapidapi-key"] == "first-key"


def test_factory_missing_parameter_is_an_operator_problem(ssm: Any) -> None:
    with pytest.raises(ProviderUnauthorized, match="ParameterNotFound"):
        rapidapi_from_parameters("/viralspot/absent", DEFAULT_HOST)


# -- one provider per key per container ------------------------------------------------


KEY_PARAMETER = "/viralspot/rapidapi-key"


def rotate(ssm: Any, value: str) -> None:
    ssm.put_parameter(Name=KEY_PARAMETER, Value=value, Type="SecureString", Overwrite=True)
    # Stands in for Powertools' 5-minute cache expiring.
    parameters.clear_caches()


def invocation(fake: FakeRapidApi) -> RapidApiProvider:
    """What one invocation of the worker does: ask for the provider, then use it."""
    provider = rapidapi_from_parameters(KEY_PARAMETER, DEFAULT_HOST, base_url=fake.base_url)
    provider.fetch_profile("alice")
    return provider


def test_warm_invocations_reuse_the_provider_and_its_connection(
    ssm: Any, fake: FakeRapidApi
) -> None:
    ssm.put_parameter(Name=KEY_PARAMETER, Value="warm-key", Type="SecureString")
    fake.script(PROFILE_PATH, Reply(body=profile_body()))

    first, second = invocation(fake), invocation(fake)

    assert second is first
    # One TCP (in production, TLS) connection served both invocations.
    assert [request.client_port for request in fake.requests] == [fake.requests[0].client_port] * 2


def test_a_rotated_key_gets_a_provider_and_a_connection_of_its_own(
    ssm: Any, fake: FakeRapidApi
) -> None:
    ssm.put_parameter(Name=KEY_PARAMETER, Value="old-key", Type="SecureString")
    fake.script(PROFILE_PATH, Reply(body=profile_body()))
    old = invocation(fake)

    rotate(ssm, "new-key")
    new = invocation(fake)

    assert new is not old
    assert [request.headers["x-rapidapi-key"] for request in fake.requests] == [
        "old-key",
        "new-key",
    ]
    assert fake.requests[0].client_port != fake.requests[1].client_port
    # Later invocations keep to the new key's provider.
    assert invocation(fake) is new


@pytest.fixture
def rapidapi_worker_env(ssm: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The worker's environment with PROVIDER=rapidapi and its key in SSM."""
    environment = {
        "PROFILES_TABLE": "Profiles",
        "CONTENT_TABLE": "Content",
        "JOBS_TABLE": "Jobs",
        "HIGH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/high",
        "LOW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/low",
        "PROVIDER": "rapidapi",
        "RAPIDAPI_KEY_PARAMETER": KEY_PARAMETER,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    ssm.put_parameter(Name=KEY_PARAMETER, Value="worker-key", Type="SecureString")
    bootstrap.reset()
    yield ssm
    bootstrap.reset()


def resolved(worker: Worker) -> Provider:
    lazy = worker.provider
    assert isinstance(lazy, bootstrap.LazyProvider)
    return lazy.resolve()


def test_workers_built_in_a_row_share_one_provider_per_key(rapidapi_worker_env: Any) -> None:
    # The worker function builds a worker for every record it processes.
    first, second = bootstrap.services().worker(), bootstrap.services().worker()

    provider = resolved(first)
    assert isinstance(provider, RapidApiProvider)
    assert resolved(second) is provider

    rotate(rapidapi_worker_env, "rotated-key")
    after_rotation = resolved(bootstrap.services().worker())
    assert isinstance(after_rotation, RapidApiProvider)
    assert after_rotation is not provider
    assert resolved(bootstrap.services().worker()) is after_rotation
