"""Hostile input through the real API handler on the emulator: every case of
issue 16 answers a 4xx (or works), nothing invalid is stored or queued, and a
forged cursor never reaches DynamoDB."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

from devstack.emulator import Emulator
from devstack.invoke import LocalApi, handler_for
from devstack.lambda_context import LocalContext
from devstack.template import Stack, resources_of_type
from tests.support import CallCounter, drain, process, raw_request
from viralspot import bootstrap, cursors
from viralspot.adapters.dynamo_content import INDEX_KEYS
from viralspot.edge import MAX_BODY_BYTES

pytestmark = pytest.mark.server

BULK = "/api/profile/bulk-request"


def bulk(
    template: dict[str, Any], body: bytes | str, content_type: str | None = "application/json"
) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return raw_request(template, "POST", BULK, body=body, headers=headers)


def queued(aws_env: Emulator, stack: Stack) -> list[dict[str, Any]]:
    return drain(aws_env, stack.refs["HighQueue"]) + drain(aws_env, stack.refs["LowQueue"])


# ---------------------------------------------------------------- bodies and media types


@pytest.mark.parametrize(
    "content_type",
    [
        "APPLICATION/JSON",
        "APPLICATION/JSON; charset=utf-8",
        "application/json;CHARSET=UTF-8",
        "Application/Json ; foo=bar",
        None,
    ],
)
def test_json_in_any_case_with_parameters_is_accepted(
    stack: Stack, content_type: str | None
) -> None:
    status, _, body = bulk(stack.template, '{"usernames": ["natgeo"]}', content_type)
    assert status == 200, body
    assert body["data"]["succeeded"] == 1


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=----x",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/xml",
        "application/json; charset=iso-8859-1",
        "nonsense",
    ],
)
def test_anything_not_json_is_415_and_queues_nothing(
    stack: Stack, aws_env: Emulator, aws_calls: CallCounter, content_type: str
) -> None:
    body = '{"usernames": ["natgeo"]}'
    if content_type.startswith("multipart"):
        body = (
            '------x\r\nContent-Disposition: form-data; name="usernames"\r\n\r\nnatgeo\r\n------x--'
        )
    status, _, answer = bulk(stack.template, body, content_type)
    assert status == 415, answer
    assert answer["success"] is False
    assert "application/json" in answer["detail"]
    assert aws_calls.calls == []
    assert queued(aws_env, stack) == []


def nested(depth: int) -> str:
    return '{"usernames": ' + "[" * depth + '"natgeo"' + "]" * depth + "}"


@pytest.mark.parametrize(
    ("case", "body", "status"),
    [
        ("nested 1,000 deep", nested(1_000), 400),
        ("nested 100,000 deep", nested(100_000), 413),  # 200 KB: the size cap answers first
        ("nested 5,000 deep (under the size cap)", nested(5_000), 400),
        ("objects 1,000 deep", '{"a":' * 1_000 + "1" + "}" * 1_000, 400),
        ("million-digit number", '{"usernames": ["natgeo"], "n": ' + "9" * 1_000_000 + "}", 413),
        ("10,000-digit number", '{"usernames": ["natgeo"], "n": ' + "9" * 10_000 + "}", 400),
        ("5,000-digit float", '{"usernames": [], "n": 1.' + "5" * 5_000 + "}", 400),
        ("NaN", '{"usernames": ["natgeo"], "n": NaN}', 400),
        ("truncated", '{"usernames": ["natgeo"', 400),
        ("not UTF-8", b'{"usernames": ["\xff\xfe"]}', 400),
        ("over the size cap", '{"usernames": ["' + "a" * MAX_BODY_BYTES + '"]}', 413),
        ("array at the top", '["natgeo"]', 400),
        ("empty", "", 400),
    ],
)
def test_body_bombs_are_4xx_before_any_aws_call(
    stack: Stack, aws_calls: CallCounter, case: str, body: str | bytes, status: int
) -> None:
    answer_status, _, answer = bulk(stack.template, body)
    assert answer_status == status, (case, answer)
    assert answer["success"] is False
    assert answer["detail"]
    assert aws_calls.calls == [], case


def test_a_base64_body_is_decoded_and_checked_like_any_other(stack: Stack) -> None:
    event_body = base64.b64encode(b'{"usernames": ["natgeo"]}').decode()
    handler = handler_for("RequestProfileFunction", stack.template)
    event = {
        "resource": BULK,
        "path": BULK,
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": event_body,
        "isBase64Encoded": True,
        "requestContext": {"requestId": "r", "stage": "v1", "identity": {}},
    }
    assert handler(event, LocalContext())["statusCode"] == 200
    event["body"] = "%%%not base64%%%"
    assert handler(event, LocalContext())["statusCode"] == 400


def test_a_big_body_on_a_route_without_one_is_413(stack: Stack) -> None:
    status, _, answer = raw_request(
        stack.template,
        "POST",
        "/api/profile/natgeo/request",
        body="x" * (MAX_BODY_BYTES + 1),
        headers={"Content-Type": "text/plain"},
    )
    assert status == 413, answer


# ---------------------------------------------------------------- routing


def test_an_encoded_slash_stays_in_the_username(stack: Stack, api: LocalApi) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    status, _, answer = raw_request(stack.template, "GET", "/api/profile/natgeo%2Fstatus")
    # API Gateway matched /api/profile/{username} with username "natgeo/status":
    # not the status route, and not a valid name.
    assert status == 400, answer
    assert "invalid characters" in answer["detail"]
    status, _, answer = raw_request(stack.template, "POST", "/api/profile/natgeo%2Fx/request")
    assert status == 400, answer


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/profile/natgeo/status", "GET, OPTIONS"),
        ("PUT", "/api/profile/bulk-request", "OPTIONS, POST"),
        # Not the profile of a user called "bulk-request": the literal resource wins.
        ("GET", "/api/profile/bulk-request", "OPTIONS, POST"),
        ("GET", "/api/viral-ideas/process-pending", "OPTIONS, POST"),
        ("HEAD", "/api/health", "GET, OPTIONS"),
        ("PATCH", "/api/profile/%22quoted%22", "GET, OPTIONS"),
    ],
)
def test_an_undeclared_method_is_405_with_allow(
    stack: Stack, aws_calls: CallCounter, method: str, path: str, allow: str
) -> None:
    status, headers, answer = raw_request(stack.template, method, path)
    assert status == 405, answer
    assert headers["Allow"] == allow
    assert answer["success"] is False
    assert aws_calls.calls == []


# ---------------------------------------------------------------- HIGH is earned


def admin_key(stack: Stack) -> str:
    (key,) = stack.api_keys()
    return key


@pytest.mark.parametrize("key", [None, "", "wrong", "x" * 40])
def test_source_admin_without_the_key_is_403_and_queues_nothing(
    stack: Stack, aws_env: Emulator, key: str | None
) -> None:
    headers = {"x-api-key": key} if key is not None else {}
    status, _, answer = raw_request(
        stack.template, "POST", "/api/profile/natgeo/request?source=admin", headers=headers
    )
    assert status == 403, answer
    assert "admin key" in answer["detail"]
    assert queued(aws_env, stack) == []
    status, _, progress = raw_request(stack.template, "GET", "/api/profile/natgeo/status")
    assert progress["data"]["status"] == "not_found"


@pytest.mark.parametrize("source", ["admin", "frontend"])
def test_a_high_bulk_request_without_the_key_is_403_and_queues_nothing(
    stack: Stack, aws_env: Emulator, source: str
) -> None:
    names = [f"bulk_{i}" for i in range(50)]
    status, _, answer = bulk(stack.template, json.dumps({"usernames": names, "source": source}))
    assert status == 403, answer
    assert queued(aws_env, stack) == []


def test_with_the_key_admin_and_high_bulk_are_high(stack: Stack, aws_env: Emulator) -> None:
    key = {"x-api-key": admin_key(stack), "Content-Type": "application/json"}
    status, _, one = raw_request(
        stack.template, "POST", "/api/profile/one/request?source=admin", headers=key
    )
    assert status == 200, one
    assert one["data"]["priority"] == "HIGH"
    status, _, many = raw_request(
        stack.template,
        "POST",
        BULK,
        body=json.dumps({"usernames": ["two", "three"], "source": "frontend"}),
        headers=key,
    )
    assert status == 200, many
    assert {r["data"]["priority"] for r in many["data"]["results"]} == {"HIGH"}
    assert len(drain(aws_env, stack.refs["HighQueue"])) == 3


def test_public_sources_need_no_key(stack: Stack, aws_env: Emulator) -> None:
    status, _, one = raw_request(stack.template, "POST", "/api/profile/one/request")
    assert (status, one["data"]["priority"]) == (200, "HIGH")  # a person's request
    status, _, many = bulk(stack.template, json.dumps({"usernames": ["a1", "b2"]}))
    assert status == 200
    assert {r["data"]["priority"] for r in many["data"]["results"]} == {"MEDIUM"}


# ---------------------------------------------------------------- cursors


@pytest.fixture
def processed(api: LocalApi, stack: Stack, aws_env: Emulator) -> str:
    """natgeo processed by the real worker (100 reels), the posts route's first cursor."""
    api.request("POST", "/api/profile/natgeo/request")
    assert process(stack.template, aws_env, stack.refs["HighQueue"], stack.arns["HighQueue"]) == 1
    _, _, page = api.request("GET", "/api/profile/natgeo/posts?limit=10")
    cursor: str = page["data"]["next_cursor"]
    return cursor


def posts(template: dict[str, Any], cursor: str, extra: str = "") -> tuple[int, Any]:
    status, _, answer = raw_request(
        template, "GET", f"/api/profile/natgeo/posts?limit=10&cursor={cursor}{extra}"
    )
    return status, answer


def unsigned(position: dict[str, Any]) -> str:
    """What cursors used to be: base64 of the JSON position, no signature."""
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_real_cursor_pages_on(stack: Stack, processed: str) -> None:
    status, answer = posts(stack.template, processed)
    assert status == 200, answer
    assert answer["data"]["count"] == 10


def forged_cursors(cursor: str) -> dict[str, str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    tag, payload = raw[:16], raw[16:]
    position = json.loads(payload)
    key = dict(position["key"])
    flipped = bytes([tag[0] ^ 1]) + tag[1:] + payload
    edited = json.loads(payload)
    edited["key"]["shortcode"] = "AAAAAAAAAAA"
    return {
        "truncated": cursor[:-5],
        "one character": cursor[:1],
        "tag flipped": base64.urlsafe_b64encode(flipped).decode().rstrip("="),
        "payload edited, tag kept": base64.urlsafe_b64encode(
            tag + json.dumps(edited, separators=(",", ":"), sort_keys=True).encode()
        )
        .decode()
        .rstrip("="),
        "re-encoded unsigned": unsigned(position),
        "unsigned, an attribute dropped": unsigned({**position, "key": {"username": "natgeo"}}),
        "unsigned, another table's key": unsigned({**position, "key": {"queue_pk": "ACTIVE#0"}}),
        "unsigned, 100,000 deep": base64.urlsafe_b64encode(
            ("[" * 100_000 + "]" * 100_000).encode()
        ).decode(),
        "padding and junk": cursor + "===",
        "not base64": "%%%%",
        "key only": unsigned(key),
    }


def test_every_forged_cursor_is_400_and_never_queries(
    stack: Stack, processed: str, aws_calls: CallCounter
) -> None:
    for case, forged in forged_cursors(processed).items():
        aws_calls.reset()
        status, answer = posts(stack.template, forged)
        assert status == 400, (case, answer)
        assert "cursor" in answer["detail"].lower(), case
        assert "dynamodb.Query" not in aws_calls.calls, case


def test_a_cursor_opens_only_its_own_listing(stack: Stack, processed: str) -> None:
    assert posts(stack.template, processed, "&sort=recent")[0] == 400
    status, _, answer = raw_request(
        stack.template, "GET", f"/api/profile/nasa/posts?cursor={processed}"
    )
    assert status in (400, 404), answer  # nasa is not processed: 404 comes first


def signed(position: dict[str, Any], kind: str = "posts") -> str:
    """A cursor signed with the stack's real key: what a leaked key would allow."""
    return cursors.encode_cursor(position, kind=kind)


def test_a_signed_cursor_must_still_fit_the_index_key(
    stack: Stack, processed: str, aws_calls: CallCounter
) -> None:
    raw = base64.urlsafe_b64decode(processed + "=" * (-len(processed) % 4))
    position = json.loads(raw[16:])
    key = position["key"]
    cases = {
        "attribute dropped": {k: v for k, v in key.items() if k != "popularity"},
        "attribute added": {**key, "queue_pk": "ACTIVE#0"},
        "another index's key": {
            **{k: v for k, v in key.items() if k != "popularity"},
            "taken_at": "x",
        },
        "number for a string": {**key, "shortcode": 7},
        "another user's partition": {**key, "username": "nasa"},
        "empty string": {**key, "shortcode": ""},
        "not a mapping": ["natgeo"],
    }
    for case, forged in cases.items():
        aws_calls.reset()
        status, answer = posts(stack.template, signed({**position, "key": forged}))
        assert status == 400, (case, answer)
        assert "dynamodb.Query" not in aws_calls.calls, case
    assert posts(stack.template, signed(position, kind="feed"))[0] == 400
    assert posts(stack.template, signed(position))[0] == 200


def test_index_keys_are_the_templates(template: dict[str, Any]) -> None:
    (table,) = [
        r["Properties"]
        for name, r in resources_of_type(template, "AWS::DynamoDB::Table").items()
        if name == "ContentTable"
    ]
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    base = {k["AttributeName"] for k in table["KeySchema"]}
    for index in table["LocalSecondaryIndexes"]:
        expected = base | {k["AttributeName"] for k in index["KeySchema"]}
        assert INDEX_KEYS[index["IndexName"]] == {name: types[name] for name in expected}


def test_paging_without_its_key_is_503_not_500(
    stack: Stack, processed: str, aws_env: Emulator
) -> None:
    aws_env.client("secretsmanager").delete_secret(
        SecretId=stack.refs["CursorKeySecret"], ForceDeleteWithoutRecovery=True
    )
    bootstrap.reset()
    parameters.clear_caches()
    status, answer = posts(stack.template, processed)
    assert status == 503, answer
    assert answer["success"] is False
