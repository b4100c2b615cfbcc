"""The edge's rules on what a client may send: size, media type, JSON shape, routing."""

from __future__ import annotations

import base64

import pytest

from viralspot import edge
from viralspot.access import authorise, needs_admin_key
from viralspot.errors import Forbidden, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from viralspot.jobs import Source

# ---------------------------------------------------------------- size


def test_a_body_at_the_limit_passes_and_one_byte_more_is_413() -> None:
    assert len(edge.body_bytes("a" * edge.MAX_BODY_BYTES, base64_encoded=False)) == (
        edge.MAX_BODY_BYTES
    )
    with pytest.raises(PayloadTooLarge):
        edge.body_bytes("a" * (edge.MAX_BODY_BYTES + 1), base64_encoded=False)


def test_size_counts_bytes_not_characters() -> None:
    # 'é' is two bytes in UTF-8: half the limit in characters is the whole limit in bytes.
    with pytest.raises(PayloadTooLarge):
        edge.body_bytes("é" * (edge.MAX_BODY_BYTES // 2 + 1), base64_encoded=False)


def test_base64_bodies_are_measured_decoded_and_must_be_base64() -> None:
    raw = b"\x00" * edge.MAX_BODY_BYTES
    assert edge.body_bytes(base64.b64encode(raw).decode(), base64_encoded=True) == raw
    with pytest.raises(PayloadTooLarge):
        edge.body_bytes(base64.b64encode(raw + b"x").decode(), base64_encoded=True)
    with pytest.raises(InvalidInput):
        edge.body_bytes("not base64!", base64_encoded=True)


def test_a_huge_body_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(PayloadTooLarge):
        edge.body_bytes("A" * 10_000_000, base64_encoded=True)


# ---------------------------------------------------------------- media types


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "APPLICATION/JSON",
        "Application/Json; charset=UTF-8",
        "application/json;charset=utf-8",
        'application/json; charset="utf-8"',
        "application/json; CHARSET=utf8; foo=bar",
        "  application/json  ",
    ],
)
def test_json_media_types_are_compared_case_insensitively_with_parameters(
    content_type: str | None,
) -> None:
    edge.require_json(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
        "application/jsonp",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        "application",
        ";",
        "*/*",
    ],
)
def test_anything_else_is_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        edge.require_json(content_type)


# ---------------------------------------------------------------- JSON


@pytest.mark.parametrize("depth", [edge.MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_deep_nesting_is_400_not_a_recursion_error(depth: int) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        with pytest.raises(InvalidInput, match="nested"):
            edge.parse_json(text[: edge.MAX_BODY_BYTES])


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = '{"usernames": ["' + "[" * 500 + '"], "x": "\\"[[[["}'
    assert edge.parse_json(text)["usernames"] == ["[" * 500]


def test_nesting_at_the_limit_parses() -> None:
    depth = edge.MAX_JSON_DEPTH
    assert edge.parse_json("[" * depth + "]" * depth) is not None


@pytest.mark.parametrize(
    "number",
    ["1" * 1_000_000, "1" * (edge.MAX_NUMBER_CHARS + 1), "1." + "5" * 100, "1e" + "9" * 60],
)
def test_long_numbers_are_400(number: str) -> None:
    with pytest.raises((InvalidInput, PayloadTooLarge)):
        edge.parse_json('{"n": ' + number + "}")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_400(literal: str) -> None:
    with pytest.raises(InvalidInput):
        edge.parse_json("[" + literal + "]")


@pytest.mark.parametrize("raw", [b"\xff\xfe", b'{"a": 1', b"", b"{'a': 1}", b"\x00"])
def test_broken_json_is_400(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        edge.parse_json(raw)


def test_a_real_body_parses() -> None:
    body = '{"usernames": ["natgeo", "nasa"], "source": "bulk", "n": 12345678901234567890}'
    assert edge.json_body(body, base64_encoded=False, content_type="APPLICATION/JSON") == {
        "usernames": ["natgeo", "nasa"],
        "source": "bulk",
        "n": 12345678901234567890,
    }


def test_media_type_is_checked_only_when_there_is_a_body() -> None:
    assert edge.json_body("", base64_encoded=False, content_type="text/plain") is None
    with pytest.raises(UnsupportedMediaType):
        edge.json_body("{}", base64_encoded=False, content_type="text/plain")


def test_size_comes_before_media_type() -> None:
    with pytest.raises(PayloadTooLarge):
        edge.json_body("x" * 20_000, base64_encoded=False, content_type="text/plain")


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("resource", "params", "path"),
    [
        ("/api/profile/{username}", {"username": "natgeo/status"}, "/api/profile/natgeo%2Fstatus"),
        (
            "/api/profile/{username}/request",
            {"username": "@NatGeo"},
            "/api/profile/@NatGeo/request",
        ),
        ("/api/profile/{username}", {"username": "a%2Fb"}, "/api/profile/a%252Fb"),
        ("/api/profile/{username}", {"username": "a?b#c"}, "/api/profile/a%3Fb%23c"),
        ("/api/profile/{username}", {"username": "é"}, "/api/profile/%C3%A9"),
        ("/files/{proxy+}", {"proxy": "a/b"}, "/files/a/b"),
        ("/api/health", None, "/api/health"),
    ],
)
def test_the_routed_path_keeps_each_parameter_in_its_segment(
    resource: str, params: dict[str, str] | None, path: str
) -> None:
    assert edge.routing_path(resource, params) == path


def test_an_event_without_a_parameterised_match_is_routed_on_its_path() -> None:
    event = {"resource": "/{proxy+}", "path": "/x/y", "pathParameters": None}
    assert edge.routed_event(event)["path"] == "/x/y"
    event = {"resource": "/api/profile/{username}", "pathParameters": {"username": "a/b"}}
    assert edge.routed_event(event)["path"] == "/api/profile/a%2Fb"


# ---------------------------------------------------------------- who may ask for HIGH


@pytest.mark.parametrize(
    ("source", "bulk", "needed"),
    [
        (Source.FRONTEND, False, False),
        (Source.ADMIN, False, True),
        (Source.API, False, False),
        (Source.CRAWLER, False, False),
        (Source.FRONTEND, True, True),
        (Source.ADMIN, True, True),
        (Source.BULK, True, False),
        (Source.API, True, False),
    ],
)
def test_admin_and_high_bulk_need_the_key(source: Source, bulk: bool, needed: bool) -> None:
    assert needs_admin_key(source, bulk=bulk) is needed


def test_the_key_is_read_only_when_one_is_presented_and_needed() -> None:
    reads: list[int] = []

    def key() -> str:
        reads.append(1)
        return "right-key"

    authorise(Source.BULK, bulk=True, presented_key=None, admin_key=key)
    with pytest.raises(Forbidden, match="needs the admin key"):
        authorise(Source.ADMIN, bulk=False, presented_key=None, admin_key=key)
    with pytest.raises(Forbidden):
        authorise(Source.ADMIN, bulk=False, presented_key="", admin_key=key)
    assert reads == []
    for wrong in ("right-ke", "right-key ", "RIGHT-KEY", "é", "right-key\x00", "\udcff"):
        with pytest.raises(Forbidden):
            authorise(Source.FRONTEND, bulk=True, presented_key=wrong, admin_key=key)
    authorise(Source.ADMIN, bulk=True, presented_key="right-key", admin_key=key)
    assert len(reads) == 7
