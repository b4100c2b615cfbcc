"""The `viralspot` CLI against the real local stack (devstack.server.DevStack on an
OS-chosen port over the session's emulator), driven through typer's CliRunner.

Most tests run without workers, so jobs stay where the API put them; the watch
tests run a worker on the high queue in a thread, as `make run` does."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch as emf
from click.testing import Result
from typer.testing import CliRunner

from devstack.emulator import Emulator
from devstack.harness import local_stack
from devstack.server import DevStack
from devstack.workers import sqs_sources
from tests.support import drain
from viralspot.operations import MAX_BULK as SERVER_MAX_BULK
from viralspot_cli import client as client_module
from viralspot_cli import main as cli
from viralspot_cli.client import ApiError, ViralSpotClient

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local(emulator: Emulator, template: dict[str, Any]) -> Iterator[DevStack]:
    """One stack for the module (tests use their own usernames): building the
    tables per test would cost more than the tests themselves."""
    with (
        pytest.MonkeyPatch.context() as env,
        local_stack(emulator, template=template, env=env) as up,
    ):
        # The handlers run in this process and print their metrics (EMF) to stdout, as
        # in Lambda; the runner captures stdout process-wide, so send them elsewhere.
        env.setattr(emf, "print", _to_process_stdout, raising=False)
        running = DevStack(up.stack, emulator.client("sqs"), port=0, workers=False, schedules=False)
        with running:
            yield running


def _to_process_stdout(*args: Any, **kwargs: Any) -> None:
    print(*args, **{**kwargs, "file": sys.__stdout__})


@pytest.fixture
def worker(local: DevStack, emulator: Emulator) -> Iterator[None]:
    """The high queue's event source mapping: what turns a request into a result."""
    stack = local.stack
    source = next(s for s in sqs_sources(stack) if s.queue_url == stack.refs["HighQueue"])
    sqs = emulator.client("sqs")
    # Other tests' requests wait there; only this test's job should be worked on.
    # (Drained rather than purged: a queue can be purged once a minute.)
    drain(sqs, source.queue_url)
    function = local.function(source.function_id)
    assert function is not None
    poller = source.poller(function, sqs=sqs, wait_seconds=1)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=5)


def run(local: DevStack | str, *args: str, key: str | None = None, **env: str) -> Result:
    api = local if isinstance(local, str) else local.api_url
    options = ["--api", api] + (["--api-key", key] if key else [])
    # Unset so a developer's own settings cannot leak in; wide so tables do not fold.
    environment: dict[str, str | None] = {
        "VIRALSPOT_API": None,
        "VIRALSPOT_API_KEY": None,
        "FORCE_COLOR": None,
        "NO_COLOR": "1",
        "COLUMNS": "200",
        **env,
    }
    return CliRunner().invoke(cli.app, [*options, *args], env=environment)


def api_data(local: DevStack, path: str) -> Any:
    answer = httpx.get(local.api_url + path, timeout=10)
    return answer.json()["data"]


# ------------------------------------------------------------------ request


def pending_high(local: DevStack) -> int:
    result = run(local, "--json", "queue")
    assert result.exit_code == 0, result.output
    count: int = json.loads(result.stdout)["jobs"]["PENDING"]["HIGH"]
    return count


def test_request_queues_then_reports_already_in_queue(local: DevStack) -> None:
    before = pending_high(local)
    first = run(local, "--json", "request", "req_first")
    assert first.exit_code == 0, first.output
    queued = json.loads(first.stdout)  # --json prints the API's data, nothing else
    assert queued["queued"] is True
    assert queued["profile_type"] == "new"
    assert queued["priority"] == "HIGH"
    assert queued["queue_position"] == before + 1
    assert "skip_reason" not in queued

    again = run(local, "request", "@Req_First")
    assert again.exit_code == 0, again.output
    assert "already in queue" in again.stdout
    assert queued["request_id"] in again.stdout  # the same job, not a second one
    assert f"#{before + 1}" in again.stdout

    status = run(local, "--json", "status", "req_first")
    assert status.exit_code == 0
    assert json.loads(status.stdout)["status"] == "pending"
    assert pending_high(local) == before + 1

    shown = run(local, "queue")
    assert shown.exit_code == 0
    assert re.search(rf"pending\s+│\s+{before + 1}\s+│", shown.stdout), shown.stdout


def test_source_sets_priority(local: DevStack) -> None:
    result = run(local, "--json", "request", "req_crawled", "--source", "crawler")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["priority"] == "LOW"


def test_bad_input_exits_2_with_the_api_detail(local: DevStack) -> None:
    result = run(local, "request", "no spaces")
    assert result.exit_code == 2
    assert "Username contains invalid characters" in result.stderr
    assert result.stdout == ""

    bad_source = run(local, "request", "req_robot", "--source", "robot")
    assert bad_source.exit_code == 2
    assert "source" in bad_source.stderr


def test_unknown_profile_exits_4(local: DevStack) -> None:
    # A trailing slash on the base URL is fine.
    status = run(local.api_url + "/", "status", "never_requested")
    assert status.exit_code == 4
    assert "not_found" in status.stdout
    assert "viralspot request never_requested" in status.stderr

    profile = run(local, "profile", "never_requested")
    assert profile.exit_code == 4
    assert "has not been processed yet" in profile.stderr


def test_an_empty_name_is_a_usage_error(local: DevStack) -> None:
    result = run(local, "request", " ")
    assert result.exit_code == 2
    assert "A username is required" in result.stderr


def test_a_failing_api_exits_1(local: DevStack, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(self: ViralSpotClient, username: str) -> Any:
        raise ApiError(503, "Storage is unavailable.", method="GET", path="/s", retry_after="5")

    monkeypatch.setattr(ViralSpotClient, "status", unavailable)
    result = run(local, "status", "natgeo")
    assert result.exit_code == 1
    assert "(HTTP 503): Storage is unavailable. Retry after 5 s." in result.stderr


def test_unreachable_api_exits_5_with_a_clear_message() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Closed now: nothing listens on that port.
    api = f"http://127.0.0.1:{port}"
    result = run(api, "status", "natgeo")
    assert result.exit_code == 5
    assert f"Cannot reach the ViralSpot API at {api}" in result.stderr
    assert "make run" in result.stderr
    assert "VIRALSPOT_API" in result.stderr


def test_a_url_that_is_not_a_route_is_explained(local: DevStack) -> None:
    # A local URL given a stage path: API Gateway's 403 "Missing Authentication Token".
    result = run(local.api_url + "/v1", "status", "natgeo")
    assert result.exit_code == 6
    assert "has no route GET /api/profile/natgeo/status" in result.stderr


def test_not_an_http_url_is_a_usage_error() -> None:
    result = run("ftp://example.com", "status", "natgeo")
    assert result.exit_code == 2
    assert "not an http(s) URL" in result.stderr


# ------------------------------------------------------------------ admin


def test_admin_commands_need_the_api_key(local: DevStack) -> None:
    assert local.api_key_required
    missing = run(local, "process-pending")
    assert missing.exit_code == 6
    assert "needs the admin API key" in missing.stderr

    wrong = run(local, "process-pending", key="not-the-key")
    assert wrong.exit_code == 6
    assert "refused the API key" in wrong.stderr

    assert run(local, "request", "admin_pending").exit_code == 0
    ok = run(local, "--json", "process-pending", key=local.api_key)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["dispatched"] >= 1  # other tests' jobs may be pending too

    # It follows the API's cursor until every pending job is done: one job per call here.
    for name in ("admin_a", "admin_b"):
        assert run(local, "request", name).exit_code == 0
    chained = run(local, "--json", "process-pending", "--limit", "1", key=local.api_key)
    assert chained.exit_code == 0, chained.output
    summary = json.loads(chained.stdout)
    assert summary["dispatched"] >= 3
    assert summary["calls"] >= summary["examined"] >= 3
    human = run(local, "process-pending", "--limit", "2", key=local.api_key)
    assert human.exit_code == 0, human.output
    assert "Re-dispatched" in human.stdout
    assert "call(s)" in human.stdout
    bad = run(local, "process-pending", "--cursor", "forged", key=local.api_key)
    assert bad.exit_code == 2
    assert "Invalid cursor" in bad.stderr

    # The key can come from the environment too.
    redrive = run(local, "redrive", "--max-messages", "5", VIRALSPOT_API_KEY=local.api_key or "")
    assert redrive.exit_code == 0, redrive.output
    assert "Moved 0 message(s) back" in redrive.stdout
    assert "Re-opened 0 job(s) whose retries ran out." in redrive.stdout


# ------------------------------------------------------------------ bulk


def test_bulk_from_a_file_summarises_each_outcome(local: DevStack, tmp_path: Path) -> None:
    assert run(local, "request", "bulk_seen").exit_code == 0
    names = tmp_path / "names.txt"
    names.write_text(
        "# people to analyse\nbulk_seen\n\n@Bulk_One   # a comment after a name\n"
        "bad name\nbulk_two\n",
        encoding="utf-8",
    )
    result = run(local, "--json", "bulk", str(names))
    # An invalid line makes the run a bad-input one, after the others were queued.
    assert result.exit_code == 2, result.output
    answer = json.loads(result.stdout)
    assert answer["summary"] == {
        "queued_new": 2,
        "already_queued": 1,
        "already_processed": 0,
        "invalid": 1,
        "failed": 0,
    }
    assert [item["username"] for item in answer["results"]] == [
        "bulk_seen",
        "bulk_one",
        "bad name",
        "bulk_two",
    ]

    shown = run(local, "bulk", str(names))
    assert shown.exit_code == 2
    assert re.search(r"already queued\s+3\n", shown.stdout)
    assert "bad name" in shown.stdout
    assert "invalid characters" in shown.stdout


def test_bulk_chunks_to_the_api_limit_and_reads_stdin(
    local: DevStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI cannot import the server's limit, so the two are compared here.
    assert client_module.MAX_BULK == SERVER_MAX_BULK == cli.MAX_BULK
    calls: list[int] = []
    real = ViralSpotClient.bulk_request

    def counting(self: ViralSpotClient, usernames: list[str], source: str = "bulk") -> Any:
        calls.append(len(usernames))
        return real(self, usernames, source)

    monkeypatch.setattr(ViralSpotClient, "bulk_request", counting)
    # A small limit exercises the chunking without queueing 51 profiles.
    monkeypatch.setattr(cli, "MAX_BULK", 2)
    names = "".join(f"chunk_{i}\n" for i in range(5))
    result = CliRunner().invoke(
        cli.app, ["--api", local.api_url, "--json", "bulk", "-"], input=names
    )
    assert result.exit_code == 0, result.output
    assert calls == [2, 2, 1]
    answer = json.loads(result.stdout)
    assert answer["summary"]["queued_new"] == 5
    assert [item["username"] for item in answer["results"]] == [f"chunk_{i}" for i in range(5)]


def test_bulk_counts_a_name_by_its_error_code_not_its_message(
    local: DevStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name storage could not take is a service failure (exit 1) and a bad name
    is bad input, however the server words them: the CLI reads each item's `code`."""
    real = ViralSpotClient.bulk_request

    def storage_busy_for_one(
        self: ViralSpotClient, usernames: list[str], source: str = "bulk"
    ) -> Any:
        answer = real(self, usernames, source)
        answer["results"][1] = {
            "username": "busy_one",
            "success": False,
            "error": "Invalid characters, said a later release by mistake",
            "code": "storage_busy",
        }
        return answer

    monkeypatch.setattr(ViralSpotClient, "bulk_request", storage_busy_for_one)
    result = CliRunner().invoke(
        cli.app,
        ["--api", local.api_url, "--json", "bulk", "-"],
        input="code_ok\nbusy_one\nbad name\n",
    )
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)["summary"]
    assert (summary["failed"], summary["invalid"], summary["queued_new"]) == (1, 1, 1)


def test_bulk_of_an_empty_file_is_a_usage_error(local: DevStack, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    result = run(local, "bulk", str(empty))
    assert result.exit_code == 2
    assert "lists no usernames" in result.stderr


# ------------------------------------------------------------------ watch


@pytest.mark.usefixtures("worker")
def test_watch_follows_the_job_to_its_results(local: DevStack) -> None:
    result = run(local, "request", "natgeo", "--watch", "--interval", "0.2", "--timeout", "20")
    assert result.exit_code == 0, result.output

    top = api_data(local, "/api/profile/natgeo/posts?sort=popular&limit=10")["posts"]
    profile = api_data(local, "/api/profile/natgeo")
    out = result.stdout
    assert "added to high priority processing queue" in out
    assert "@natgeo is analysed" in out
    assert f"Reels ≥2x / ≥5x / ≥10x  {profile['content_stats']['reels_2x']} /" in out
    table = out[out.index("Top 10 reels by outlier score") :]
    assert "Outlier" in table
    # The reels in the API's popular order, with their scores as "12.3x".
    positions = [table.index(post["shortcode"]) for post in top]
    assert positions == sorted(positions)
    assert f"{top[0]['outlier_score']:.1f}x" in table

    # Once processed, the other read commands have something to show.
    recent = run(local, "profile", "natgeo", "--sort", "recent", "--limit", "3")
    assert recent.exit_code == 0, recent.output
    assert "3 reels, recent" in recent.stdout
    similar = run(local, "--json", "similar", "natgeo")
    assert similar.exit_code == 0
    assert json.loads(similar.stdout)["count"] == len(profile["similar_usernames"])

    # Watching a processed profile shows its results at once.
    again = run(local, "--json", "request", "natgeo", "--watch")
    assert again.exit_code == 0
    report = json.loads(again.stdout)
    assert report["request"]["skip_reason"] == "recently_completed"
    assert [p["shortcode"] for p in report["top_posts"]] == [p["shortcode"] for p in top]


@pytest.mark.usefixtures("worker")
def test_watch_of_a_missing_account_fails_with_advice(local: DevStack) -> None:
    # A terminal: the live display is drawn and cleared.
    result = run(
        local, "request", "sample_notfound", "--watch", "--interval", "0.2", FORCE_COLOR="1"
    )
    assert result.exit_code == 1, result.output
    assert "does not exist" in result.stderr
    assert "Check the username" in result.stderr


def test_watch_timeout_exits_3_and_the_job_goes_on(local: DevStack) -> None:
    # No worker: the job stays pending.
    result = run(local, "request", "slow_one", "--watch", "--interval", "0.1", "--timeout", "0.5")
    assert result.exit_code == 3, result.output
    assert "pending" in result.stdout
    assert "viralspot status slow_one" in result.stderr


def test_watch_rides_out_a_failing_status_check(
    local: DevStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ViralSpotClient.status
    checks: list[str] = []

    def flaky(self: ViralSpotClient, username: str) -> Any:
        checks.append(username)
        if len(checks) == 1:
            raise ApiError(503, "Storage is temporarily unavailable", method="GET", path="/x")
        return real(self, username)

    monkeypatch.setattr(ViralSpotClient, "status", flaky)
    result = run(local, "request", "flaky_api", "--watch", "--interval", "0.1", "--timeout", "0.6")
    # Still watching after the 503 (it timed out on a pending job rather than failing).
    assert result.exit_code == 3, result.output
    assert len(checks) > 1
    assert "HTTP 503" in result.stdout


def test_ctrl_c_stops_watching_cleanly(local: DevStack, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: ViralSpotClient, username: str) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(ViralSpotClient, "status", interrupted)
    result = run(local, "request", "impatient", "--watch")
    assert result.exit_code == 130
    assert "Stopped watching" in result.stderr
    assert "Traceback" not in result.output


# ------------------------------------------------------------------ ideas

OSC8 = "\x1b]8;"  # a terminal hyperlink


def fits(output: str, width: int) -> bool:
    return all(len(line) <= width for line in output.splitlines())


@pytest.mark.usefixtures("worker")
def test_ideas_shows_the_feed_in_80_columns(local: DevStack) -> None:
    for name in ("ideas_one", "ideas_two", "ideas_three"):
        done = run(local, "request", name, "--watch", "--interval", "0.2", "--timeout", "20")
        assert done.exit_code == 0, done.output

    api_page = api_data(local, "/api/viral-ideas/reels?min_score=1&limit=5")
    assert api_page["count"] == 5
    as_json = run(local, "--json", "ideas", "--min-score", "1", "--limit", "5")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == api_page

    shown = run(local, "ideas", "--min-score", "1", "--limit", "5", COLUMNS="80")
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    # The table fits; only the next-page command (a long cursor) may run on.
    assert fits(out.split("More: ")[0], 80), out
    assert f"reels taken since {api_page['since']} scoring ≥ 1.0x" in out
    # In the API's order, each on one line: shortcode, @profile and score whole.
    rows = [
        next(line for line in out.splitlines() if r["shortcode"] in line) for r in api_page["reels"]
    ]
    assert [out.index(row) for row in rows] == sorted(out.index(row) for row in rows)
    for row, reel in zip(rows, api_page["reels"], strict=True):
        assert f"@{reel['username']}" in row
        assert f"{reel['outlier_score']:.1f}x" in row

    # The page ends with the command for the next one, which the API agrees with.
    more = next(line for line in out.splitlines() if line.startswith("More: "))
    args = more.removeprefix("More: viralspot ").split()
    assert args[:1] == ["ideas"]
    following = run(local, "--json", *args)
    assert following.exit_code == 0, following.output
    cursor = api_page["next_cursor"]
    assert json.loads(following.stdout) == api_data(
        local, f"/api/viral-ideas/reels?min_score=1&limit=5&cursor={cursor}"
    )

    # On a terminal the shortcode is a hyperlink to the reel.
    linked = run(local, "ideas", "--limit", "1", FORCE_COLOR="1", COLUMNS="80")
    first = api_data(local, "/api/viral-ideas/reels?limit=1")["reels"][0]
    assert OSC8 in linked.stdout
    assert first["url"] in linked.stdout

    # Filters reach the API as given.
    category = api_page["reels"][0]["category"]
    since = api_page["since"]
    filtered = run(
        local,
        "--json",
        "ideas",
        "--category",
        category.upper(),
        "--since",
        since,
        "--min-score",
        "0",
    )
    assert filtered.exit_code == 0, filtered.output
    reels = json.loads(filtered.stdout)["reels"]
    assert reels
    assert {r["category"] for r in reels} == {category}

    nothing = run(local, "ideas", "--category", "no such category")
    assert nothing.exit_code == 0
    assert "No reel taken since" in nothing.stdout


def test_ideas_refuses_bad_filters(local: DevStack) -> None:
    for args in (["--since", "yesterday"], ["--min-score", "-1"], ["--limit", "101"]):
        result = run(local, "ideas", *args)
        assert result.exit_code == 2, (args, result.output)
    forged = run(local, "ideas", "--cursor", "bm90IGpzb24")
    assert forged.exit_code == 2
    assert "Invalid cursor" in forged.stderr


@pytest.mark.usefixtures("worker")
def test_reels_tables_fit_80_columns_with_links(local: DevStack) -> None:
    done = run(local, "request", "narrow_term", "--watch", "--interval", "0.2", "--timeout", "20")
    assert done.exit_code == 0, done.output
    posts = api_data(local, "/api/profile/narrow_term/posts?limit=5")["posts"]
    shown = run(local, "profile", "narrow_term", "--limit", "5", COLUMNS="80")
    assert shown.exit_code == 0, shown.output
    assert fits(shown.stdout, 80), shown.stdout
    for post in posts:
        assert post["shortcode"] in shown.stdout
    linked = run(local, "profile", "narrow_term", "--limit", "5", FORCE_COLOR="1", COLUMNS="80")
    assert all(post["url"] in linked.stdout for post in posts)


# ------------------------------------------------------------------ client and packaging


@pytest.mark.parametrize(
    "base",
    [
        "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
        "https://abc.execute-api.eu-west-1.amazonaws.com/v1/",
    ],
)
def test_client_joins_paths_under_the_stage(base: str) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"success": True, "data": {"username": "natgeo"}})

    with ViralSpotClient(base, transport=httpx.MockTransport(answer)) as client:
        client.status("@NatGeo")
    assert seen == [
        "https://abc.execute-api.eu-west-1.amazonaws.com/v1/api/profile/%40NatGeo/status"
    ]


def test_client_sends_the_key_and_reads_gateway_errors() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-api-key"] == "secret"
        return httpx.Response(429, json={"message": "Too Many Requests"})

    with (
        ViralSpotClient(
            "http://api.test", api_key="secret", transport=httpx.MockTransport(answer)
        ) as client,
        pytest.raises(ApiError) as raised,
    ):
        client.queue_status()
    assert raised.value.status == 429
    assert raised.value.gateway
    assert raised.value.transient


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30 seconds", 30.0), ("1 minute", 60.0), ("2.5s", 2.5), ("soon", None), (None, None)],
)
def test_recommended_interval_is_parsed(text: str | None, seconds: float | None) -> None:
    assert cli.parse_interval(text) == seconds


def test_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("Exit codes", "3 --watch timed out", "5 API unreachable", "6 forbidden"):
        assert text in result.stdout
    assert cli.__doc__ is not None
    assert "130  interrupted" in cli.__doc__


def test_the_cli_does_not_import_the_server_package() -> None:
    # It must work against a deployed stack from a machine without the layer.
    code = "import sys, viralspot_cli.main; sys.exit('viralspot' in sys.modules)"
    subprocess.run(  # noqa: S603 - our own interpreter and a fixed snippet
        [sys.executable, "-c", code], check=True, cwd=REPO, env={"PYTHONPATH": str(REPO / "cli")}
    )
