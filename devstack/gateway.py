"""API Gateway (REST, Lambda proxy) in front of the template's API functions, as
`make run` serves it over HTTP and the tests call it in-process (devstack.invoke.LocalApi):
routing on the raw path, the admin API key, CORS, the template's GatewayResponses,
the payload quota, the proxy event and the proxy response."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from devstack.apigw import Route, match, proxy_event, routes
from devstack.template import Stack, resources_of_type
from devstack.workers import log_invocation_error

log = logging.getLogger("devstack")

API_KEY_HEADER = "x-api-key"

# What the template's Api Cors section says today; used when it says nothing.
DEFAULT_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET,POST,OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type,X-Api-Key",
}
_CORS_KEYS = {
    "AllowOrigin": "Access-Control-Allow-Origin",
    "AllowMethods": "Access-Control-Allow-Methods",
    "AllowHeaders": "Access-Control-Allow-Headers",
    "MaxAge": "Access-Control-Max-Age",
    "AllowCredentials": "Access-Control-Allow-Credentials",
}


def cors_headers(stack: Stack) -> dict[str, str]:
    """CORS headers from the template's AWS::Serverless::Api `Cors` property."""
    for api in resources_of_type(stack.template, "AWS::Serverless::Api").values():
        cors = api.get("Properties", {}).get("Cors")
        if cors is None:
            continue
        cors = stack.resolve(cors)
        if isinstance(cors, str):
            cors = {"AllowOrigin": cors}
        headers = dict(DEFAULT_CORS)
        for key, header in _CORS_KEYS.items():
            if key in cors:
                # SAM wants these quoted ("'*'"), as API Gateway mapping values are.
                headers[header] = str(cors[key]).strip("'")
        return headers
    return dict(DEFAULT_CORS)


# ------------------------------------------------------------------ gateway

# API Gateway's payload quota for REST APIs: larger requests never reach a function.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
# The methods a REST API resource can declare; anything else never matches a route.
API_GATEWAY_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# API Gateway's own answer body when the template customises none.
DEFAULT_ERROR_TEMPLATE = '{"message": $context.error.messageString}'


@dataclass(frozen=True)
class GatewayResponse:
    """One of the Api's GatewayResponses: the body template and the headers API
    Gateway puts on its own answers of that kind (never on a function's)."""

    template: str = DEFAULT_ERROR_TEMPLATE
    headers: tuple[tuple[str, str], ...] = ()


def gateway_responses(stack: Stack) -> dict[str, GatewayResponse]:
    """The Api's GatewayResponses, by type (DEFAULT_4XX, DEFAULT_5XX, ...)."""
    for api in resources_of_type(stack.template, "AWS::Serverless::Api").values():
        responses = stack.resolve(api.get("Properties", {}).get("GatewayResponses") or {})
        return {
            kind: GatewayResponse(
                template=str(
                    (spec.get("ResponseTemplates") or {}).get(
                        "application/json", DEFAULT_ERROR_TEMPLATE
                    )
                ),
                # Header values are mapping expressions: a quoted literal here.
                headers=tuple(
                    (str(name), str(value).strip("'"))
                    for name, value in (
                        (spec.get("ResponseParameters") or {}).get("Headers") or {}
                    ).items()
                ),
            )
            for kind, spec in responses.items()
        }
    return {}


def render_error(template: str, message: str) -> bytes:
    """A gateway response template with API Gateway's $context.error variables."""
    text = template.replace("$context.error.messageString", json.dumps(message))
    return text.replace("$context.error.message", message).encode("utf-8")


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Invocable(Protocol):
    def invoke(self, event: dict[str, Any]) -> Any: ...


class Gateway:
    """API Gateway (REST, Lambda proxy) in front of the template's API functions:
    routing on the raw path, API keys, CORS, its own error answers (in the
    template's GatewayResponses), the proxy event and the proxy response."""

    def __init__(
        self,
        api_routes: Sequence[Route],
        functions: Mapping[str, Invocable],
        *,
        api_key: str | None = None,
        cors: Mapping[str, str] | None = None,
        responses: Mapping[str, GatewayResponse] | None = None,
    ) -> None:
        self._routes = list(api_routes)
        self._functions = dict(functions)
        self._api_key = api_key
        self._cors = dict(cors or DEFAULT_CORS)
        self._responses = dict(responses or {})
        if api_key is None and any(r.api_key_required for r in self._routes):
            raise ValueError("a route requires an API key but none was given")

    def handle(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> HttpAnswer:
        """One HTTP request (target = path and query, still percent-encoded). A
        function's answer passes as the function gave it (Lambda proxy: CORS headers
        are the function's to add); the gateway's own answers carry the headers the
        template gives them."""
        return self._handle(method.upper(), target, headers, body)

    def too_large(self) -> HttpAnswer:
        """A payload over API Gateway's quota: refused before any routing, whether
        the body came whole (in-process) or was cut off while read (over HTTP)."""
        return self.error(413, "Request Too Long", "RequestTooLargeException")

    def error(self, status: int, message: str, error_type: str) -> HttpAnswer:
        """API Gateway's own refusal: DEFAULT_4XX / DEFAULT_5XX of the template."""
        kind = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        response = self._responses.get(kind, GatewayResponse())
        return HttpAnswer(
            status=status,
            headers=[
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", error_type),
                *response.headers,
            ],
            body=render_error(response.template, message),
        )

    def _handle(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> HttpAnswer:
        if len(body) > MAX_PAYLOAD_BYTES:
            return self.too_large()
        path = target.split("?", 1)[0]
        if method == "OPTIONS":
            if any(route.pattern.match(path) for route in self._routes):
                return HttpAnswer(200, list(self._cors.items()), b"")
            return self._missing_token()
        found = match(self._routes, method, path) if method in API_GATEWAY_METHODS else None
        if found is None:
            return self._missing_token()
        route, params = found
        if route.api_key_required and not self._key_ok(headers):
            return self.error(403, "Forbidden", "ForbiddenException")
        function = self._functions.get(route.function_id)
        if function is None:
            log.error("%s is not loaded; %s %s cannot be served", route.function_id, method, path)
            return self._internal_error()
        event = proxy_event(
            method,
            target,
            resource=route.resource,
            path_parameters=params,
            headers=dict(headers),
            body=body or None,
        )
        if route.api_key_required:
            # API Gateway tells the function which key let the request through.
            event["requestContext"]["identity"]["apiKey"] = self._api_key
            event["requestContext"]["identity"]["apiKeyId"] = "local"
        try:
            result = function.invoke(event)
        except Exception as exc:
            log_invocation_error(route.function_id, f"{method} {path}", exc)
            return self._internal_error()
        return self._from_proxy_response(route.function_id, result)

    def _key_ok(self, headers: Sequence[tuple[str, str]]) -> bool:
        given = next((v for k, v in headers if k.lower() == API_KEY_HEADER), None)
        return (
            given is not None
            and self._api_key is not None
            and hmac.compare_digest(
                given.encode("utf-8", "surrogateescape"), self._api_key.encode("utf-8")
            )
        )

    def _missing_token(self) -> HttpAnswer:
        # What API Gateway answers for a path (or method) no resource declares.
        return self.error(
            403, "Missing Authentication Token", "MissingAuthenticationTokenException"
        )

    def _internal_error(self) -> HttpAnswer:
        # What API Gateway answers when the Lambda integration fails.
        return self.error(502, "Internal server error", "InternalServerErrorException")

    def _from_proxy_response(self, function_id: str, result: Any) -> HttpAnswer:
        try:
            proxy = ProxyResponse.model_validate(result)
            body = (
                base64.b64decode(proxy.body or "", validate=True)
                if proxy.isBase64Encoded
                else (proxy.body or "").encode("utf-8")
            )
        except (ValidationError, binascii.Error) as exc:
            # API Gateway's answer to a response it cannot map, whatever its fault.
            log.error("%s returned a malformed Lambda proxy response: %s", function_id, exc)
            return self._internal_error()
        pairs: list[tuple[str, str]] = [(k, str(v)) for k, v in proxy.headers.items()]
        for key, values in proxy.multiValueHeaders.items():
            for value in values:
                if (key, str(value)) not in pairs:
                    pairs.append((key, str(value)))
        if not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("Content-Type", "application/json"))
        return HttpAnswer(proxy.statusCode, pairs, body)


class ProxyResponse(BaseModel):
    """A Lambda proxy integration's answer, as API Gateway accepts it: anything
    else (a status that is not a number, a body that is not a string, base64 that
    does not decode) is its 502."""

    statusCode: int = Field(ge=100, le=599)
    headers: dict[str, StrictStr | StrictInt | StrictFloat | StrictBool] = {}
    multiValueHeaders: dict[str, list[StrictStr | StrictInt | StrictFloat | StrictBool]] = {}
    body: StrictStr | None = None
    isBase64Encoded: bool = False

    @field_validator("headers", "multiValueHeaders", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


def stack_api_key(stack: Stack) -> str | None:
    """The admin key API Gateway checks: the template's (its secret's value, as
    the stack generated it), else a fresh one when a route requires a key."""
    keys = stack.api_keys()
    if keys:
        return keys[0]
    return (
        secrets.token_urlsafe(24)
        if any(r.api_key_required for r in routes(stack.template))
        else None
    )


def gateway_for(
    stack: Stack, functions: Mapping[str, Invocable], *, api_key: str | None
) -> Gateway:
    """The template's API as API Gateway serves it: its routes, the admin key, its
    Cors and its GatewayResponses, in front of `functions` (by logical id)."""
    return Gateway(
        routes(stack.template),
        functions,
        api_key=api_key,
        cors=cors_headers(stack),
        responses=gateway_responses(stack),
    )
