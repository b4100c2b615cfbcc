"""The web page in headless Chromium against the real local stack (sample provider):
request, progress, results, chart, errors. Screenshots go to the temp directory."""

from __future__ import annotations

import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from tests.e2e.conftest import RunningStack

if TYPE_CHECKING:
    from playwright.sync_api import Page

# One stack and one browser per module: with `--dist loadgroup` xdist keeps these
# tests on one worker instead of starting a stack in each.
pytestmark = [pytest.mark.server, pytest.mark.xdist_group("browser")]

RESULTS_TIMEOUT = 30_000  # ms: the sample worker finishes in about a second
SCREENSHOT = Path(tempfile.gettempdir()) / "viralspot-web-page.png"
SCREENSHOT_NARROW = Path(tempfile.gettempdir()) / "viralspot-web-page-narrow.png"
SCREENSHOT_IDEAS = Path(tempfile.gettempdir()) / "viralspot-web-page-ideas.png"


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def request(page: Page, username: str) -> None:
    page.fill(tid("username-input"), username)
    page.click(tid("request-button"))


def wait_for_results(page: Page) -> None:
    page.wait_for_selector(f"{tid('results')}:visible", timeout=RESULTS_TIMEOUT)


def test_request_shows_progress_then_results(page: Page, local_stack: RunningStack) -> None:
    page.goto(f"{local_stack.url}/")
    assert page.title().startswith("ViralSpot")
    request(page, "  @NatGeo  ")  # spaces trimmed by the page, @ and case by the API

    # The worker can finish between two polls, so read the page's transition log
    # rather than racing the live fields.
    waiting = page.locator(
        f'{tid("status-history")} li[data-status="pending"], '
        f'{tid("status-history")} li[data-status="processing"]'
    )
    waiting.first.wait_for(state="attached")
    positions = [
        int(p)
        for p in waiting.evaluate_all("els => els.map(e => e.dataset.queuePosition || '')")
        if p
    ]
    assert positions, "no queue position was shown while the job waited"
    assert min(positions) >= 1
    assert page.inner_text(tid("progress-name")) == "@natgeo"

    wait_for_results(page)
    assert page.get_attribute(tid("status"), "data-status") == "completed"
    assert page.locator(tid("error")).is_hidden()

    # Headline numbers, from the profile the API serves.
    _, body = local_stack.call("GET", "/api/profile/natgeo")
    stats = body["data"]["content_stats"]
    assert page.is_visible(tid("stats"))
    assert page.inner_text(f"{tid('stat-reels')} dd") == f"{stats['total_reels']:,}"
    for key in ("2x", "5x", "10x"):
        assert page.inner_text(f"{tid('stat-' + key)} dd") == f"{stats['reels_' + key]:,}"
    for key in ("followers", "median-views", "engagement"):
        assert page.inner_text(f"{tid('stat-' + key)} dd").strip()
    assert page.is_visible(tid("sample-badge")), "sample data must be labelled as such"

    # Reels ranked by outlier score, highest first, each linking to the reel.
    rows = page.locator(tid("reel-row"))
    assert rows.count() >= 10
    scores = [
        float(s)
        for s in page.locator(f"{tid('reel-row')} {tid('outlier-score')}").evaluate_all(
            "els => els.map(e => e.dataset.score)"
        )
    ]
    assert len(scores) == rows.count()
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == stats["top_outlier_score"]
    first_link = rows.first.locator("a").get_attribute("href") or ""
    assert first_link.startswith("https://www.instagram.com/reel/")

    # Thumbnails of the fake sample domain fail offline: a placeholder, never a broken image.
    page.wait_for_function(
        "() => document.querySelectorAll('img.thumb').length === 0",
        timeout=10_000,
    )
    assert page.locator(tid("thumb-placeholder")).count() == rows.count()

    # The chart: one point per reel, outliers marked, a legend.
    chart = page.locator(tid("views-chart"))
    assert chart.is_visible()
    points = chart.locator(tid("chart-point"))
    assert points.count() == stats["total_reels"]
    outliers = chart.locator('[data-level="2x"], [data-level="5x"]')
    assert outliers.count() == stats["reels_2x"] >= 1
    assert chart.locator('[data-level="5x"]').count() == stats["reels_5x"]
    assert page.is_visible(tid("chart-legend"))

    # Similar profiles, each with a button.
    similar = page.locator(tid("similar-item"))
    assert similar.count() == len(body["data"]["similar_usernames"])

    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOT_NARROW))
    page.set_viewport_size({"width": 1280, "height": 900})


def test_similar_profile_button_and_deep_link(page: Page, local_stack: RunningStack) -> None:
    page.goto(f"{local_stack.url}/")
    request(page, "natgeo")  # processed already when this worker ran the test above: faster
    wait_for_results(page)

    item = page.locator(tid("similar-item")).first
    other = item.get_attribute("data-username")
    assert other
    item.locator(tid("similar-request")).click()
    page.wait_for_function(
        "name => document.querySelector('[data-testid=profile-name]').textContent.includes('@' + name)"
        " && !document.querySelector('[data-testid=results]').hidden",
        arg=other,
        timeout=RESULTS_TIMEOUT,
    )
    assert page.input_value(tid("username-input")) == other
    assert page.url.endswith(f"#{other}")

    # The address is shareable: loading it shows that profile without a new request.
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.reload()
    wait_for_results(page)
    assert f"@{other}" in page.inner_text(tid("profile-name"))
    assert posts == []


def test_invalid_username_shows_the_api_detail(page: Page, local_stack: RunningStack) -> None:
    page.goto(f"{local_stack.url}/")
    page.click(tid("request-button"))
    error = page.locator(tid("error"))
    error.wait_for(state="visible")
    assert "Enter an Instagram username" in error.inner_text()

    status, body = local_stack.call("POST", "/api/profile/bad%20name!/request")
    assert status == 400
    request(page, "bad name!")
    page.wait_for_function(
        "detail => document.querySelector('[data-testid=error]').textContent.includes(detail)",
        arg=body["detail"],
    )
    assert error.get_attribute("role") == "alert"
    assert "Invalid request" in error.inner_text()
    assert page.locator(tid("results")).is_hidden()


def test_profile_that_does_not_exist_fails_plainly(page: Page, local_stack: RunningStack) -> None:
    page.goto(f"{local_stack.url}/")
    request(page, "sample_notfound")
    error = page.locator(tid("error"))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=error]').textContent.includes('failed')",
        timeout=RESULTS_TIMEOUT,
    )
    text = error.inner_text()
    assert "@sample_notfound" in text
    assert "does not exist" in text  # the provider's error, as the status route reports it
    assert "misspelled" in text  # advice for a permanent failure
    assert page.get_attribute(tid("status"), "data-status") == "failed"
    assert page.inner_text(tid("attempts")) == "1"
    assert page.locator(tid("results")).is_hidden()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("abort", "Could not reach the API"),
        (
            {"status": 503, "detail": "Storage is temporarily unavailable; nothing was queued."},
            "Service temporarily unavailable: Storage is temporarily unavailable",
        ),
        ({"status": 404, "detail": "No route for POST /x"}, "Not found: No route for POST /x"),
    ],
    ids=["network", "503", "404"],
)
def test_transport_failures_are_shown(
    page: Page, local_stack: RunningStack, answer: Any, expected: str
) -> None:
    def fail(route: Any) -> None:
        if answer == "abort":
            route.abort("connectionrefused")
        else:
            route.fulfill(
                status=answer["status"],
                content_type="application/json",
                json={"success": False, "detail": answer["detail"]},
            )

    page.route(re.compile(r".*/api/profile/[^/]+/request(\?.*)?$"), fail)
    page.goto(f"{local_stack.url}/")
    request(page, "natgeo")
    error = page.locator(tid("error"))
    error.wait_for(state="visible")
    assert expected in error.inner_text()
    assert page.is_enabled(tid("request-button")), "the user can try again"


def test_page_under_a_stage_path_calls_the_api_under_it(
    page: Page, local_stack: RunningStack
) -> None:
    """API Gateway serves the page at /v1 and /v1/; its API calls must stay under /v1/."""
    seen: list[str] = []

    def stage(route: Any) -> None:
        # Play API Gateway's stage prefix in front of the local stack.
        url = route.request.url
        seen.append(url)
        upstream = re.sub(r"^(https?://[^/]+)/v1/?", r"\1/", url)
        route.fulfill(response=route.fetch(url=upstream))

    page.route(re.compile(re.escape(local_stack.url) + r"/v1(/.*)?$"), stage)
    page.goto(f"{local_stack.url}/v1")  # no trailing slash: the harder case
    request(page, "natgeo")
    wait_for_results(page)
    api_calls = [u for u in seen if "/api/" in u]
    assert api_calls
    assert all(u.startswith(f"{local_stack.url}/v1/api/") for u in api_calls), api_calls
    # "exists" when an earlier test on this stack already processed it.
    assert page.get_attribute(tid("status"), "data-status") in ("completed", "exists")


# ------------------------------------------------------------------ trending ideas

IDEAS_PROFILES = ("ideas_alpha", "ideas_beta", "ideas_gamma")


def analysed(local_stack: RunningStack, *names: str) -> None:
    """Request each profile through the API, then wait until the stack's workers have
    finished everything, the similar profiles they crawl included (the feed is still)."""
    for name in names:
        status, _ = local_stack.call("POST", f"/api/profile/{name}/request")
        assert status == 200
    deadline = time.monotonic() + 2 * RESULTS_TIMEOUT / 1000
    while True:
        _, body = local_stack.call("GET", "/api/viral-ideas/queue-status")
        totals = body["data"]["totals"]
        if not totals.get("PENDING") and not totals.get("PROCESSING"):
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.3)
    for name in names:
        _, body = local_stack.call("GET", f"/api/profile/{name}/status")
        assert body["data"]["status"] == "completed", body


def idea_rows(page: Page) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = page.locator(tid("idea-row")).evaluate_all(
        """rows => rows.map(r => ({
            shortcode: r.dataset.shortcode, username: r.dataset.username,
            category: r.dataset.category, taken_at: r.dataset.takenAt,
            score: Number(r.querySelector('[data-testid=outlier-score]').dataset.score),
            reel: r.querySelector('[data-testid=idea-reel-link]').href,
            profile: r.querySelector('[data-testid=idea-profile-link]').getAttribute('href'),
            crawl: !!r.querySelector('[data-testid=crawl-badge]'),
        }))"""
    )
    return rows


def feed_api(local_stack: RunningStack, query: str) -> list[dict[str, Any]]:
    """Every reel of a listing, page after page, as the API serves it."""
    reels: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, body = local_stack.call("GET", f"/api/viral-ideas/reels?{query}{cursor}")
        assert status == 200, body
        reels += body["data"]["reels"]
        if not body["data"].get("next_cursor"):
            return reels
        cursor = f"&cursor={body['data']['next_cursor']}"


def show_ideas(page: Page) -> None:
    page.click(tid("ideas-submit"))
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=ideas-submit]').disabled"
        " && !document.querySelector('[data-testid=ideas-summary]').textContent.startsWith('Loading')"
    )


def test_trending_ideas_lists_filters_and_pages_the_feed(
    page: Page, local_stack: RunningStack
) -> None:
    analysed(local_stack, *IDEAS_PROFILES)
    page.goto(f"{local_stack.url}/")
    assert page.locator(tid("ideas-view")).is_hidden()
    page.click(tid("tab-ideas"))
    page.locator(tid("idea-row")).first.wait_for()
    assert page.locator(tid("analyse-view")).is_hidden()
    assert page.get_attribute(tid("tab-ideas"), "aria-current") == "page"

    # The first page, as the API ranks it: best first, all at or above 2x, several accounts.
    rows = idea_rows(page)
    api_first = feed_api(local_stack, "limit=100")[: len(rows)]
    assert [r["shortcode"] for r in rows] == [r["shortcode"] for r in api_first]
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= 2
    assert len({r["username"] for r in rows}) >= 2
    for row, reel in zip(rows, api_first, strict=True):
        assert row["reel"] == reel["url"]
        assert row["profile"] == f"#{reel['username']}"
    summary = page.inner_text(tid("ideas-summary"))
    assert f"{len(rows)} reel" in summary

    # Paging: "Load more" appends the next page; no reel twice, the API's order throughout.
    page.fill(tid("ideas-min-score"), "1")
    page.select_option(tid("ideas-limit"), "10")
    show_ideas(page)
    assert page.locator(tid("idea-row")).count() == 10
    for _ in range(2):
        before = page.locator(tid("idea-row")).count()
        page.click(tid("ideas-more"))
        page.wait_for_function(
            f"() => document.querySelectorAll('[data-testid=idea-row]').length > {before}"
        )
    paged = [r["shortcode"] for r in idea_rows(page)]
    assert len(paged) == len(set(paged)) == 30
    assert paged == [r["shortcode"] for r in feed_api(local_stack, "min_score=1&limit=100")][:30]
    assert page.url.endswith("#/trending?min_score=1&limit=10")

    # Category, in any case, and since.
    category = rows[0]["category"]
    page.fill(tid("ideas-category"), category.upper())
    since = (datetime.now(UTC).date() - timedelta(days=10)).isoformat()
    page.fill(tid("ideas-since"), since)
    page.select_option(tid("ideas-limit"), "100")
    show_ideas(page)
    filtered = idea_rows(page)
    assert filtered
    assert {r["category"] for r in filtered} == {category}
    assert all(r["taken_at"] >= since for r in filtered)
    expected = feed_api(
        local_stack, f"min_score=1&limit=100&since={since}&category={quote(category.upper())}"
    )
    assert [r["shortcode"] for r in filtered] == [r["shortcode"] for r in expected]
    # Profiles analysed only at crawl depth (the crawled similar ones) are marked.
    assert [r["crawl"] for r in filtered] == [r.get("crawl_depth", False) for r in expected]

    # The filters are in the address: reloading shows the same listing.
    page.reload()
    page.locator(tid("idea-row")).first.wait_for()
    assert [r["shortcode"] for r in idea_rows(page)] == [r["shortcode"] for r in filtered]
    assert page.input_value(tid("ideas-category")) == category.upper()
    page.screenshot(path=str(SCREENSHOT_IDEAS), full_page=True)

    # A reel's profile link shows that profile's analysis, without queueing it again.
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    name = filtered[0]["username"]
    page.locator(tid("idea-profile-link")).first.click()
    wait_for_results(page)
    assert page.locator(tid("ideas-view")).is_hidden()
    assert f"@{name}" in page.inner_text(tid("profile-name"))
    assert posts == []


def test_trending_ideas_shows_bad_filters_and_an_empty_feed(
    page: Page, local_stack: RunningStack
) -> None:
    page.goto(f"{local_stack.url}/#/trending?category=no%20such%20category")
    summary = page.locator(tid("ideas-summary"))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=ideas-summary]').textContent.startsWith('No reel')"
    )
    assert "no such category" in summary.inner_text()
    assert page.locator(tid("idea-row")).count() == 0
    assert page.locator(tid("ideas-more")).is_hidden()

    page.fill(tid("ideas-min-score"), "-1")
    page.click(tid("ideas-submit"))
    error = page.locator(tid("ideas-error"))
    error.wait_for(state="visible")
    assert "Invalid request" in error.inner_text()
    assert "min_score" in error.inner_text()


HOSTILE = {
    "html": '<img src=x onerror="window.__pwned=1">',
    "script": "<script>window.__pwned=2</script>",
    "link": "javascript:window.__pwned=3",
    "svg": "<svg onload=window.__pwned=4>",
}


def hostile_profile(body: dict[str, Any]) -> dict[str, Any]:
    data = body["data"]
    data.update(
        full_name=HOSTILE["html"],
        biography=HOSTILE["script"],
        external_url=HOSTILE["link"],
        category=HOSTILE["svg"],
        profile_pic_url=HOSTILE["link"],
    )
    return body


def hostile_posts(body: dict[str, Any]) -> dict[str, Any]:
    for post in body["data"]["posts"]:
        post.update(caption=HOSTILE["svg"] + HOSTILE["html"], url=HOSTILE["link"])
        post["thumbnail_url"] = HOSTILE["link"]
    return body


def hostile_similar(body: dict[str, Any]) -> dict[str, Any]:
    for item in body["data"]["similar"]:
        item.update(full_name=HOSTILE["script"], profile_pic_url=HOSTILE["link"])
    return body


def test_hostile_provider_data_is_shown_as_text_and_never_runs(
    page: Page, local_stack: RunningStack
) -> None:
    """Provider data is untrusted input (docs/security.md): whatever a provider
    returns in names, captions and URLs, the page shows it as text and links only
    to http(s). The real API answers are rewritten on their way to the page."""

    def rewrite(change: Any) -> Any:
        def handle(route: Any) -> None:
            response = route.fetch()
            route.fulfill(response=response, json=change(response.json()))

        return handle

    page.route(re.compile(r".*/api/profile/natgeo$"), rewrite(hostile_profile))
    page.route(re.compile(r".*/api/profile/natgeo/posts(\?.*)?$"), rewrite(hostile_posts))
    page.route(re.compile(r".*/api/profile/natgeo/similar$"), rewrite(hostile_similar))
    page.goto(f"{local_stack.url}/")
    request(page, "natgeo")
    wait_for_results(page)

    assert HOSTILE["html"] in page.inner_text(tid("profile-name"))
    assert page.locator(tid("reel-row")).count() >= 1
    assert page.evaluate("() => window.__pwned") is None
    # Nothing the data carried became markup...
    assert page.locator("img[onerror], svg[onload], #results script").count() == 0
    # ...and no javascript: URL became a link or an image.
    for selector, attribute in (("a", "href"), ("img", "src")):
        values = page.locator(selector).evaluate_all(
            f"els => els.map(e => e.getAttribute('{attribute}'))"
        )
        assert not [v for v in values if v and v.strip().lower().startswith("javascript:")]
