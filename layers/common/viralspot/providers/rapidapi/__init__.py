"""The `rapidapi` provider: the RapidAPI "Instagram Scraper Stable API".

- `client`: transport (one urllib3 pool, bounded retries, Retry-After);
- `errors`: what an answer means, as `viralspot.errors` (the worker decides between
  "retry later", "pause" and "fail for good" from the error's type alone);
- `models`: the provider's JSON as lenient pydantic models;
- `provider`: the port (`RapidApiProvider`) and the container's provider per key
  (`rapidapi_from_parameters`).
"""

from viralspot.providers.rapidapi.provider import (
    DEFAULT_HOST,
    MAX_PAGE_SIZE,
    PROFILE_PATH,
    REELS_PATH,
    SIMILAR_PATH,
    RapidApiProvider,
    rapidapi_from_parameters,
)

__all__ = [
    "DEFAULT_HOST",
    "MAX_PAGE_SIZE",
    "PROFILE_PATH",
    "REELS_PATH",
    "SIMILAR_PATH",
    "RapidApiProvider",
    "rapidapi_from_parameters",
]
