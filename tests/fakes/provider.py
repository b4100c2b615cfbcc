"""A `ports.Provider` fake whose answers and faults are set by the test.

It answers like a real provider would, including its quirks: the account name in
the provider's own spelling, similar accounts under names that are not normalised
(or not valid at all), new reels replacing old ones between two fetches; and the
faults that are not the job's (DESIGN.md "Systemic faults pause"): the key missing
(`key_missing`, as the SSM adapter reports it) and the provider down (`down`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from viralspot.errors import ProviderError, ProviderUnauthorized, ProviderUnavailable
from viralspot.providers import ProviderProfile, ProviderReel

# Reels are dated back from here, so the data never depends on the test's clock.
NEWEST_REEL = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_POSTED = 200
KEY_MISSING = "key parameter '/viralspot/rapidapi-key' unavailable (ParameterNotFound)"
PROVIDER_DOWN = "provider answered HTTP 503 (fake)"


class FakeProvider:
    name = "fake"

    def __init__(self) -> None:
        self.key_missing = False
        self.down = False
        # Raised by the next fetch_profile calls, in order.
        self.failures: list[ProviderError] = []
        # username -> the name the provider answers with (its own spelling).
        self.spelling: dict[str, str] = {}
        # username -> similar accounts, as the provider spells them.
        self.similar: dict[str, list[str]] = {}
        # username -> how many reels the account has (DEFAULT_POSTED otherwise).
        self.posted: dict[str, int] = {}
        # username -> how many reels it has posted since the first fetch: the newest
        # reels are fetched first, so a refresh sees new shortcodes and loses old ones.
        self.new_since: dict[str, int] = {}
        self.reels_asked: list[tuple[str, int]] = []
        self.profiles_asked: list[str] = []

    def fetch_profile(self, username: str) -> ProviderProfile:
        self._systemic()
        self.profiles_asked.append(username)
        if self.failures:
            raise self.failures.pop(0)
        return ProviderProfile(
            username=self.spelling.get(username, username),
            full_name=username.title(),
            followers_count=10_000,
        )

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        self._systemic()
        self.reels_asked.append((username, target))
        newest = self.new_since.get(username, 0)
        count = min(target, self.posted.get(username, DEFAULT_POSTED))
        return [
            ProviderReel(
                shortcode=f"{username}-{newest - i}",
                taken_at=NEWEST_REEL - timedelta(days=i),
                view_count=1_000 * (1 + (i * 7) % 13),
                like_count=10 + i,
                comment_count=i % 5,
                url=f"https://www.instagram.com/reel/{username}-{newest - i}/",
            )
            for i in range(count)
        ]

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        self._systemic()
        return [ProviderProfile(username=name) for name in self.similar.get(username, [])][:limit]

    def _systemic(self) -> None:
        if self.key_missing:
            raise ProviderUnauthorized(KEY_MISSING)
        if self.down:
            raise ProviderUnavailable(PROVIDER_DOWN)
