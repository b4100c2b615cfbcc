"""The OpenAPI document is generated from the code; it and the template agree."""

from __future__ import annotations

import re
from typing import Any

from devstack.apigw import routes
from devstack.invoke import LocalApi

# Served by the API function but deliberately not part of the API description.
UNDOCUMENTED = {("GET", "/"), ("GET", "/api/docs"), ("GET", "/api/openapi.json")}


def document(api: LocalApi) -> dict[str, Any]:
    code, headers, body = api.request("GET", "/api/openapi.json")
    assert code == 200
    assert headers["Content-Type"].startswith("application/json")
    assert isinstance(body, dict)
    return body


def test_every_template_route_is_documented_and_vice_versa(
    api: LocalApi, template: dict[str, Any]
) -> None:
    spec = document(api)
    documented = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    }
    declared = {(r.method, r.resource) for r in routes(template)} - UNDOCUMENTED
    assert documented == declared


def test_document_describes_parameters_responses_and_errors(api: LocalApi) -> None:
    spec = document(api)
    request = spec["paths"]["/api/profile/{username}/request"]["post"]
    params = {p["name"]: p for p in request["parameters"]}
    assert params["username"]["in"] == "path"
    assert params["source"]["in"] == "query"
    assert set(request["responses"]) >= {"200", "400", "404", "500", "503"}
    error = request["responses"]["400"]["content"]["application/json"]["schema"]
    assert set(error["properties"]) == {"success", "detail"}
    posts = spec["paths"]["/api/profile/{username}/posts"]["get"]
    assert {p["name"] for p in posts["parameters"]} == {"username", "sort", "limit", "cursor"}
    admin = spec["paths"]["/api/viral-ideas/process-pending"]["post"]
    assert admin["security"] == [{"apiKey": []}]
    assert {p["name"] for p in admin["parameters"]} == {"cursor", "limit"}
    pending = admin["responses"]["200"]["content"]["application/json"]["schema"]
    assert pending["$ref"].endswith("Success_ProcessPendingResult_")
    result = spec["components"]["schemas"]["ProcessPendingResult"]["properties"]
    assert {"has_more", "next_cursor", "dispatched", "examined"} <= set(result)
    assert spec["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"


def test_swagger_ui_is_served_with_its_assets_inline(api: LocalApi) -> None:
    code, headers, body = api.request("GET", "/api/docs")
    assert code == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in body
    # Offline: no script or stylesheet fetched from another host.
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', body)
