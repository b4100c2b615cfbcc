"""What the API accepts at its edge, before any rule looks at a request.

Everything here is about bytes a client controls, so every limit is explicit and
every refusal is a 4xx with a sentence saying why: a body too large (413), a body
that is not JSON (415), JSON nested deeper or holding longer numbers than any
real request needs (400). Python's own parser would turn those into a
RecursionError or a ValueError deep inside a handler, which is a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from viralspot.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

# The largest real body, a bulk request of 50 thirty-character names, is under
# 3 KiB; 16 KiB leaves room for whitespace and a longer future body, and keeps the
# nesting scan below cheap.
MAX_BODY_BYTES = 16 * 1024
# A bulk body is two levels deep; no request of this API needs more than a few.
MAX_JSON_DEPTH = 32
# Longer than any count or score, shorter than anything that costs time to parse
# (Python refuses integers over 4,300 digits with a ValueError).
MAX_NUMBER_CHARS = 40
# A posts cursor is about 200 characters; nothing this API issues comes near this.
MAX_CURSOR_CHARS = 1024
JSON_MEDIA_TYPE = "application/json"
_UTF8 = frozenset({"utf-8", "utf8"})
# Strings first, so brackets inside them are not counted as nesting.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
# Printable ASCII stays as it is in a routed segment (the resolver's own pattern
# decides what a parameter may hold); '/', '%', '?' and '#' would change the route.
_SEGMENT_SAFE = "".join(chr(c) for c in range(32, 127) if chr(c) not in "/%?#")
_GREEDY_SAFE = _SEGMENT_SAFE + "/"


def body_bytes(body: str | None, *, base64_encoded: bool) -> bytes:
    """The body as the client sent it, refused when over MAX_BODY_BYTES."""
    if not body:
        return b""
    # Cheap bound first: base64 is 4/3 of the payload, UTF-8 at most 4 bytes a char.
    if len(body) > MAX_BODY_BYTES * 4:
        raise PayloadTooLarge(_too_large())
    if base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("The request body is not valid base64") from None
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(_too_large())
    return raw


def _too_large() -> str:
    return f"The request body is larger than {MAX_BODY_BYTES} bytes"


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """`type/subtype` in lower case, and the parameters (names lower-cased)."""
    if not content_type:
        return "", {}
    kind, *raw_params = content_type.split(";")
    params: dict[str, str] = {}
    for raw in raw_params:
        name, sep, val = raw.partition("=")
        if sep:
            params[name.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), params


def require_json(content_type: str | None) -> None:
    """JSON (any case, with parameters) or no Content-Type at all; anything else is 415."""
    if content_type is None or not content_type.strip():
        return  # as Powertools and most JSON APIs do: an untyped body is read as JSON
    kind, params = media_type(content_type)
    if kind == JSON_MEDIA_TYPE and params.get("charset", "utf-8").lower() in _UTF8:
        return
    raise UnsupportedMediaType(
        "The request body must be JSON: send Content-Type: application/json (UTF-8)"
    )


def check_nesting(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    depth = 0
    for found in _BRACKET.finditer(_STRING.sub("", text)):
        if found.group() in "[{":
            depth += 1
            if depth > limit:
                raise InvalidInput(f"The JSON body is nested more than {limit} levels deep")
        else:
            depth -= 1


def _number(kind: type[int] | type[float]) -> Any:
    def parse(literal: str) -> int | float:
        if len(literal) > MAX_NUMBER_CHARS:
            raise InvalidInput(f"A number in the JSON body is longer than {MAX_NUMBER_CHARS} chars")
        return kind(literal)

    return parse


def _constant(literal: str) -> Any:
    raise InvalidInput(f"{literal} is not JSON")


def parse_json(raw: bytes | str) -> Any:
    """JSON with the edge's limits. Every failure is InvalidInput (400)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise InvalidInput("The request body must be UTF-8 JSON") from None
    if len(text) > MAX_BODY_BYTES:
        raise PayloadTooLarge(_too_large())
    check_nesting(text)
    try:
        return json.loads(
            text,
            parse_int=_number(int),
            parse_float=_number(float),
            parse_constant=_constant,
        )
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"The request body is not valid JSON ({exc.msg} at {exc.pos})") from None
    except RecursionError:  # belt and braces: check_nesting should have refused it
        raise InvalidInput("The JSON body is nested too deeply") from None


def json_body(body: str | None, *, base64_encoded: bool, content_type: str | None) -> Any:
    """A request body as the API accepts it: size, then media type, then JSON."""
    raw = body_bytes(body, base64_encoded=base64_encoded)
    if not raw:
        return None
    require_json(content_type)
    return parse_json(raw)


def routing_path(resource: str, path_parameters: Mapping[str, str] | None) -> str:
    """The path the function routes on: the resource API Gateway matched, with its
    parameters filled in. A decoded `/` inside a parameter (`natgeo%2Fstatus`) stays
    inside that parameter instead of reaching another route."""

    def fill(found: re.Match[str]) -> str:
        name = found.group(1)
        value = (path_parameters or {}).get(name.rstrip("+"), "")
        # A greedy {name+} spans segments by definition; any other stays one segment.
        return quote(value, safe=_GREEDY_SAFE if name.endswith("+") else _SEGMENT_SAFE)

    return re.sub(r"\{([^}]+)\}", fill, resource)


def routed_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The proxy event with `path` rebuilt from the matched resource (see routing_path)."""
    resource = event.get("resource")
    parameters = event.get("pathParameters") or {}
    names = [n.rstrip("+") for n in re.findall(r"\{([^}]+)\}", resource or "")]
    if not names or not all(isinstance(parameters.get(n), str) for n in names):
        return dict(event)  # not an API Gateway match of a parameterised resource
    return {**event, "path": routing_path(str(resource), parameters)}
