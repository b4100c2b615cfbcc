"""API Gateway REST proxy events, as `sam local start-api` would build them.

Routes come from the Api events of the template's functions, so a route missing
from the template is missing locally too.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devstack.template import load_template, resources_of_type


@dataclass(frozen=True)
class Route:
    function_id: str
    method: str
    resource: str  # e.g. /api/profile/{username}/request
    pattern: re.Pattern[str]
    api_key_required: bool


def _pattern(resource: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", resource)
    regex = "".join(
        f"(?P<{p[1:-1].rstrip('+')}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(f"^{regex}$")


def routes(template: dict[str, Any] | None = None) -> list[Route]:
    template = template or load_template()
    found = []
    for function_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event.get("Type") != "Api":
                continue
            props = event["Properties"]
            auth = props.get("Auth", {})
            found.append(
                Route(
                    function_id=function_id,
                    method=props["Method"].upper(),
                    resource=props["Path"],
                    pattern=_pattern(props["Path"]),
                    api_key_required=bool(auth.get("ApiKeyRequired", False)),
                )
            )
    # Literal segments win over parameters, as in API Gateway (bulk-request vs {username}).
    found.sort(key=lambda r: (r.resource.count("{"), -len(r.resource)))
    return found


def match(all_routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """API Gateway's order: the most specific resource whose pattern matches the raw
    (still percent-encoded) path, then that resource's method, else its ANY method.
    A resource that lacks the method is a miss; it never falls back to a less
    specific resource. Path parameters are handed over decoded."""
    wanted = method.upper()
    for route in all_routes:
        found = route.pattern.match(path)
        if found is None:
            continue
        siblings = [r for r in all_routes if r.resource == route.resource]
        chosen = next((r for r in siblings if r.method == wanted), None) or next(
            (r for r in siblings if r.method == "ANY"), None
        )
        if chosen is None:
            return None
        return chosen, {k: unquote(v) for k, v in found.groupdict().items()}
    return None


def proxy_event(
    method: str,
    url: str,
    *,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
    stage: str = "v1",
) -> dict[str, Any]:
    """A REST API (v1) proxy event for one HTTP request."""
    split = urlsplit(url)
    # API Gateway hands the function the decoded path ("%40NatGeo" arrives as "@NatGeo").
    path = unquote(split.path)
    query = parse_qsl(split.query, keep_blank_values=True)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, val in query:
        single[key] = val
        multi.setdefault(key, []).append(val)
    header_map = dict(headers or {})
    is_base64 = False
    text_body: str | None
    if isinstance(body, bytes):
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(body).decode("ascii"), True
    else:
        text_body = body
    request_id = str(uuid.uuid4())
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": header_map or None,
        "multiValueHeaders": {k: [v] for k, v in header_map.items()} or None,
        "queryStringParameters": single or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method.upper(),
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": header_map.get("User-Agent", "")},
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }
