"""Call a template function's handler in-process, as Lambda would."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from devstack.apigw import Route, match, proxy_event, routes
from devstack.lambda_context import LocalContext
from devstack.template import load_template

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


class LocalApi:
    """Routes HTTP requests to the template's API functions, in-process."""

    def __init__(self, template: dict[str, Any] | None = None) -> None:
        self._template = template or load_template()
        self._routes = routes(self._template)

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
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, decoded JSON or text) for one request, like API Gateway."""
        path = url.split("?", 1)[0]
        found = match(self._routes, method, path)
        if found is None:
            return (
                403 if method != "OPTIONS" else 200,
                {},
                {"message": "Missing Authentication Token"},
            )
        route, params = found
        raw = json.dumps(body) if body is not None and not isinstance(body, str | bytes) else body
        event = proxy_event(
            method,
            url,
            resource=route.resource,
            path_parameters=params,
            headers={"Content-Type": "application/json", **(headers or {})},
            body=raw,
        )
        result = handler_for(route.function_id, self._template)(
            event, LocalContext(function_name=route.function_id)
        )
        response_headers = dict(result.get("headers") or {})
        for key, values in (result.get("multiValueHeaders") or {}).items():
            response_headers[key] = ",".join(values)
        text = result.get("body") or ""
        try:
            payload: Any = json.loads(text) if text else None
        except ValueError:
            payload = text
        return int(result["statusCode"]), response_headers, payload
