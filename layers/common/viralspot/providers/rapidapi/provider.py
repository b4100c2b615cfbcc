"""The provider port over the Instagram Scraper Stable API: paging, deduplication,
and which answers a profile cannot be built from."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Final

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from viralspot.adapters.secrets import provider_key
from viralspot.errors import ProfileNotFound, ProviderTransient
from viralspot.providers import ProviderProfile, ProviderReel
from viralspot.providers.rapidapi.client import RapidApiClient
from viralspot.providers.rapidapi.models import (
    SIMILAR_LIST_KEYS,
    Account,
    Reel,
    ReelsPage,
    SimilarAccount,
    similar_entries,
)
from viralspot.usernames import username_or_none

logger = Logger(child=True)

DEFAULT_HOST: Final = "instagram-scraper-stable-api.p.rapidapi.com"

PROFILE_PATH: Final = "/ig_get_fb_profile.php"
REELS_PATH: Final = "/get_ig_user_reels.php"
SIMILAR_PATH: Final = "/get_ig_similar_accounts.php"

# The provider serves at most this many reels per page whatever `amount` says;
# asking for more only makes the page slower.
MAX_PAGE_SIZE: Final = 50


class RapidApiProvider:
    """The Provider port over the Instagram Scraper Stable API (urllib3, no SDK)."""

    name = "rapidapi"

    def __init__(
        self,
        api_key: str,
        *,
        host: str = DEFAULT_HOST,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 2,
        max_reel_pages: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        max_retry_after: float = 5.0,
        backoff_base: float = 0.5,
    ) -> None:
        if max_reel_pages < 1:
            raise ValueError("max_reel_pages must be >= 1")
        self._max_reel_pages = max_reel_pages
        self._client = RapidApiClient(
            api_key,
            host=host,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            sleep=sleep,
            max_retry_after=max_retry_after,
            backoff_base=backoff_base,
        )

    def __repr__(self) -> str:
        return f"RapidApiProvider(base_url={self._client.base_url!r})"

    def fetch_profile(self, username: str) -> ProviderProfile:
        payload = self._client.call(
            "POST", PROFILE_PATH, {"username_or_url": username}, ("username",)
        )
        try:
            account = Account.model_validate(payload)
        except ValidationError as exc:
            raise ProviderTransient(
                f"rapidapi: profile answer for {username!r} has no username"
            ) from exc
        if account.is_private:
            # Permanent: the reels of a private account cannot be read, whatever we retry.
            raise ProfileNotFound(f"rapidapi: profile {username!r} is private")
        return account.to_profile()

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        if target <= 0:
            return []
        # A dict keeps first-seen order while deduplicating: providers repeat items
        # across pages, and the first occurrence is the one in feed order.
        reels: dict[str, ProviderReel] = {}
        skipped = 0
        token: str | None = None
        for page_number in range(1, self._max_reel_pages + 1):
            fields = {
                "username_or_url": username,
                "amount": str(min(target - len(reels), MAX_PAGE_SIZE)),
            }
            if token:
                fields["pagination_token"] = token
            payload = self._client.call("POST", REELS_PATH, fields, ("reels",))
            try:
                page = ReelsPage.model_validate(payload)
            except ValidationError as exc:
                raise ProviderTransient(
                    f"rapidapi: reels answer for {username!r} (page {page_number}) has no reel list"
                ) from exc
            for item in page.reels:
                try:
                    reel = Reel.model_validate(item).to_reel()
                except ValidationError:
                    skipped += 1
                    continue
                reels.setdefault(reel.shortcode, reel)
                if len(reels) >= target:
                    break
            if len(reels) >= target or not page.reels or page.pagination_token is None:
                break
            token = page.pagination_token
        if skipped:
            # Debug only: a few half-formed items are routine for this provider and
            # not worth failing a profile over.
            logger.debug(
                "rapidapi skipped reels without code or taken_at",
                extra={"username": username, "skipped": skipped},
            )
        return list(reels.values())[:target]

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        if limit <= 0:
            return []
        payload = self._client.call(
            "GET", SIMILAR_PATH, {"username_or_url": username}, SIMILAR_LIST_KEYS
        )
        entries = similar_entries(payload)
        if entries is None:
            raise ProviderTransient(f"rapidapi: similar answer for {username!r} has no list")
        seen = {username_or_none(username)}
        similar: list[ProviderProfile] = []
        for entry in entries:
            try:
                account = SimilarAccount.model_validate(entry)
            except ValidationError:
                continue
            # Keyed by the one username rule: the profile itself in another case, a
            # repeat, or a name no account can have is skipped.
            key = username_or_none(account.username)
            if key is None or key in seen:
                continue
            seen.add(key)
            similar.append(account.to_profile(username=key))
            if len(similar) >= limit:
                break
        return similar


def rapidapi_from_parameters(
    parameter_name: str, host: str = DEFAULT_HOST, *, base_url: str | None = None
) -> RapidApiProvider:
    """The container's provider for the key in an SSM SecureString.

    Powertools caches the key for 5 minutes, so warm invocations skip SSM while a
    rotated key still reaches running containers soon; the provider (and its
    connection pool) is built once per key, so warm invocations reuse it.
    """
    return _provider_for_key(provider_key(parameter_name), host, base_url)


# Keyed by the key's value: a rotated key gets a new provider, and the old one
# falls out of the cache instead of being used again. Small, as a container sees
# one key at a time and at most a rotation or two in its life.
@lru_cache(maxsize=4)
def _provider_for_key(api_key: str, host: str, base_url: str | None) -> RapidApiProvider:
    return RapidApiProvider(api_key, host=host, base_url=base_url)
