"""Rich renderables for the API's answers. Pure: data in, renderable out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from viralspot_cli.client import (
    FeedPage,
    IntakeAnswer,
    Post,
    Profile,
    QueueStatus,
    SimilarProfile,
    StatusAnswer,
)

STATUS_STYLE = {
    "pending": "yellow",
    "delayed": "yellow",
    "processing": "cyan",
    "completed": "green",
    "failed": "red",
    "exists": "green",
    "not_found": "magenta",
    "retry scheduled": "yellow",
}
PRIORITIES = ("HIGH", "MEDIUM", "LOW")

# ------------------------------------------------------------------ formats


def count(value: float | None) -> str:
    """1234567 -> 1.2M: reach figures are read at a glance, not to the unit."""
    if value is None:
        return "-"
    number = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(number) >= limit:
            return f"{number / limit:.1f}{suffix}"
    return f"{number:.0f}" if number == int(number) else f"{number:.1f}"


def score(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def day(iso: str | None) -> str:
    return iso[:10] if iso else "-"


def parse_time(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(iso: str | None, now: datetime | None = None) -> str:
    """'12:04:05 UTC (in 1m 55s)': a retry time is useful relative to now."""
    moment = parse_time(iso)
    if moment is None:
        return iso or "-"
    now = now or datetime.now(UTC)
    seconds = int((moment - now).total_seconds())
    stamp = moment.astimezone(UTC).strftime("%H:%M:%S UTC")
    if seconds >= 0:
        return f"{stamp} (in {duration(seconds)})"
    return f"{stamp} ({duration(-seconds)} ago)"


def duration(seconds: float) -> str:
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def status_badge(status: str) -> Text:
    return Text(status, style=f"bold {STATUS_STYLE.get(status, 'white')}")


def _grid(rows: Iterable[tuple[str, RenderableType | None]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    for label, value in rows:
        if value is not None and value != "":
            grid.add_row(label, value)
    return grid


# ------------------------------------------------------------------ intake


def intake_answer(answer: IntakeAnswer) -> RenderableType:
    skip = answer.get("skip_reason")
    if answer.get("queued") and not skip:
        mark = Text("✓ ", style="bold green")
    elif skip == "already_in_queue":
        mark = Text("• ", style="bold yellow")
    else:
        mark = Text("✓ ", style="bold green")
    headline = Text.assemble(mark, Text(answer.get("message", ""), style="bold"))
    position = answer.get("queue_position")
    retry = answer.get("next_retry_at")
    rows: list[tuple[str, RenderableType | None]] = [
        ("Status", status_badge(answer.get("status", "?"))),
        ("Profile type", answer.get("profile_type")),
        ("Priority", answer.get("priority")),
        ("Queue position", f"#{position}" if position is not None else None),
        ("Estimated time", answer.get("estimated_time")),
        ("Next retry", when(retry) if retry else None),
        ("Request ID", answer.get("request_id")),
        ("Processed at", answer.get("created_at")),
        ("Check again in", answer.get("next_check_recommended")),
    ]
    parts: list[RenderableType] = [headline, _grid(rows)]
    if answer.get("fallback_mode"):
        parts.append(
            Text(
                "⚠ fallback mode: the job is stored but could not be sent to the queue yet; "
                "the sweeper sends it automatically within a few minutes.",
                style="bold yellow",
            )
        )
    return Group(*parts)


# ------------------------------------------------------------------ status


def is_failed_for_good(status: StatusAnswer) -> bool:
    return status.get("status") == "failed" and not status.get("next_retry_at")


def state_label(status: StatusAnswer) -> str:
    # A failed attempt with a retry ahead is still in progress, not a failure to alarm about.
    if status.get("status") == "failed" and status.get("next_retry_at"):
        return "retry scheduled"
    return status.get("status", "?")


def status_view(
    status: StatusAnswer,
    *,
    elapsed: float | None = None,
    next_check_in: float | None = None,
    problem: str | None = None,
) -> RenderableType:
    state = state_label(status)
    head = Text.assemble(
        (f"@{status.get('username', '?')}  ", "bold"), status_badge(state), "  ", status["message"]
    )
    position = status.get("queue_position")
    retry = status.get("next_retry_at")
    error = status.get("error_message")
    kind = status.get("error_kind")
    rows: list[tuple[str, RenderableType | None]] = [
        ("Priority", status.get("priority")),
        ("Queue position", f"#{position}" if position is not None else None),
        ("Estimated time", status.get("estimated_time")),
        ("Attempts", str(status["attempts"]) if "attempts" in status else None),
        ("Last attempt", status.get("last_attempt")),
        ("Last error", Text(f"{error} ({kind})" if kind else error, "red") if error else None),
        ("Waiting for", _waiting_for(status)),
        ("Earlier attempt", status.get("previous_error")),
        ("Analysis", status.get("analysis")),
        ("Next retry", when(retry) if retry else None),
        ("Completed at", status.get("completed_at")),
        ("Request ID", status.get("request_id")),
    ]
    footer: list[str] = []
    if elapsed is not None:
        footer.append(f"watching for {duration(elapsed)}")
    if next_check_in is not None:
        footer.append(f"next check in {next_check_in:.0f}s")
    parts: list[RenderableType] = [head, _grid(rows)]
    if problem:
        parts.append(Text(f"⚠ {problem} (will keep trying)", style="yellow"))
    if footer:
        parts.append(Text(" · ".join(footer) + " · Ctrl-C stops watching", style="dim"))
    return Group(*parts)


def _waiting_for(status: StatusAnswer) -> str | None:
    reason = status.get("delay_reason")
    return reason.removeprefix("waiting for ") if reason else None


def status_line(status: StatusAnswer) -> str:
    """One line per change, for logs and pipes where a live display cannot redraw."""
    parts = [state_label(status)]
    if "queue_position" in status:
        parts.append(f"queue position #{status['queue_position']}")
    if status.get("estimated_time") and status.get("status") in ("pending", "processing"):
        parts.append(f"estimated {status['estimated_time']}")
    if status.get("status") == "delayed":
        parts.append(f"waiting for {_waiting_for(status)}")
    if status.get("attempts"):
        parts.append(f"attempts {status['attempts']}")
    if status.get("error_message"):
        parts.append(f"last error: {status['error_message']}")
    if status.get("next_retry_at"):
        parts.append(f"next retry {when(status['next_retry_at'])}")
    return " · ".join(parts)


def failure_advice(status: StatusAnswer, username: str) -> str:
    kind = status.get("error_kind")
    attempts = status.get("attempts")
    if kind == "permanent":
        return (
            "The data provider reports this account as missing, private or invalid, so "
            "retrying will not help. Check the username "
            f"(https://www.instagram.com/{username}/) and request the right one."
        )
    if kind == "transient":
        tried = f"{attempts} attempts" if attempts else "every attempt"
        return (
            f"The data provider kept failing (rate limit, outage or timeout) for {tried}. "
            f"Request it again later: viralspot request {username}"
        )
    return (
        f"Request it again with `viralspot request {username}`; if it fails the same way, "
        "check the username."
    )


# ------------------------------------------------------------------ results


def profile_summary(profile: Profile) -> RenderableType:
    stats: Mapping[str, Any] = profile.get("content_stats") or {}
    engagement: Mapping[str, Any] = profile.get("engagement_metrics") or {}
    name = Text.assemble(("@" + profile["username"], "bold"))
    if profile.get("full_name"):
        name.append(f"  {profile['full_name']}")
    if profile.get("is_verified"):
        name.append("  ✓ verified", style="blue")
    if profile.get("category"):
        name.append(f"  · {profile['category']}", style="dim")
    viral = " / ".join(str(stats.get(key, "-")) for key in ("reels_2x", "reels_5x", "reels_10x"))
    rows: list[tuple[str, RenderableType | None]] = [
        ("Followers", count(profile.get("followers_count"))),
        ("Reels analysed", str(stats.get("total_reels", "-"))),
        ("Median views", count(stats.get("median_views"))),
        ("Mean views", count(stats.get("mean_views"))),
        (
            "Engagement rate",
            f"{percent(engagement.get('engagement_rate_by_followers'))} of followers · "
            f"{percent(engagement.get('engagement_rate_by_views'))} of views",
        ),
        ("Reels ≥2x / ≥5x / ≥10x", viral),
        ("Top outlier", score(stats.get("top_outlier_score"))),
        ("Last analysed", profile.get("last_scraped_at")),
    ]
    return Group(name, _grid(rows))


def reel_link(shortcode: str, url: str | None) -> Text:
    """The shortcode as a terminal hyperlink to the reel (OSC 8: a click opens it).
    A URL column would take half of an 80-column terminal and wrap."""
    if url and url.startswith(("https://", "http://")):
        return Text(shortcode, style=Style(link=url))
    return Text(shortcode)


def _score_cell(outlier: float | None) -> Text:
    return Text(score(outlier), style="bold green" if outlier is not None and outlier >= 5 else "")


def posts_table(posts: Sequence[Post], title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("Reel", no_wrap=True)
    table.add_column("Outlier", justify="right", no_wrap=True)
    table.add_column("Views", justify="right", no_wrap=True)
    table.add_column("Likes", justify="right", no_wrap=True)
    table.add_column("Comments", justify="right", no_wrap=True)
    table.add_column("Date", no_wrap=True)
    for rank, post in enumerate(posts, start=1):
        table.add_row(
            str(rank),
            reel_link(post["shortcode"], post.get("url")),
            _score_cell(post.get("outlier_score")),
            count(post.get("view_count")),
            count(post.get("like_count")),
            count(post.get("comment_count")),
            day(post.get("taken_at")),
        )
    return table


CRAWL_MARK = "°"


def ideas_view(page: FeedPage, min_score: float | None, start: int = 1) -> RenderableType:
    """The feed as a table that fits 80 columns: no vertical rules, and only the
    profile and category columns give way (ellipsis) when space runs short; the
    shortcode, score and figures are never cut."""
    floor = f" scoring ≥ {score(min_score)}" if min_score is not None else ""
    table = Table(
        title=f"Trending ideas: reels taken since {page['since']}{floor}",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("Reel", no_wrap=True)
    table.add_column("Profile", overflow="ellipsis", max_width=24)
    table.add_column("Category", overflow="ellipsis", style="dim", max_width=18)
    table.add_column("Outlier", justify="right", no_wrap=True)
    table.add_column("Views", justify="right", no_wrap=True)
    table.add_column("Date", no_wrap=True)
    crawled = False
    for rank, reel in enumerate(page["reels"], start=start):
        # The mark goes first: a long name is cut at its end.
        who = Text("@" + reel["username"])
        if reel.get("crawl_depth"):
            crawled = True
            who = Text.assemble((CRAWL_MARK, "yellow"), who)
        table.add_row(
            str(rank),
            reel_link(reel["shortcode"], reel.get("url")),
            who,
            reel.get("category") or "",
            _score_cell(reel.get("outlier_score")),
            count(reel.get("view_count")),
            day(reel.get("taken_at")),
        )
    parts: list[RenderableType] = [table]
    if crawled:
        parts.append(
            Text(
                f"{CRAWL_MARK} analysed at crawl depth only (a discovered profile, fewer reels)",
                style="dim",
            )
        )
    return Group(*parts)


def similar_table(username: str, similar: Sequence[SimilarProfile]) -> Table:
    table = Table(
        title=f"Profiles similar to @{username}", title_justify="left", header_style="bold"
    )
    table.add_column("Username", no_wrap=True)
    table.add_column("Name")
    table.add_column("Followers", justify="right")
    table.add_column("Verified", justify="center")
    table.add_column("Analysed", justify="center")
    for item in similar:
        table.add_row(
            item["username"],
            item.get("full_name", ""),
            count(item.get("followers_count")),
            "✓" if item.get("is_verified") else "",
            Text("yes", "green") if item.get("analysed") else Text("queued/seen", "dim"),
        )
    return table


# ------------------------------------------------------------------ operations


def queue_view(status: QueueStatus) -> RenderableType:
    jobs = Table(title="Live jobs", title_justify="left", header_style="bold")
    jobs.add_column("Status")
    priorities = list(PRIORITIES) + sorted(
        {p for by in status["jobs"].values() for p in by} - set(PRIORITIES)
    )
    for priority in priorities:
        jobs.add_column(priority, justify="right")
    jobs.add_column("Total", justify="right", style="bold")
    for state, by in status["jobs"].items():
        jobs.add_row(
            status_badge(state.lower()),
            *(str(by.get(p, 0)) for p in priorities),
            str(status["totals"].get(state, sum(by.values()))),
        )
    queues = Table(title="Queues", title_justify="left", header_style="bold")
    queues.add_column("Queue")
    queues.add_column("Visible", justify="right")
    queues.add_column("In flight", justify="right")
    queues.add_column("Delayed", justify="right")
    for name, depth in status["queues"].items():
        style = "red" if name.endswith("_dlq") and (depth["visible"] or depth["in_flight"]) else ""
        queues.add_row(
            Text(name, style=style),
            str(depth["visible"]),
            str(depth["in_flight"]),
            str(depth["delayed"]),
        )
    dead = status["dead_letters"]
    dead_text = Text(
        f"Dead letters: {dead}" + ("  (viralspot redrive moves them back)" if dead else ""),
        style="bold red" if dead else "green",
    )
    parts: list[RenderableType] = [jobs, queues, dead_text]
    if status.get("note"):
        parts.append(Text(status.get("note", ""), style="dim"))
    return Group(*parts)


def bulk_summary(counts: Mapping[str, int], problems: Sequence[tuple[str, str, str]]) -> Group:
    grid = _grid((key.replace("_", " "), str(value)) for key, value in counts.items())
    parts: list[RenderableType] = [Text("Bulk request summary", style="bold"), grid]
    if problems:
        table = Table(title="Not queued", title_justify="left", header_style="bold")
        table.add_column("Username", no_wrap=True)
        table.add_column("Why")
        table.add_column("Detail")
        for name, why, detail in problems:
            table.add_row(name, Text(why, "red" if why == "failed" else "yellow"), detail)
        parts.append(table)
    return Group(*parts)


def redrive_total(calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One answer for a chain of redrive calls: what each moved and re-opened, summed;
    the move tasks as the last call saw them."""
    moved: Counter[str] = Counter()
    reopened: Counter[str] = Counter()
    for call in calls:
        moved.update(call["moved"])
        reopened.update(
            {k: call["reopened"][k] for k in ("dispatched", "skipped", "failed", "examined")}
        )
    return {
        "moved": {queue: moved[queue] for queue in calls[-1]["moved"]},
        "tasks": calls[-1].get("tasks") or {},
        "total": sum(moved.values()),
        "reopened": dict(reopened),
        "calls": len(calls),
    }


def redrive(result: Mapping[str, Any]) -> str:
    """Dead letters moved back by hand, or handed to SQS move tasks; jobs re-opened."""
    tasks: Mapping[str, Any] = result.get("tasks") or {}
    moved: Mapping[str, int] = result["moved"]
    if not tasks:
        per_queue = ", ".join(f"{q} {n}" for q, n in moved.items()) or "no dead-letter queues"
        lines = [f"Moved {result['total']} message(s) back: {per_queue}"]
    else:
        lines = [f"SQS is moving about {result['total']} message(s) back:"]
        for queue, task in tasks.items():
            how = "move task started" if task["started"] else "a move task was already running"
            lines.append(f"  {queue}: ~{task['approximate_messages']} ({how})")
    reopened = result["reopened"]
    line = f"Re-opened {reopened['dispatched']} job(s) whose retries ran out"
    if reopened["failed"]:
        line += f"; {reopened['failed']} could not be sent (the sweeper sends those)"
    lines.append(line + ".")
    return "\n".join(lines)
