"""Property: nothing a client sends costs a 5xx, and HIGH priority is only ever earned.

Hypothesis drives the local API Gateway (devstack.gateway.Gateway, in-process)
in front of the real API function on the emulator, over every route of the
template, with what an attacker or a careless client would send: any method;
usernames with encoded slashes, unicode, 10,000 characters; query strings with
invalid enums, enormous numbers and cursors (real ones truncated, tampered,
re-encoded unsigned, nested 100,000 deep); Content-Types in any case, with
parameters, multipart without a boundary; bodies nested deep, holding
million-digit numbers, truncated, undecodable, over the size cap; right, wrong
and missing API keys.

Every answer must be below 500 and JSON in the API's envelope (the two HTML
routes aside), and a request claiming HIGH without the key must not succeed.
This is the test that finds what issue 16 found by hand; tests/integration/
test_edge.py pins each of those cases.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.apigw import routes
from devstack.emulator import Emulator
from devstack.gateway import Gateway
from devstack.invoke import LocalApi
from devstack.template import Stack
from tests.fuzz.test_schemathesis import canonical
from tests.support import process
from viralspot.adapters.dynamo_jobs import STATS_PREFIX
from viralspot.edge import MAX_BODY_BYTES

pytestmark = [pytest.mark.server, pytest.mark.fuzz]

EXAMPLES = 600
# Answers that are not the envelope: the page, Swagger UI, the OpenAPI document.
NOT_ENVELOPES = {"/", "/api/docs", "/api/openapi.json"}


@pytest.fixture
def target(api: LocalApi, stack: Stack, aws_env: Emulator) -> tuple[Gateway, str, str]:
    """The gateway over the real handler, a processed profile, and one real cursor."""
    api.request("POST", "/api/profile/natgeo/request")
    process(stack.template, aws_env, stack.refs["HighQueue"], stack.arns["HighQueue"])
    _, _, page = api.request("GET", "/api/profile/natgeo/posts?limit=5")
    cursor = page["data"]["next_cursor"]
    (key,) = stack.api_keys()
    assert api.api_key == key
    return api.gateway, key, cursor


# ---------------------------------------------------------------- strategies

usernames = st.one_of(
    st.sampled_from(["natgeo", "@NatGeo", "nasa", "a.b_c", "NATGEO", "x" * 30]),
    st.sampled_from(
        ["natgeo%2Fstatus", "%2e%2e", "a%00b", "%40natgeo", "a..b", ".a", "%F0%9F%98%80", "%"]
    ),
    st.text(min_size=1, max_size=40).map(lambda s: quote(s, safe="")),
    st.integers(min_value=31, max_value=10_000).map(lambda n: "a" * n),
)


def cursors(real: str) -> st.SearchStrategy[str]:
    raw = base64.urlsafe_b64decode(real + "=" * (-len(real) % 4))
    position = json.loads(raw[16:])

    def unsigned(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return st.one_of(
        st.just(real),
        st.integers(min_value=0, max_value=len(real) - 1).map(lambda n: real[:n]),
        st.integers(min_value=0, max_value=len(raw) - 1).map(
            lambda n: (
                base64.urlsafe_b64encode(raw[:n] + bytes([raw[n] ^ 0x55]) + raw[n + 1 :])
                .decode()
                .rstrip("=")
            )
        ),
        st.just(unsigned(position)),
        st.just(unsigned({**position, "key": {"username": "natgeo"}})),
        st.just(unsigned({"key": {"queue_pk": "ACTIVE#0", "queue_sk": "x"}})),
        st.integers(min_value=1, max_value=100_000).map(lambda d: unsigned(None) + "A" * d),
        st.just(base64.urlsafe_b64encode(b"[" * 50_000 + b"]" * 50_000).decode()),
        st.text(max_size=60).map(lambda s: quote(s, safe="")),
    )


def numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers().map(str),
        st.sampled_from(["0", "-1", "101", "1e309", "NaN", "9" * 5_000, "1.5", "", " "]),
    )


def queries(real_cursor: str) -> st.SearchStrategy[str]:
    values = {
        "source": st.sampled_from(
            ["frontend", "admin", "api", "bulk", "crawler", "ADMIN", "x", ""]
        ),
        "sort": st.sampled_from(["popular", "recent", "oldest", "POPULAR", "random", ""]),
        "limit": numbers(),
        "max_messages": numbers(),
        "cursor": cursors(real_cursor),
        "other": st.text(max_size=20).map(lambda s: quote(s, safe="")),
    }
    pairs = st.lists(
        st.sampled_from(sorted(values)).flatmap(
            lambda name: values[name].map(lambda v, n=name: f"{n}={v}")
        ),
        max_size=4,
    )
    return pairs.map(lambda p: ("?" + "&".join(p)) if p else "")


def nested(depth: int) -> str:
    return '{"usernames": ' + "[" * depth + '"natgeo"' + "]" * depth + "}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

bodies = st.one_of(
    st.none(),
    st.builds(
        lambda names, source: json.dumps({"usernames": names, "source": source}),
        # A few names (each one is a transaction on the emulator), or one too many.
        st.one_of(st.lists(usernames, max_size=4), st.just(["natgeo"] * 51)),
        st.sampled_from(["bulk", "api", "admin", "frontend", "crawler", "nope"]),
    ),
    st.sampled_from([1, 31, 33, 1_000, 10_000, 100_000]).map(nested),
    st.sampled_from([40, 41, 5_000, 1_000_000]).map(
        lambda n: '{"usernames": ["natgeo"], "n": ' + "9" * n + "}"
    ),
    json_values.map(json.dumps),
    st.builds(lambda text, cut: text[:cut], st.just(nested(3)), st.integers(0, 30)),
    st.binary(max_size=200),
    st.just("x" * (MAX_BODY_BYTES + 1)),
)

content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "multipart/form-data",
            "multipart/form-data; boundary=--x",
            "application/x-www-form-urlencoded",
            "text/plain",
            "application/json; charset=latin-1",
            "application/jsonp",
            ";;;",
            "",
        ]
    ),
    st.builds(
        lambda case, params: (
            "".join(
                c.upper() if flip else c for c, flip in zip("application/json", case, strict=False)
            )
            + params
        ),
        st.lists(st.booleans(), min_size=16, max_size=16),
        st.sampled_from(["", "; charset=utf-8", ";CHARSET=UTF8", '; charset="utf-8"; x=y']),
    ),
)

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FROB"]


def path_of(resource: str, name: str) -> str:
    return resource.replace("{username}", name)


# ---------------------------------------------------------------- the property


def test_no_request_costs_a_5xx_and_high_is_earned(
    target: tuple[Gateway, str, str], stack: Stack, aws_env: Emulator
) -> None:
    gateway, right_key, real_cursor = target
    declared = sorted({(r.method, r.resource) for r in routes(stack.template) if r.method != "ANY"})
    seen: dict[int, int] = {}

    @given(
        route=st.sampled_from(declared),
        # Mostly the route's own method, so most requests get past routing.
        other_method=st.one_of(st.none(), st.none(), st.none(), st.sampled_from(METHODS)),
        name=usernames,
        query=queries(real_cursor),
        body=bodies,
        content_type=content_types,
        key=st.sampled_from([None, "right", "wrong", "", "é", right_key.upper()]),
        extra=st.dictionaries(
            st.sampled_from(["Accept", "Origin", "X-Forwarded-For", "Content-Encoding"]),
            st.text(max_size=30).filter(lambda v: "\r" not in v and "\n" not in v),
            max_size=2,
        ),
    )
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=os.environ.get("CI") == "true",
        suppress_health_check=list(HealthCheck),
    )
    def one(
        route: tuple[str, str],
        other_method: str | None,
        name: str,
        query: str,
        body: str | bytes | None,
        content_type: str | None,
        key: str | None,
        extra: dict[str, str],
    ) -> None:
        method, resource = other_method or route[0], route[1]
        headers = dict(extra)
        if content_type is not None:
            headers["Content-Type"] = content_type
        presented = right_key if key == "right" else key
        if presented is not None:
            headers["x-api-key"] = presented
        raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        target_url = path_of(resource, name) + query
        answer = gateway.handle(method, target_url, list(headers.items()), raw)
        seen[answer.status] = seen.get(answer.status, 0) + 1
        where = f"{method} {target_url[:200]} body={raw[:80]!r} headers={headers}"
        assert answer.status < 500, f"{answer.status} for {where}: {answer.body[:300]!r}"
        if method in ("OPTIONS", "HEAD") and answer.status == 200:
            return
        if resource in NOT_ENVELOPES and answer.status == 200:
            return
        payload = json.loads(answer.body)
        if answer.status >= 400:
            assert payload["success"] is False, where
            assert isinstance(payload["detail"], str), where
            assert payload["detail"], where
        else:
            assert payload["success"] is True, where
        # HIGH is earned: source=admin, or HIGH in bulk, succeeds only with the key.
        if answer.status == 200 and presented != right_key:
            if resource == "/api/profile/{username}/request":
                sources = [v for k, v in parse_qsl(query.lstrip("?")) if k == "source"]
                assert "admin" not in sources, where
            if resource == "/api/profile/bulk-request":
                claimed = json.loads(raw).get("source", "bulk")
                assert claimed not in ("admin", "frontend"), where

    one()
    print(f"\nhostile input: {sum(seen.values())} requests, statuses {dict(sorted(seen.items()))}")
    # The fuzz reached past the edge, and the edge refused a great deal.
    assert seen.get(200, 0) >= 10, seen
    assert sum(n for s, n in seen.items() if 400 <= s < 500) >= EXAMPLES // 2, seen

    # Nothing invalid was stored.
    client = aws_env.client("dynamodb")
    for table in ("JobsTable", "ProfilesTable"):
        names = [
            i["username"]["S"]
            for page in client.get_paginator("scan").paginate(TableName=stack.refs[table])
            for i in page["Items"]
            # The queue counters share the Jobs table under keys no username can take.
            if not i["username"]["S"].startswith(STATS_PREFIX)
        ]
        assert all(canonical(n) for n in names), [n for n in names if not canonical(n)][:10]
