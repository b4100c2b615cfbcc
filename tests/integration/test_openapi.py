"""The OpenAPI document is generated from the code; it and the template agree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
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
    declared = {(r.method, r.resource) for r in routes(template) if r.method != "ANY"}
    assert documented == declared - UNDOCUMENTED
    # Every documented path also takes ANY other method to the function, which
    # answers 405 with Allow instead of API Gateway's "Missing Authentication Token".
    catch_all = {r.resource for r in routes(template) if r.method == "ANY"}
    assert catch_all == set(spec["paths"])


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
    # "Try it out" calls the stage the page was served from (the event's stage is v1).
    assert re.search(r'"servers":\s*\[\s*\{\s*"url":\s*"/v1"', body)
    assert "ViralSpot intake API" in body


# What a cold start of the API function imports, checked in a fresh interpreter: the
# test process has imported everything already.
_COLD_START = """
import sys
from devstack.invoke import LocalApi
from devstack.template import load_template
api = LocalApi(load_template())
print(api.request("GET", "/api/health")[0], api.request("POST", "/api/profile/a%20b/request")[0])
print("aws_lambda_powertools.event_handler.openapi.models" in sys.modules)
"""


def test_requests_do_not_import_the_openapi_models() -> None:
    # About a third of the API function's import time (bench/coldstart.py): only the
    # documentation routes may pay for them.
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "layers" / "common"), str(root)]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "test",
    }
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", _COLD_START],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    answers, imported = done.stdout.strip().splitlines()[-2:]
    assert answers == "200 400"
    assert imported == "False"
