"""The offline `sample` provider: determinism, shape of the data, failure usernames."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from viralspot.analytics import analyse
from viralspot.errors import ErrorKind, InvalidInput, ProfileNotFound, ProviderTransient
from viralspot.ports import Provider
from viralspot.providers.sample import (
    FLAKY_USERNAME,
    NOTFOUND_USERNAME,
    PRIVATE_USERNAME,
    REFERENCE_TIME,
    SampleProvider,
)
from viralspot.usernames import normalise_username

INSTAGRAM_NAME = re.compile(r"^[a-z0-9._]{1,30}$")
REPO_ROOT = Path(__file__).resolve().parents[2]
USERNAMES = ["alice", "bob.smith_99", "x", "travel.with.kim", "a" * 30]


@pytest.fixture
def provider() -> SampleProvider:
    return SampleProvider()


def test_satisfies_the_provider_port() -> None:
    port: Provider = SampleProvider()
    assert port.name == "sample"


class TestDeterminism:
    def test_same_username_same_data_across_instances(self) -> None:
        one, two = SampleProvider(), SampleProvider()
        assert one.fetch_profile("alice") == two.fetch_profile("alice")
        assert one.fetch_reels("alice", 20) == two.fetch_reels("alice", 20)
        assert one.fetch_similar("alice", 5) == two.fetch_similar("alice", 5)

    def test_different_usernames_differ(self, provider: SampleProvider) -> None:
        alice, bob = provider.fetch_reels("alice", 10), provider.fetch_reels("bob", 10)
        assert {r.shortcode for r in alice}.isdisjoint(r.shortcode for r in bob)
        assert [r.view_count for r in alice] != [r.view_count for r in bob]
        assert provider.fetch_profile("alice") != provider.fetch_profile("bob")

    def test_independent_of_python_hash_seed(self) -> None:
        # hash() of a str changes with PYTHONHASHSEED; the data must not.
        script = (
            "from viralspot.providers.sample import SampleProvider\n"
            "p = SampleProvider()\n"
            "print(p.fetch_profile('alice').model_dump_json())\n"
            "print([r.model_dump_json() for r in p.fetch_reels('alice', 5)])\n"
            "print([s.username for s in p.fetch_similar('alice', 5)])\n"
        )
        outputs = []
        for seed in ("1", "2"):
            env = {
                **os.environ,
                "PYTHONHASHSEED": seed,
                "PYTHONPATH": str(REPO_ROOT / "layers" / "common"),
            }
            done = subprocess.run(  # noqa: S603 - our own interpreter and script
                [sys.executable, "-c", script],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            outputs.append(done.stdout)
        assert outputs[0] == outputs[1]
        assert outputs[0]

    def test_username_case_does_not_matter(self, provider: SampleProvider) -> None:
        assert provider.fetch_profile("Alice") == provider.fetch_profile("alice")
        assert provider.fetch_profile("alice").username == "alice"


class TestProfile:
    @pytest.mark.parametrize("username", USERNAMES)
    def test_plausible_profile(self, provider: SampleProvider, username: str) -> None:
        profile = provider.fetch_profile(username)
        assert profile.username == username
        assert 1_000 <= profile.followers_count <= 5_000_000
        assert profile.is_verified == (profile.followers_count >= 1_000_000)
        assert "sample data" in profile.biography.lower()
        assert profile.external_url is None
        assert profile.is_private is False
        assert profile.category
        if profile.profile_pic_url is not None:
            assert profile.profile_pic_url.startswith("https://media.example.com/")

    def test_full_name_comes_from_the_username(self, provider: SampleProvider) -> None:
        assert provider.fetch_profile("bob.smith_99").full_name == "Bob Smith"
        assert provider.fetch_profile("travel.with.kim").full_name == "Travel With Kim"

    def test_follower_counts_vary_across_orders_of_magnitude(
        self, provider: SampleProvider
    ) -> None:
        followers = [provider.fetch_profile(f"creator{i}").followers_count for i in range(60)]
        # log-uniform over 1k..5M: 60 draws essentially never stay within one decade
        assert max(followers) / min(followers) > 10

    @pytest.mark.parametrize(
        "username", ["", "has space", "émile", "a" * 31, "dash-ed", ".dot", "dot.", "a..b"]
    )
    def test_impossible_names_are_not_found(self, provider: SampleProvider, username: str) -> None:
        with pytest.raises(ProfileNotFound):
            provider.fetch_profile(username)

    @pytest.mark.parametrize(
        ("raw", "name"), [("@Alice", "alice"), ("TRAVEL.With.Kim", "travel.with.kim")]
    )
    def test_names_follow_the_one_username_rule(
        self, provider: SampleProvider, raw: str, name: str
    ) -> None:
        assert normalise_username(raw) == name
        assert provider.fetch_profile(raw) == provider.fetch_profile(name)
        assert provider.fetch_profile(raw).username == name

    @pytest.mark.parametrize("raw", [" alice", "alice ", "@@alice", "@"])
    def test_names_the_rule_refuses_are_not_found(self, provider: SampleProvider, raw: str) -> None:
        with pytest.raises(InvalidInput):
            normalise_username(raw)
        with pytest.raises(ProfileNotFound):
            provider.fetch_profile(raw)


class TestReels:
    @pytest.mark.parametrize("target", [0, 1, 2, 12, 50])
    def test_exactly_target_reels_with_unique_shortcodes(
        self, provider: SampleProvider, target: int
    ) -> None:
        reels = provider.fetch_reels("alice", target)
        assert len(reels) == target
        assert len({r.shortcode for r in reels}) == target

    def test_reel_shape(self, provider: SampleProvider) -> None:
        reels = provider.fetch_reels("alice", 30)
        oldest_allowed = REFERENCE_TIME - timedelta(days=120)
        for r in reels:
            assert re.fullmatch(r"[0-9A-Za-z]{11}", r.shortcode)
            assert r.url == f"https://www.instagram.com/reel/{r.shortcode}/"
            assert r.thumbnail_url is not None
            assert r.thumbnail_url.startswith("https://media.example.com/")
            assert oldest_allowed <= r.taken_at <= REFERENCE_TIME
            assert r.view_count > 0
            assert 0 <= r.like_count <= r.view_count
            assert 0 <= r.comment_count <= r.like_count
        taken = [r.taken_at for r in reels]
        assert taken == sorted(taken, reverse=True)  # newest first

    def test_reference_time_is_injectable(self) -> None:
        later = datetime(2030, 1, 1, tzinfo=UTC)
        reels = SampleProvider(reference_time=later).fetch_reels("alice", 10)
        assert all(later - timedelta(days=120) <= r.taken_at <= later for r in reels)

    def test_naive_reference_time_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone"):
            SampleProvider(reference_time=datetime(2030, 1, 1))

    @pytest.mark.parametrize("username", USERNAMES)
    @pytest.mark.parametrize("target", [5, 12, 30, 120])
    def test_sample_reels_contain_viral_outliers(
        self, provider: SampleProvider, username: str, target: int
    ) -> None:
        followers = provider.fetch_profile(username).followers_count
        stats = analyse(provider.fetch_reels(username, target), followers).content_stats
        # documented: one reel >= 12x and another >= 5.5x once there are 5 reels
        assert stats.reels_5x >= 2
        assert stats.reels_10x >= 1
        # outliers stand out from an ordinary majority, not the other way round
        assert stats.reels_2x < target / 2


class TestSimilar:
    @pytest.mark.parametrize("username", [*USERNAMES, "flaky_fox", "sample_x"])
    @pytest.mark.parametrize("limit", [1, 5, 25])
    def test_valid_names_excluding_self(
        self, provider: SampleProvider, username: str, limit: int
    ) -> None:
        similar = provider.fetch_similar(username, limit)
        names = [s.username for s in similar]
        assert len(names) == limit
        assert len(set(names)) == limit
        assert username not in names
        assert all(INSTAGRAM_NAME.fullmatch(n) for n in names)
        assert all(normalise_username(n) == n for n in names)

    def test_never_suggests_itself_when_numbered_names_collide(
        self, provider: SampleProvider
    ) -> None:
        # "creator7" has stem "creator", so the "{stem}{n}" form (n in 2..999) can produce
        # "creator7"; 2000 names use up nearly every random form, then the numbered fallback.
        names = [s.username for s in provider.fetch_similar("creator7", 2000)]
        assert "creator7" not in names
        assert len(set(names)) == 2000
        assert all(INSTAGRAM_NAME.fullmatch(n) for n in names)
        # intake would accept every suggestion as it is
        assert all(normalise_username(n) == n for n in names)

    def test_zero_limit(self, provider: SampleProvider) -> None:
        assert provider.fetch_similar("alice", 0) == []

    def test_similar_accounts_can_be_analysed_without_tripping_failures(self) -> None:
        provider = SampleProvider()
        for similar in provider.fetch_similar("flaky_fox", 25):
            # a fresh instance would raise on the first call for a flaky or missing name
            full = SampleProvider().fetch_profile(similar.username)
            assert full.followers_count == similar.followers_count
            assert full.full_name == similar.full_name


class TestFailureUsernames:
    @pytest.mark.parametrize("username", [NOTFOUND_USERNAME, "notfound_anyone", PRIVATE_USERNAME])
    def test_permanent_failures(self, provider: SampleProvider, username: str) -> None:
        with pytest.raises(ProfileNotFound) as caught:
            provider.fetch_profile(username)
        assert caught.value.kind is ErrorKind.PERMANENT
        with pytest.raises(ProfileNotFound):
            provider.fetch_reels(username, 5)
        with pytest.raises(ProfileNotFound):
            provider.fetch_similar(username, 5)

    def test_private_says_so(self, provider: SampleProvider) -> None:
        with pytest.raises(ProfileNotFound, match="private"):
            provider.fetch_profile(PRIVATE_USERNAME)

    @pytest.mark.parametrize("username", [FLAKY_USERNAME, "flaky_fox"])
    def test_flaky_fails_twice_then_succeeds(self, username: str) -> None:
        provider = SampleProvider()
        for _ in range(2):
            with pytest.raises(ProviderTransient, match="rate limited") as caught:
                provider.fetch_profile(username)
            assert caught.value.kind is ErrorKind.TRANSIENT
            assert caught.value.retry_after is None
        assert provider.fetch_profile(username).username == username
        assert provider.fetch_profile(username).username == username
        # the count belongs to the instance: a new container starts failing again
        with pytest.raises(ProviderTransient):
            SampleProvider().fetch_profile(username)

    def test_flaky_counts_per_username(self) -> None:
        provider = SampleProvider()
        with pytest.raises(ProviderTransient):
            provider.fetch_profile("flaky_one")
        with pytest.raises(ProviderTransient):
            provider.fetch_profile("flaky_two")
        with pytest.raises(ProviderTransient):
            provider.fetch_profile("flaky_one")
        provider.fetch_profile("flaky_one")
        with pytest.raises(ProviderTransient):
            provider.fetch_profile("flaky_two")

    @pytest.mark.parametrize("failures", [0, 1, 4])
    def test_flaky_failures_is_configurable(self, failures: int) -> None:
        provider = SampleProvider(flaky_failures=failures)
        for _ in range(failures):
            with pytest.raises(ProviderTransient):
                provider.fetch_profile(FLAKY_USERNAME)
        assert provider.fetch_profile(FLAKY_USERNAME).username == FLAKY_USERNAME

    def test_negative_flaky_failures_is_refused(self) -> None:
        with pytest.raises(ValueError, match="flaky_failures"):
            SampleProvider(flaky_failures=-1)

    def test_flaky_only_affects_fetch_profile(self) -> None:
        provider = SampleProvider()
        assert len(provider.fetch_reels(FLAKY_USERNAME, 3)) == 3
        assert len(provider.fetch_similar(FLAKY_USERNAME, 3)) == 3

    def test_flaky_counter_is_thread_safe(self) -> None:
        provider = SampleProvider(flaky_failures=5)
        failures: list[ProviderTransient] = []
        successes: list[str] = []
        record = threading.Lock()
        start = threading.Barrier(16)

        def call() -> None:
            start.wait()
            for _ in range(4):
                try:
                    name = provider.fetch_profile(FLAKY_USERNAME).username
                except ProviderTransient as error:
                    with record:
                        failures.append(error)
                else:
                    with record:
                        successes.append(name)

        threads = [threading.Thread(target=call) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(failures) == 5
        assert len(successes) == 16 * 4 - 5
