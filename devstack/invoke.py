"""Call a template function's handler in-process, as Lambda would."""

from __future__ import annotations

import importlib
import json
import secrets
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from devstack.apigw import Route, routes
from devstack.gateway import API_KEY_HEADER, gateway_for, stack_api_key
from devstack.lambda_context import LocalContext
from devstack.template import Stack, default_parameters, load_template

Handler = Callable[[dict[str, Any], Any], Any]


def handler_for(function_id: str, template: dict[str, Any] | None = None) -> Handler:
    """Import the handler the template names: CodeUri ../functions/x/ + app.lambda_handler."""
    template = template or load_template()
    props = template["Resources"][function_id]["Properties"]
    code_dir = PurePosixPath(props["CodeUri"].rstrip("/"))
    package = ".".join(part for part in code_dir.parts if part not in ("..", "."))
    module_name, _, attribute = props["Handler"].rpartition(".")
    module = importlib.import_module(f"{package}.{module_name}")
    handler: Handler = getattr(module, attribute)
    return handler


class InProcess:
    """A handler called in this process, as the gateway's Lambda integration. Calls
    are not serialised: tests fire concurrent requests at one handler on purpose."""

    def __init__(self, function_id: str, handler: Handler) -> None:
        self.function_id = function_id
        self.handler = handler

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.handler(event, LocalContext(function_name=self.function_id))


class LocalApi:
    """The template's API in-process, through the one API Gateway emulation
    (devstack.gateway) `make run` serves over HTTP: the same routes, admin key,
    CORS and gateway responses, with the handlers called in this process.

    Like a configured client it knows the stack's admin key, and sends it only
    when asked (`admin=True`). Given a template instead of a stack, the API key
    is a fresh one nobody knows, as with a deployed stack whose key you lack."""

    def __init__(self, stack: Stack | dict[str, Any] | None = None) -> None:
        if isinstance(stack, Stack):
            self.api_key = stack_api_key(stack)
        else:
            template = stack or load_template()
            stack = Stack(template=template, parameters=default_parameters(template))
            self.api_key = secrets.token_urlsafe(24)
        self.stack = stack
        self._routes = routes(stack.template)
        functions = {
            function_id: InProcess(function_id, handler_for(function_id, stack.template))
            for function_id in dict.fromkeys(r.function_id for r in self._routes)
        }
        self.gateway = gateway_for(stack, functions, api_key=self.api_key)

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        admin: bool = False,
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, decoded JSON or text) for one JSON request: a body that
        is not already str or bytes is sent as JSON, with that Content-Type unless
        `headers` say otherwise; `admin` adds the admin key's header."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        if admin and self.api_key is not None:
            sent[API_KEY_HEADER] = self.api_key
        raw = json.dumps(body) if body is not None and not isinstance(body, str | bytes) else body
        return self.send(method, url, body=raw, headers=sent)

    def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """One request exactly as a client sent it: body and headers untouched."""
        raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        answer = self.gateway.handle(method, url, list((headers or {}).items()), raw)
        # A repeated header reads as one, its values joined (RFC 9110 5.3), as an
        # HTTP client's header map shows it.
        found: dict[str, str] = {}
        for key, value in answer.headers:
            found[key] = f"{found[key]}, {value}" if key in found else value
        text = answer.body.decode("utf-8", "replace")
        try:
            payload: Any = json.loads(text) if text else None
        except ValueError:
            payload = text
        return answer.status, found, payload
