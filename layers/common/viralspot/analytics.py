"""Viral analytics for one profile's reels: pure functions over provider data.

The numbers reproduce what the original system computed:

* A reel's **outlier score** is its view count divided by the median of the
  profile's non-zero view counts. Zero-view reels are left out of the median
  because the provider reports 0 when it does not know the count (and for reels
  that are still processing); letting them in would drag the baseline down and
  make every other reel look viral.
* **Content stats** and **engagement metrics** summarise the same analysed set,
  so the median behind the scores is the ``median_views`` the stats report.

Every derived float is rounded to `ROUND_DIGITS` decimals: it keeps values like
``0.30000000000000004`` out of the API and out of DynamoDB (whose adapter turns
floats into ``Decimal`` through their string form). Counts stay ``int``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from viralspot.providers import ProviderReel

ROUND_DIGITS = 4

# The thresholds behind reels_2x / reels_5x / reels_10x.
OUTLIER_THRESHOLDS: tuple[int, ...] = (2, 5, 10)


class ScoredReel(ProviderReel):
    """A reel with its scores. Subclasses `ProviderReel` so the two never drift apart.

    ``outlier_score`` = ``view_count / median_views`` of the analysed set, 0 when
    the profile has no non-zero view counts.
    ``engagement_rate`` = ``(like_count + comment_count) / view_count * 100``,
    0 when the reel has no views.
    """

    model_config = ConfigDict(frozen=True)

    outlier_score: float
    engagement_rate: float


class ContentStats(BaseModel):
    """Distribution of the analysed reels' reach.

    ``median_views`` is the median of the *non-zero* view counts (the outlier
    baseline, 0 when there are none); ``mean_views`` and ``std_views`` are over
    *all* analysed reels. ``std_views`` is the population standard deviation
    (`statistics.pstdev`): the analysed reels are the whole set being described,
    not a sample to estimate from, and it is defined (0) for a single reel.
    ``reels_Nx`` counts reels whose rounded ``outlier_score >= N``, so the counts
    agree with a filter on the stored scores.
    """

    model_config = ConfigDict(frozen=True)

    total_reels: int
    median_views: float
    mean_views: float
    std_views: float
    total_views: int
    total_likes: int
    total_comments: int
    reels_2x: int
    reels_5x: int
    reels_10x: int
    top_outlier_score: float


class EngagementMetrics(BaseModel):
    """How much the audience interacts, as percentages and per-reel averages.

    With ``n`` reels, ``L``/``C``/``V`` total likes/comments/views and ``F`` followers:

    * ``engagement_rate_by_followers = (L + C) / n / F * 100``: the average reel's
      interactions as a percentage of the follower count; 0 when ``n`` or ``F`` is 0.
    * ``engagement_rate_by_views = (L + C) / V * 100``: interactions per 100 views
      across all reels; 0 when ``V`` is 0.
    * ``avg_likes = L / n``, ``avg_comments = C / n``, ``avg_views = V / n``; 0 when ``n`` is 0.
    """

    model_config = ConfigDict(frozen=True)

    engagement_rate_by_followers: float
    engagement_rate_by_views: float
    avg_likes: float
    avg_comments: float
    avg_views: float


class ProfileAnalysis(BaseModel):
    """The result of `analyse`: scored reels in input order (duplicates removed) and summaries."""

    model_config = ConfigDict(frozen=True)

    reels: list[ScoredReel]
    content_stats: ContentStats
    engagement_metrics: EngagementMetrics


def _round(value: float) -> float:
    return round(value, ROUND_DIGITS)


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is not positive."""
    if denominator <= 0:
        return 0.0
    return numerator / denominator


def dedupe_reels(reels: Sequence[ProviderReel]) -> list[ProviderReel]:
    """The reels with repeated shortcodes dropped, keeping each shortcode's first occurrence.

    Paginated provider answers can repeat a reel across pages; counting it twice
    would skew the median and every total.
    """
    seen: set[str] = set()
    unique: list[ProviderReel] = []
    for reel in reels:
        if reel.shortcode in seen:
            continue
        seen.add(reel.shortcode)
        unique.append(reel)
    return unique


def median_nonzero_views(reels: Sequence[ProviderReel]) -> float:
    """Median of the positive view counts, 0.0 when there are none (the outlier baseline)."""
    views = [reel.view_count for reel in reels if reel.view_count > 0]
    if not views:
        return 0.0
    return float(statistics.median(views))


def score_reel(reel: ProviderReel, median_views: float) -> ScoredReel:
    """``reel`` with its outlier score against ``median_views`` and its engagement rate."""
    # Only the port's fields: re-scoring a ScoredReel must replace its scores, not clash.
    return ScoredReel(
        **reel.model_dump(include=set(ProviderReel.model_fields)),
        outlier_score=_round(_ratio(reel.view_count, median_views)),
        engagement_rate=_round(_ratio(reel.like_count + reel.comment_count, reel.view_count) * 100),
    )


def _content_stats(reels: Sequence[ScoredReel], median_views: float) -> ContentStats:
    views = [reel.view_count for reel in reels]
    scores = [reel.outlier_score for reel in reels]
    reels_at = {n: sum(1 for score in scores if score >= n) for n in OUTLIER_THRESHOLDS}
    return ContentStats(
        total_reels=len(reels),
        median_views=_round(median_views),
        mean_views=_round(statistics.fmean(views)) if views else 0.0,
        std_views=_round(statistics.pstdev(views)) if views else 0.0,
        total_views=sum(views),
        total_likes=sum(reel.like_count for reel in reels),
        total_comments=sum(reel.comment_count for reel in reels),
        reels_2x=reels_at[2],
        reels_5x=reels_at[5],
        reels_10x=reels_at[10],
        top_outlier_score=max(scores, default=0.0),
    )


def _engagement_metrics(stats: ContentStats, followers_count: int) -> EngagementMetrics:
    n = stats.total_reels
    interactions = stats.total_likes + stats.total_comments
    return EngagementMetrics(
        engagement_rate_by_followers=_round(_ratio(_ratio(interactions, n), followers_count) * 100),
        engagement_rate_by_views=_round(_ratio(interactions, stats.total_views) * 100),
        avg_likes=_round(_ratio(stats.total_likes, n)),
        avg_comments=_round(_ratio(stats.total_comments, n)),
        avg_views=_round(_ratio(stats.total_views, n)),
    )


def analyse(reels: Sequence[ProviderReel], followers_count: int) -> ProfileAnalysis:
    """Score every reel of a profile and summarise them.

    Reels are deduplicated by shortcode first (first occurrence wins), so the
    median, the scores and the totals all describe the same set. The scored
    reels keep the input order. Handles no reels, all-zero views and a single
    reel without special-casing by the caller: undefined ratios are 0.0.
    """
    unique = dedupe_reels(reels)
    median_views = median_nonzero_views(unique)
    scored = [score_reel(reel, median_views) for reel in unique]
    stats = _content_stats(scored, median_views)
    return ProfileAnalysis(
        reels=scored,
        content_stats=stats,
        engagement_metrics=_engagement_metrics(stats, followers_count),
    )
