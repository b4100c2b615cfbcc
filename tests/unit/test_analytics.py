"""Viral analytics against numbers worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from viralspot.analytics import ProfileAnalysis, ScoredReel, analyse
from viralspot.providers import ProviderReel

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def reel(
    shortcode: str, views: int, likes: int = 0, comments: int = 0, *, day: int = 0
) -> ProviderReel:
    return ProviderReel(
        shortcode=shortcode,
        pk=f"pk-{shortcode}",
        taken_at=T0 + timedelta(days=day),
        view_count=views,
        like_count=likes,
        comment_count=comments,
        caption=f"caption {shortcode}",
        video_duration=12.5,
        thumbnail_url=f"https://media.example.com/{shortcode}.jpg",
        url=f"https://www.instagram.com/reel/{shortcode}/",
    )


def scores(analysis: ProfileAnalysis) -> list[float]:
    return [r.outlier_score for r in analysis.reels]


class TestMixedProfile:
    """views [100, 200, 300, 0, 1000], likes [10, 20, 30, 4, 100], comments [0, 5, 3, 1, 12]."""

    @pytest.fixture
    def analysis(self) -> ProfileAnalysis:
        reels = [
            reel("a", 100, 10, 0),
            reel("b", 200, 20, 5),
            reel("c", 300, 30, 3),
            reel("d", 0, 4, 1),
            reel("e", 1000, 100, 12),
        ]
        return analyse(reels, followers_count=1000)

    def test_outlier_scores_use_the_median_of_nonzero_views(
        self, analysis: ProfileAnalysis
    ) -> None:
        # non-zero views sorted: 100, 200, 300, 1000 -> median (200 + 300) / 2 = 250
        # 100/250 = 0.4, 200/250 = 0.8, 300/250 = 1.2, zero views -> 0, 1000/250 = 4.0
        assert analysis.content_stats.median_views == 250.0
        assert scores(analysis) == pytest.approx([0.4, 0.8, 1.2, 0.0, 4.0])

    def test_reels_keep_input_order_and_provider_fields(self, analysis: ProfileAnalysis) -> None:
        assert [r.shortcode for r in analysis.reels] == ["a", "b", "c", "d", "e"]
        first = analysis.reels[0]
        assert first.url == "https://www.instagram.com/reel/a/"
        assert first.pk == "pk-a"
        assert first.caption == "caption a"
        assert first.taken_at == T0
        assert first.video_duration == 12.5
        assert first.thumbnail_url == "https://media.example.com/a.jpg"

    def test_per_reel_engagement_rate(self, analysis: ProfileAnalysis) -> None:
        # (10+0)/100*100 = 10, (20+5)/200*100 = 12.5, (30+3)/300*100 = 11,
        # zero views -> 0 even though it has likes, (100+12)/1000*100 = 11.2
        assert [r.engagement_rate for r in analysis.reels] == pytest.approx(
            [10.0, 12.5, 11.0, 0.0, 11.2]
        )

    def test_content_stats(self, analysis: ProfileAnalysis) -> None:
        stats = analysis.content_stats
        assert stats.total_reels == 5
        assert stats.total_views == 1600  # 100+200+300+0+1000
        assert stats.total_likes == 164  # 10+20+30+4+100
        assert stats.total_comments == 21  # 0+5+3+1+12
        assert stats.mean_views == pytest.approx(320.0)  # 1600 / 5
        # population std: squared deviations from 320 are
        # 220^2=48400, 120^2=14400, 20^2=400, 320^2=102400, 680^2=462400
        # sum 628000 / 5 = 125600 -> sqrt = 354.40...
        assert stats.std_views == pytest.approx(math.sqrt(125_600), abs=1e-4)
        # only 4.0 reaches 2x; nothing reaches 5x or 10x
        assert (stats.reels_2x, stats.reels_5x, stats.reels_10x) == (1, 0, 0)
        assert stats.top_outlier_score == pytest.approx(4.0)

    def test_engagement_metrics(self, analysis: ProfileAnalysis) -> None:
        metrics = analysis.engagement_metrics
        # likes + comments = 164 + 21 = 185
        # by followers: 185 / 5 reels = 37 per reel, / 1000 followers * 100 = 3.7 %
        assert metrics.engagement_rate_by_followers == pytest.approx(3.7)
        # by views: 185 / 1600 * 100 = 11.5625 %
        assert metrics.engagement_rate_by_views == pytest.approx(11.5625)
        assert metrics.avg_likes == pytest.approx(32.8)  # 164 / 5
        assert metrics.avg_comments == pytest.approx(4.2)  # 21 / 5
        assert metrics.avg_views == pytest.approx(320.0)  # 1600 / 5


def test_thresholds_are_inclusive() -> None:
    # sorted 100, 100, 100, 200, 500, 1000, 1500 -> median 200 (4th of 7)
    # scores 0.5, 0.5, 0.5, 1.0, 2.5, 5.0, 7.5
    views = [100, 100, 100, 200, 500, 1000, 1500]
    analysis = analyse([reel(f"r{i}", v) for i, v in enumerate(views)], followers_count=10)
    assert scores(analysis) == pytest.approx([0.5, 0.5, 0.5, 1.0, 2.5, 5.0, 7.5])
    stats = analysis.content_stats
    # >=2: 2.5, 5.0, 7.5; >=5: 5.0 (exactly 5 counts), 7.5; >=10: none
    assert (stats.reels_2x, stats.reels_5x, stats.reels_10x) == (3, 2, 0)
    assert stats.top_outlier_score == pytest.approx(7.5)


def test_ten_x_outliers() -> None:
    # sorted 100, 100, 100, 1000, 2500 -> median 100; scores 1, 1, 1, 10, 25
    views = [100, 1000, 100, 2500, 100]
    analysis = analyse([reel(f"r{i}", v) for i, v in enumerate(views)], followers_count=10)
    assert scores(analysis) == pytest.approx([1.0, 10.0, 1.0, 25.0, 1.0])
    stats = analysis.content_stats
    assert (stats.reels_2x, stats.reels_5x, stats.reels_10x) == (2, 2, 2)
    assert stats.top_outlier_score == pytest.approx(25.0)


def test_scores_are_rounded_to_four_decimals() -> None:
    # median of 300, 300, 100 is 300; 100/300 = 0.33333... -> 0.3333
    analysis = analyse([reel("a", 300), reel("b", 300), reel("c", 100)], followers_count=1)
    assert scores(analysis) == [1.0, 1.0, 0.3333]
    assert all(isinstance(s, float) for s in scores(analysis))


def test_no_reels() -> None:
    analysis = analyse([], followers_count=5000)
    assert analysis.reels == []
    stats = analysis.content_stats
    assert stats.total_reels == 0
    assert stats.median_views == 0.0
    assert stats.mean_views == 0.0
    assert stats.std_views == 0.0
    assert (stats.total_views, stats.total_likes, stats.total_comments) == (0, 0, 0)
    assert (stats.reels_2x, stats.reels_5x, stats.reels_10x) == (0, 0, 0)
    assert stats.top_outlier_score == 0.0
    metrics = analysis.engagement_metrics
    assert metrics.engagement_rate_by_followers == 0.0
    assert metrics.engagement_rate_by_views == 0.0
    assert (metrics.avg_likes, metrics.avg_comments, metrics.avg_views) == (0.0, 0.0, 0.0)


def test_all_zero_views() -> None:
    reels = [reel("a", 0, likes=5), reel("b", 0), reel("c", 0)]
    analysis = analyse(reels, followers_count=100)
    # no non-zero views -> no median -> every score 0, nothing counts as an outlier
    assert analysis.content_stats.median_views == 0.0
    assert scores(analysis) == [0.0, 0.0, 0.0]
    assert [r.engagement_rate for r in analysis.reels] == [0.0, 0.0, 0.0]
    stats = analysis.content_stats
    assert (stats.reels_2x, stats.reels_5x, stats.reels_10x) == (0, 0, 0)
    assert stats.top_outlier_score == 0.0
    assert stats.mean_views == 0.0
    assert stats.std_views == 0.0
    metrics = analysis.engagement_metrics
    assert metrics.engagement_rate_by_views == 0.0
    # 5 interactions / 3 reels / 100 followers * 100 = 1.6666... -> 1.6667
    assert metrics.engagement_rate_by_followers == pytest.approx(5 / 3, abs=1e-4)


def test_one_reel_and_no_followers() -> None:
    analysis = analyse([reel("solo", 500, likes=50, comments=10)], followers_count=0)
    stats = analysis.content_stats
    assert stats.median_views == 500.0
    assert scores(analysis) == [1.0]  # 500 / 500
    assert stats.std_views == 0.0  # population std of one value
    assert stats.mean_views == 500.0
    assert (stats.reels_2x, stats.reels_5x, stats.reels_10x) == (0, 0, 0)
    metrics = analysis.engagement_metrics
    assert metrics.engagement_rate_by_followers == 0.0  # no followers
    assert metrics.engagement_rate_by_views == pytest.approx(12.0)  # 60 / 500 * 100
    assert analysis.reels[0].engagement_rate == pytest.approx(12.0)


def test_duplicate_shortcodes_are_dropped_keeping_the_first() -> None:
    reels = [
        reel("a", 100, likes=1),
        reel("b", 300),
        reel("a", 10_000, likes=999),  # a later page repeating "a" with other numbers
        reel("c", 200),
    ]
    analysis = analyse(reels, followers_count=100)
    # analysed set: a=100, b=300, c=200 -> median 200 -> 0.5, 1.5, 1.0
    # (with the duplicate the median would be (200+300)/2 = 250)
    assert [r.shortcode for r in analysis.reels] == ["a", "b", "c"]
    assert analysis.content_stats.median_views == 200.0
    assert scores(analysis) == pytest.approx([0.5, 1.5, 1.0])
    assert analysis.content_stats.total_reels == 3
    assert analysis.content_stats.total_views == 600
    assert analysis.content_stats.total_likes == 1


def test_scored_reels_can_be_analysed_again() -> None:
    first = analyse([reel("a", 100), reel("b", 400), reel("c", 200)], followers_count=10)
    # dropping "b" (400) changes the median from 200 to (100 + 200) / 2 = 150
    again = analyse([r for r in first.reels if r.shortcode != "b"], followers_count=10)
    assert all(isinstance(r, ScoredReel) for r in again.reels)
    assert scores(again) == pytest.approx([100 / 150, 200 / 150], abs=1e-4)


def test_models_are_frozen() -> None:
    analysis = analyse([reel("a", 100)], followers_count=10)
    with pytest.raises(ValueError, match="frozen"):
        analysis.reels[0].outlier_score = 99.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        analysis.content_stats.total_reels = 7  # type: ignore[misc]
