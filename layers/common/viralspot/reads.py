"""The read side: a processed profile, its reels, its similar profiles."""

from __future__ import annotations

from pydantic import BaseModel

from viralspot.content import DEFAULT_PAGE, MAX_PAGE, PostSort, PostsPage
from viralspot.errors import InvalidInput, NotFound
from viralspot.ports import Content, Profiles
from viralspot.profiles import Profile, Tier


class SimilarProfile(BaseModel):
    username: str
    full_name: str = ""
    profile_pic_url: str | None = None
    followers_count: int = 0
    is_verified: bool = False
    tier: Tier
    analysed: bool


class SimilarProfiles(BaseModel):
    username: str
    similar: list[SimilarProfile]
    count: int


def primary_profile(username: str, profiles: Profiles) -> Profile:
    profile = profiles.get(username)
    if profile is None or profile.tier is not Tier.PRIMARY:
        raise NotFound(
            f"Profile {username} has not been processed yet; "
            f"POST /api/profile/{username}/request to queue it"
        )
    return profile


def posts(
    username: str,
    *,
    sort: PostSort,
    limit: int | None,
    cursor: str | None,
    profiles: Profiles,
    content: Content,
) -> PostsPage:
    size = DEFAULT_PAGE if limit is None else limit
    if not 1 <= size <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    primary_profile(username, profiles)
    found, next_cursor = content.page(username, sort, size, cursor)
    return PostsPage(
        username=username, sort=sort, posts=found, count=len(found), next_cursor=next_cursor
    )


def similar(username: str, *, profiles: Profiles) -> SimilarProfiles:
    profile = primary_profile(username, profiles)
    known = profiles.get_many(list(profile.similar_usernames))
    items = [
        SimilarProfile(
            username=p.username,
            full_name=p.full_name,
            profile_pic_url=p.profile_pic_url,
            followers_count=p.followers_count,
            is_verified=p.is_verified,
            tier=p.tier,
            analysed=p.tier is Tier.PRIMARY,
        )
        for p in known
    ]
    return SimilarProfiles(username=username, similar=items, count=len(items))
