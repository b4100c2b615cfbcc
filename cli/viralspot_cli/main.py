"""`viralspot`: queue Instagram profiles for analysis and read the results.

It talks to the ViralSpot HTTP API only (`make run` locally, or a deployed stage),
so it needs nothing but the API's URL and, for admin commands, its key.

Exit codes:

    0    done / ok
    1    the job failed (for good), or the API failed (5xx, throttled, not the API)
    2    usage error or bad input (the API's 400 `detail` is printed)
    3    `request --watch` timed out; the job goes on
    4    not found (404, or a profile that was never requested)
    5    the API is unreachable (connection refused, DNS, timeout)
    6    forbidden (403): the API key is missing or wrong, or the URL is not a route
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, NoReturn, TextIO
from urllib.parse import urlsplit

import typer
from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from viralspot_cli import render
from viralspot_cli.client import (
    DEFAULT_API,
    MAX_BULK,
    ApiError,
    BadApiUrl,
    BulkItem,
    IntakeAnswer,
    StatusAnswer,
    Unreachable,
    ViralSpotClient,
    check_base_url,
)


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    TIMEOUT = 3
    NOT_FOUND = 4
    UNREACHABLE = 5
    FORBIDDEN = 6
    INTERRUPTED = 130


# Typer joins lines within a paragraph; one paragraph per code keeps them on their own lines.
EPILOG = "\n\n".join(
    [
        "[bold]Exit codes[/bold]",
        "0 done/ok · 1 the job failed, or the API failed (5xx) · 2 usage error or bad input (400)",
        "3 --watch timed out · 4 not found (404 / never requested) · 5 API unreachable",
        "6 forbidden (403: API key missing or wrong) · 130 interrupted (Ctrl-C)",
        f"API: --api or VIRALSPOT_API (default {DEFAULT_API}); a deployed stack's URL "
        "includes its stage, e.g. https://<id>.execute-api.<region>.amazonaws.com/v1.",
    ]
)

DEFAULT_POLL = 2.0  # when the API recommends no interval
FIRST_POLL = 1.0  # polling starts fast and backs off to the recommended interval
REFRESH = 0.25  # how often the live display's countdown is redrawn
TOP_REELS = 10

app = typer.Typer(
    name="viralspot",
    help="Queue Instagram profiles for viral-content analysis and read the results.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    # Locals in a traceback would include the API key.
    pretty_exceptions_show_locals=False,
)


@dataclass
class State:
    api: str
    api_key: str | None
    json: bool
    timeout: float
    out: Console
    err: Console

    def client(self) -> ViralSpotClient:
        return ViralSpotClient(self.api, api_key=self.api_key, timeout=self.timeout)

    def emit_json(self, data: Any) -> None:
        # Plain print, not rich: scripts parse this, so no markup or wrapping.
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def fail(self, code: ExitCode, message: str) -> NoReturn:
        self.err.print(f"[bold red]Error:[/bold red] {escape(message)}")
        raise typer.Exit(code)


@app.callback()
def options(
    ctx: typer.Context,
    api: Annotated[
        str,
        typer.Option(
            "--api",
            envvar="VIRALSPOT_API",
            help="Base URL of the API (with the stage for a deployed stack).",
        ),
    ] = DEFAULT_API,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="VIRALSPOT_API_KEY",
            help="Admin API key, sent as x-api-key (`make run` prints it).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the API's raw `data` as JSON (for scripts)."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", "--http-timeout", min=0.1, help="Seconds per HTTP call."),
    ] = 10.0,
) -> None:
    # Soft wrap and no highlighting: messages stay one line each, to grep or paste.
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        base_url = check_base_url(api)
    except BadApiUrl as exc:
        err.print(f"[bold red]Error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(ExitCode.USAGE) from None
    ctx.obj = State(
        api=base_url, api_key=api_key, json=as_json, timeout=timeout, out=Console(), err=err
    )


def _state(ctx: typer.Context) -> State:
    state = ctx.obj
    assert isinstance(state, State)
    return state


def _is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1", "0.0.0.0")  # noqa: S104  # nosec B104 - a comparison, not a bind


@contextmanager
def calling(state: State) -> Iterator[ViralSpotClient]:
    """A client, and every way a call can fail turned into a message and an exit code."""
    client = state.client()
    try:
        yield client
    except Unreachable as exc:
        hint = "is `make run` running?" if _is_local(exc.base_url) else "check the URL and network."
        state.fail(
            ExitCode.UNREACHABLE,
            f"Cannot reach the ViralSpot API at {exc.base_url} ({exc.reason}) — {hint} "
            "Set --api or VIRALSPOT_API.",
        )
    except ApiError as exc:
        code, message = _explain(state, exc)
        state.fail(code, message)
    except BadApiUrl as exc:
        state.fail(ExitCode.USAGE, str(exc))
    except KeyboardInterrupt:
        state.err.print("Interrupted.")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        client.close()


def _explain(state: State, exc: ApiError) -> tuple[ExitCode, str]:
    where = f"{exc.method} {exc.path}"
    if exc.status in (400, 422):
        return ExitCode.USAGE, exc.detail
    if exc.status == 404:
        return ExitCode.NOT_FOUND, exc.detail
    if exc.status == 403:
        if exc.gateway and "Authentication Token" in exc.detail:
            # API Gateway's answer for a path it has no route for.
            return ExitCode.FORBIDDEN, (
                f"The API at {state.api} has no route {where} (403 {exc.detail}). "
                "Check --api: the local stack's URL has no path (http://127.0.0.1:3000); "
                "a deployed stack's ends with its stage (https://…amazonaws.com/v1)."
            )
        if not state.api_key:
            return ExitCode.FORBIDDEN, (
                f"{where} needs the admin API key (403 {exc.detail}): pass --api-key or set "
                "VIRALSPOT_API_KEY (`make run` prints it; for a deployed stack: "
                "aws apigateway get-api-key --include-value --api-key <AdminApiKeyId>)."
            )
        return ExitCode.FORBIDDEN, (
            f"The API refused the API key for {where} (403 {exc.detail}): "
            "check --api-key / VIRALSPOT_API_KEY."
        )
    if exc.status == 429:
        return ExitCode.FAILED, f"The API is throttling requests (429 {exc.detail}); retry shortly."
    retry = f" Retry after {exc.retry_after} s." if exc.retry_after else ""
    detail = exc.detail.rstrip(".")
    return ExitCode.FAILED, f"The API failed on {where} (HTTP {exc.status}): {detail}.{retry}"


def _require_name(state: State, raw: str) -> None:
    # The API validates names; an empty one would only reach a non-route.
    if not raw.strip():
        state.fail(ExitCode.USAGE, "A username is required")


# ------------------------------------------------------------------ request / watch

_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?)?\s*$", re.I)


def parse_interval(text: str | None) -> float | None:
    """Seconds in the API's `next_check_recommended` ("30 seconds", "1 minute")."""
    found = _INTERVAL.match(text or "")
    if not found:
        return None
    value = float(found.group(1))
    unit = (found.group(2) or "s").lower()
    return value * 60 if unit.startswith("m") else value


@app.command()
def request(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Instagram username (a leading @ is fine).")],
    source: Annotated[
        str | None,
        typer.Option(
            help="Who asks, which sets the priority: frontend/admin → HIGH, api/bulk → "
            "MEDIUM, crawler → LOW. The API's default is frontend.",
            show_default=False,
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the job until it ends, then show results.")
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(
            min=0.05,
            help="Seconds between status checks (default: start at 1 s, back off to the "
            "API's recommended interval).",
            show_default=False,
        ),
    ] = None,
    watch_timeout: Annotated[
        float,
        typer.Option("--timeout", "--watch-timeout", min=0.0, help="Stop watching after this."),
    ] = 600.0,
) -> None:
    """Queue a profile for analysis (POST /api/profile/{name}/request)."""
    state = _state(ctx)
    _require_name(state, name)
    with calling(state) as client:
        answer = client.request_profile(name, source)
        if not watch:
            if state.json:
                state.emit_json(answer)
            else:
                state.out.print(render.intake_answer(answer))
            return
        if not state.json:
            state.out.print(render.intake_answer(answer))
        code = _watch(state, client, name, answer, interval=interval, limit=watch_timeout)
    raise typer.Exit(code)


class _Display:
    """A live redraw on a terminal; otherwise one line per change (logs, pipes)."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._live: Live | None = None
        self._last_line: str | None = None
        self._started = time.monotonic()

    def __enter__(self) -> _Display:
        if not self._state.json and self._state.out.is_terminal:
            self._live = Live(console=self._state.out, transient=True, auto_refresh=False)
            self._live.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._live is not None:
            self._live.stop()

    def show(
        self, status: StatusAnswer | None, *, next_check_in: float | None, problem: str | None
    ) -> None:
        if self._state.json:
            return
        elapsed = time.monotonic() - self._started
        if self._live is not None:
            view: RenderableType = (
                render.status_view(
                    status, elapsed=elapsed, next_check_in=next_check_in, problem=problem
                )
                if status is not None
                else f"[yellow]⚠ {escape(problem or 'waiting for the API')}[/yellow]"
            )
            self._live.update(view, refresh=True)
            return
        parts = [render.status_line(status)] if status is not None else []
        if problem:
            parts.append(f"⚠ {problem}")
        line = " · ".join(parts)
        if line != self._last_line:
            self._last_line = line
            self._state.out.print(
                f"[dim]{render.duration(elapsed):>7}[/dim]  {escape(line)}", highlight=False
            )


@dataclass
class _Watched:
    status: StatusAnswer | None = None
    problem: str | None = None  # why the last check gave no answer

    @property
    def done(self) -> bool:
        return self.status is not None and (
            self.status.get("completed", False) or render.is_failed_for_good(self.status)
        )


def _poll(
    state: State,
    client: ViralSpotClient,
    name: str,
    *,
    first_delay: float,
    cap: float,
    backoff: bool,
    deadline: float,
) -> _Watched:
    """Check the status until the job ends or the deadline passes.

    A check that fails for a passing reason (unreachable, 5xx, throttled) is shown
    and retried: the job is not affected by the watcher losing sight of it."""
    watched = _Watched()
    delay = first_delay
    with _Display(state) as display:
        while True:
            try:
                watched.status = client.status(name)
                watched.problem = None
            except Unreachable as exc:
                watched.problem = f"API unreachable: {exc.reason}"
            except ApiError as exc:
                if not exc.transient:
                    raise
                watched.problem = f"status check failed: HTTP {exc.status} {exc.detail}"
            if watched.status is not None and watched.status.get("status") == "not_found":
                state.fail(ExitCode.NOT_FOUND, watched.status.get("message", "not found"))
            now = time.monotonic()
            if watched.done or now >= deadline:
                return watched
            wake = min(now + delay, deadline)
            while (left := wake - time.monotonic()) > 0:
                display.show(watched.status, next_check_in=left, problem=watched.problem)
                time.sleep(min(REFRESH, left))
            if backoff:
                delay = min(delay * 2, cap)


def _watch(
    state: State,
    client: ViralSpotClient,
    name: str,
    answer: IntakeAnswer,
    *,
    interval: float | None,
    limit: float,
) -> ExitCode:
    if answer.get("status") == "exists":
        # Already processed: nothing to wait for.
        return _results(state, client, name, {"request": answer})
    recommended = parse_interval(answer.get("next_check_recommended")) or DEFAULT_POLL
    try:
        watched = _poll(
            state,
            client,
            name,
            first_delay=interval if interval is not None else min(FIRST_POLL, recommended),
            cap=interval if interval is not None else recommended,
            backoff=interval is None,
            deadline=time.monotonic() + limit,
        )
    except KeyboardInterrupt:
        state.err.print(
            f"Stopped watching. The job goes on: [bold]viralspot status {escape(name)}[/bold]"
        )
        return ExitCode.INTERRUPTED
    status = watched.status
    report: dict[str, Any] = {"request": answer, "status": status}
    if status is not None and status.get("completed"):
        return _results(state, client, name, report)
    if status is not None and render.is_failed_for_good(status):
        return _failed(state, name, status, report)
    if state.json:
        state.emit_json(report)
    else:
        if status is not None:
            state.out.print(render.status_view(status))
        problem = f" ({escape(watched.problem)})" if watched.problem else ""
        state.err.print(
            f"[yellow]Still not done after {render.duration(limit)} of watching{problem}. "
            f"The job goes on: check it with [bold]viralspot status {escape(name)}[/bold][/yellow]"
        )
    return ExitCode.TIMEOUT


def _results(state: State, client: ViralSpotClient, name: str, report: dict[str, Any]) -> ExitCode:
    profile = client.profile(name)
    page = client.posts(name, sort="popular", limit=TOP_REELS)
    if state.json:
        state.emit_json({**report, "profile": profile, "top_posts": page["posts"]})
        return ExitCode.OK
    state.out.print(f"\n[bold green]✓ @{escape(profile['username'])} is analysed.[/bold green]")
    state.out.print(render.profile_summary(profile))
    state.out.print()
    state.out.print(
        render.posts_table(page["posts"], f"Top {len(page['posts'])} reels by outlier score")
    )
    return ExitCode.OK


def _failed(state: State, name: str, status: StatusAnswer, report: dict[str, Any]) -> ExitCode:
    if state.json:
        state.emit_json(report)
    else:
        state.out.print(render.status_view(status))
    error = status.get("error_message") or "unknown error"
    state.err.print(f"[bold red]✗ Processing @{escape(name)} failed:[/bold red] {escape(error)}")
    state.err.print(f"What to do: {escape(render.failure_advice(status, name))}")
    return ExitCode.FAILED


# ------------------------------------------------------------------ reads


@app.command()
def status(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Instagram username.")],
) -> None:
    """Progress of a profile's job (GET /api/profile/{name}/status)."""
    state = _state(ctx)
    _require_name(state, name)
    with calling(state) as client:
        answer = client.status(name)
    if state.json:
        state.emit_json(answer)
    else:
        state.out.print(render.status_view(answer))
    if answer.get("status") == "not_found":
        if not state.json:
            state.err.print(f"Queue it with: viralspot request {escape(name)}")
        raise typer.Exit(ExitCode.NOT_FOUND)
    if render.is_failed_for_good(answer):
        if not state.json:
            state.err.print(f"What to do: {escape(render.failure_advice(answer, name))}")
        raise typer.Exit(ExitCode.FAILED)


class PostSort(StrEnum):
    POPULAR = "popular"
    RECENT = "recent"
    OLDEST = "oldest"


@app.command()
def profile(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Instagram username.")],
    sort: Annotated[
        PostSort, typer.Option(help="popular = outlier score, then views.")
    ] = PostSort.POPULAR,
    limit: Annotated[int, typer.Option(min=1, help="How many reels to list.")] = 10,
) -> None:
    """A processed profile's headline stats and reels."""
    state = _state(ctx)
    _require_name(state, name)
    with calling(state) as client:
        found = client.profile(name)
        page = client.posts(name, sort=sort.value, limit=limit)
    if state.json:
        state.emit_json({"profile": found, "posts": page})
        return
    state.out.print(render.profile_summary(found))
    state.out.print()
    title = f"{len(page['posts'])} reels, {sort.value}"
    state.out.print(render.posts_table(page["posts"], title))


@app.command()
def similar(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Instagram username.")],
) -> None:
    """Profiles similar to a processed one."""
    state = _state(ctx)
    _require_name(state, name)
    with calling(state) as client:
        found = client.similar(name)
    if state.json:
        state.emit_json(found)
    elif not found["similar"]:
        state.out.print(f"No similar profiles are known for @{escape(found['username'])}.")
    else:
        state.out.print(render.similar_table(found["username"], found["similar"]))


@app.command()
def ideas(
    ctx: typer.Context,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score",
            min=0,
            help="Lowest outlier score listed (the API's default is 2).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="Reels taken on or after this day (UTC; default: the last 30 days).",
            show_default=False,
        ),
    ] = None,
    category: Annotated[
        str | None,
        typer.Option(help="Only profiles of this category (any case).", show_default=False),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, max=100, help="Reels per page (default 20).", show_default=False),
    ] = None,
    cursor: Annotated[
        str | None,
        typer.Option(help="next_cursor of a previous page, with the same filters."),
    ] = None,
) -> None:
    """The viral-ideas feed: reels across every analysed profile that beat their own
    account's median the most (GET /api/viral-ideas/reels)."""
    state = _state(ctx)
    day = since.date().isoformat() if since else None
    with calling(state) as client:
        page = client.viral_reels(
            min_score=min_score, since=day, category=category, limit=limit, cursor=cursor
        )
    if state.json:
        state.emit_json(page)
        return
    if not page["reels"]:
        floor = f"{min_score if min_score is not None else 2:g}x"
        state.out.print(
            f"No reel taken since {page['since']} scores ≥ {floor}"
            + (f" in category {escape(category)!r}" if category else "")
            + ". Analyse more profiles (viralspot request NAME), lower --min-score or "
            "move --since back."
        )
    else:
        state.out.print(render.ideas_view(page, min_score if min_score is not None else 2.0))
    if page.get("next_cursor"):
        again = ["viralspot", "ideas"]
        for flag, given in (
            ("--min-score", min_score),
            ("--since", day),
            ("--category", category),
            ("--limit", limit),
        ):
            if given is not None:
                again += [flag, str(given)]
        again += ["--cursor", page["next_cursor"]]
        state.out.print(f"[dim]More: {escape(shlex.join(again))}[/dim]", soft_wrap=True)


@app.command()
def queue(ctx: typer.Context) -> None:
    """Live jobs by status and priority, queue depths and dead letters."""
    state = _state(ctx)
    with calling(state) as client:
        found = client.queue_status()
    if state.json:
        state.emit_json(found)
    else:
        state.out.print(render.queue_view(found))


# ------------------------------------------------------------------ bulk


def read_usernames(lines: TextIO) -> list[str]:
    """One name per line; blank lines and `#` comments are skipped ('#' is never in a name)."""
    names = []
    for line in lines:
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


# The API's code for a name that breaks the username rule (operations.BulkError);
# every other code is a service reason: nothing was queued, and a retry may do.
_INPUT_ERRORS = frozenset({"invalid_username"})


def _outcome(item: BulkItem) -> str:
    if not item["success"]:
        return "invalid" if item.get("code") in _INPUT_ERRORS else "failed"
    data = item.get("data")
    skip = data.get("skip_reason") if data else None
    if skip == "already_in_queue":
        return "already_queued"
    if skip in ("already_processed", "recently_completed"):
        return "already_processed"
    return "queued_new"


@app.command()
def bulk(
    ctx: typer.Context,
    file: Annotated[
        typer.FileText, typer.Argument(help="One username per line; '-' reads standard input.")
    ],
    source: Annotated[str, typer.Option(help="Who asks; bulk → MEDIUM priority.")] = "bulk",
) -> None:
    """Queue many profiles at once, in calls of up to 50.

    Exits 1 if any name could not be queued for a service reason, else 2 if any
    line was not a valid username (the others are queued either way)."""
    state = _state(ctx)
    names = read_usernames(file)
    if not names:
        state.fail(ExitCode.USAGE, f"{file.name} lists no usernames")
    items: list[BulkItem] = []
    with (
        calling(state) as client,
        Progress(
            TextColumn("Requesting"),
            BarColumn(),
            MofNCompleteColumn(),
            console=state.err,
            disable=state.json,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("bulk", total=len(names))
        for start in range(0, len(names), MAX_BULK):
            chunk = names[start : start + MAX_BULK]
            try:
                items.extend(client.bulk_request(chunk, source)["results"])
            except ApiError as exc:
                if not exc.transient:
                    raise
                # One failed call fails its names, not the ones already sent or still to send.
                error = f"HTTP {exc.status}: {exc.detail}"
                items.extend(
                    {"username": n, "success": False, "error": error, "code": "call_failed"}
                    for n in chunk
                )
            except (Unreachable, KeyboardInterrupt):
                state.err.print(f"{len(items)} of {len(names)} usernames were sent before this:")
                raise
            progress.advance(task, len(chunk))
    counts = dict.fromkeys(
        ("queued_new", "already_queued", "already_processed", "invalid", "failed"), 0
    )
    problems: list[tuple[str, str, str]] = []
    for item in items:
        outcome = _outcome(item)
        counts[outcome] += 1
        if outcome in ("invalid", "failed"):
            problems.append((item["username"], outcome, item.get("error", "")))
    if state.json:
        state.emit_json({"results": items, "summary": counts})
    else:
        state.out.print(render.bulk_summary(counts, problems))
    if counts["failed"]:
        raise typer.Exit(ExitCode.FAILED)
    if counts["invalid"]:
        raise typer.Exit(ExitCode.USAGE)


# ------------------------------------------------------------------ admin


def _admin(
    state: State, call: Callable[[ViralSpotClient], Any], show: Callable[[Any], RenderableType]
) -> None:
    with calling(state) as client:
        result = call(client)
    if state.json:
        state.emit_json(result)
    else:
        state.out.print(show(result))


@app.command("process-pending")
def process_pending(
    ctx: typer.Context,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=100_000,
            help="Jobs per API call (default: as many as one call's time allows).",
            show_default=False,
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        typer.Option(help="Resume an interrupted run: the cursor it printed.", show_default=False),
    ] = None,
) -> None:
    """Re-dispatch every PENDING job, HIGH first (admin: needs the API key).

    The API does as much as one call's time allows and answers a cursor; this follows
    it until every job is done."""
    state = _state(ctx)
    totals = dict.fromkeys(("dispatched", "skipped", "failed", "examined"), 0)
    calls = 0
    with calling(state) as client:
        try:
            while True:
                answer = client.process_pending(cursor=cursor, limit=limit)
                calls += 1
                totals["dispatched"] += answer["dispatched"]
                totals["skipped"] += answer["skipped"]
                totals["failed"] += answer["failed"]
                totals["examined"] += answer["examined"]
                cursor = answer.get("next_cursor")
                if not (answer["has_more"] and cursor):
                    break
                if not state.json:
                    state.err.print(
                        f"  … {totals['dispatched']} re-dispatched so far ({calls} call(s))"
                    )
        except KeyboardInterrupt:
            if cursor:
                state.err.print(f"To resume: viralspot process-pending --cursor {cursor}")
            raise
    if state.json:
        state.emit_json({**totals, "calls": calls})
    else:
        state.out.print(
            f"Re-dispatched {totals['dispatched']} pending job(s) in {calls} call(s); "
            f"{totals['skipped']} changed meanwhile, {totals['failed']} could not be sent "
            "(the sweeper sends those)."
        )


@app.command()
def redrive(
    ctx: typer.Context,
    max_messages: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1000,
            help="Per queue where messages are moved by hand (the API's default is 100); "
            "an SQS move task moves them all.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Move dead letters back and re-open the jobs whose retries ran out (admin: needs
    the API key). Run it once the cause of the failures is fixed.

    The API re-opens as many jobs as one call's time allows and answers a cursor; this
    follows it until every such job is queued again."""
    state = _state(ctx)
    calls: list[Mapping[str, Any]] = []
    cursor: str | None = None
    with calling(state) as client:
        while True:
            answer = client.redrive(max_messages, cursor)
            calls.append(answer)
            cursor = answer["reopened"].get("next_cursor")
            if not (answer["reopened"]["has_more"] and cursor):
                break
            if not state.json:
                reopened = sum(call["reopened"]["dispatched"] for call in calls)
                state.err.print(f"  … {reopened} job(s) re-opened so far ({len(calls)} call(s))")
    result = render.redrive_total(calls)
    if state.json:
        state.emit_json(result)
    else:
        state.out.print(render.redrive(result))


def main() -> None:
    """Console-script entry point."""
    app()
