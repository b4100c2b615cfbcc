"""Security policies of infra/template.yaml, read with the loader the stack uses.

These are the properties checkov cannot see (it knows neither SAM's inline policies
nor this design) or sees wrongly (SSE-SQS): least-privilege IAM, the API key on
exactly the admin routes, a usage plan, a scoped SSM permission, no secrets in the
template, encrypted and recoverable tables, encrypted queues with dead-letter queues.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.template import load_template, resources_of_type

ADMIN_ROUTES = {
    ("POST", "/api/viral-ideas/process-pending"),
    ("POST", "/api/viral-ideas/redrive"),
}
# Data-plane calls the functions make; anything else (Scan, DeleteTable, Purge...)
# needs a reason and an update here.
ALLOWED_ACTIONS = {
    "dynamodb": {
        "GetItem",
        "BatchGetItem",
        "Query",
        "PutItem",
        "UpdateItem",
        "BatchWriteItem",
        "ConditionCheckItem",
    },
    "sqs": {
        "SendMessage",
        "GetQueueAttributes",
        "ReceiveMessage",
        "DeleteMessage",
        # redrive: SQS moves dead letters back itself (sqs_queues.SqsQueues.redrive)
        "StartMessageMoveTask",
        "ListMessageMoveTasks",
    },
    "ssm": {"GetParameter"},
    "secretsmanager": {"GetSecretValue"},
}
RESOURCE_TYPE_OF_SERVICE = {
    "dynamodb": "AWS::DynamoDB::Table",
    "sqs": "AWS::SQS::Queue",
    "secretsmanager": "AWS::SecretsManager::Secret",
}
# SAM policy templates: each grants more than one named action on a whole resource.
SAM_POLICY_TEMPLATE = re.compile(r"Policy$")
SECRET_NAME = re.compile(r"key|token|secret|password|credential", re.IGNORECASE)
SECRET_VALUE = [
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."),  # JWT
    re.compile(r"\b(sk|pk|rk)_(live|test)_[A-Za-z0-9]{16,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    re.compile(r"\b[0-9a-f]{32,}\b"),  # bare hex keys (RapidAPI keys are 50 hex chars)
    re.compile(
        r"(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[a-z])(?=[A-Za-z0-9+/_-]*[A-Z])"
        r"\b[A-Za-z0-9+/_-]{32,}={0,2}"
    ),  # long mixed-case base64-ish tokens
]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = resources_of_type(template, "AWS::Serverless::Function")
    assert found, "the template declares no functions"
    return found


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement a function gets: SAM inline policies and IAM resources."""
    for name, function in functions(template).items():
        for policy in function["Properties"].get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                for statement in policy["Statement"]:
                    yield name, statement
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"):
        for name, resource in resources_of_type(template, kind).items():
            props = resource.get("Properties", {})
            documents = [props.get("PolicyDocument")] + [
                p.get("PolicyDocument") for p in props.get("Policies", [])
            ]
            for document in filter(None, documents):
                for statement in document.get("Statement", []):
                    yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def all_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from all_strings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from all_strings(value, f"{path}[{index}]")


# ---------------------------------------------------------------- IAM


def test_functions_have_only_inline_least_privilege_policies(template: dict[str, Any]) -> None:
    for name, function in functions(template).items():
        props = function["Properties"]
        assert "Role" not in props, f"{name}: a role defined elsewhere cannot be checked here"
        policies = props.get("Policies")
        assert isinstance(policies, list), f"{name}: no explicit Policies"
        assert policies, f"{name}: no explicit Policies"
        for policy in policies:
            # A string is a managed policy (AmazonDynamoDBFullAccess, AWSLambdaExecute...);
            # a one-key mapping ending in Policy is a SAM policy template
            # (DynamoDBCrudPolicy: table-wide CRUD including Scan and DeleteItem).
            assert not isinstance(policy, str), f"{name}: managed policy {policy}"
            assert isinstance(policy, dict), f"{name}: {policy!r}"
            templates = [key for key in policy if SAM_POLICY_TEMPLATE.search(key)]
            assert not templates, f"{name}: SAM policy template(s) {templates}"
            assert set(policy) == {"Statement"}, f"{name}: {sorted(policy)}"


def test_every_statement_allows_named_actions_on_named_resources(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    seen = 0
    for owner, statement in statements(template):
        seen += 1
        where = f"{owner}/{statement.get('Sid', '?')}"
        assert statement.get("Effect") == "Allow", where
        assert "NotAction" not in statement, where
        assert "NotResource" not in statement, where
        actions = as_list(statement["Action"])
        services = set()
        for action in actions:
            assert isinstance(action, str), where
            assert "*" not in action, f"{where}: wildcard action {action}"
            service, _, call = action.partition(":")
            assert call in ALLOWED_ACTIONS.get(service, set()), f"{where}: {action}"
            services.add(service)
        assert len(services) == 1, f"{where}: one service per statement, got {services}"
        (service,) = services
        for resource in as_list(statement["Resource"]):
            assert resource != "*", f"{where}: Resource '*'"
            if service == "ssm":
                check_ssm_resource(where, resource)
                continue
            target = resource_target(where, resource)
            assert target in resources, f"{where}: {target} is not in the template"
            kind = resources[target]["Type"]
            assert kind == RESOURCE_TYPE_OF_SERVICE[service], f"{where}: {service} on {kind}"
    assert seen >= 5, "expected the functions' inline statements"


def resource_target(where: str, resource: Any) -> str:
    """The logical id a Resource entry names: `!GetAtt X.Arn`, `!Sub "${X.Arn}/index/..."`,
    or `!Ref X` of a secret (whose Ref is its ARN)."""
    assert isinstance(resource, dict), f"{where}: {resource!r}"
    assert len(resource) == 1, f"{where}: {resource!r}"
    ((function, argument),) = resource.items()
    if function == "Ref":
        return str(argument)
    if function == "Fn::GetAtt":
        logical, attribute = argument
        assert attribute == "Arn", f"{where}: GetAtt {logical}.{attribute}"
        return str(logical)
    assert function == "Fn::Sub", f"{where}: {resource!r}"
    assert isinstance(argument, str), f"{where}: Sub with variables {argument!r}"
    found = re.fullmatch(r"\$\{(\w+)\.Arn\}/index/([A-Za-z0-9_.-]+|\*)", argument)
    assert found, f"{where}: {argument!r} is not a table's index ARN"
    return found.group(1)


def check_ssm_resource(where: str, resource: Any) -> None:
    assert isinstance(resource, dict), f"{where}: {resource!r}"
    assert set(resource) == {"Fn::Sub"}, f"{where}: {resource!r}"
    arn = resource["Fn::Sub"]
    assert arn == (
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}"
        ":parameter${RapidApiKeyParameterName}"
    ), f"{where}: {arn}"
    assert "*" not in arn


def test_no_statement_lets_a_function_scan_a_table(template: dict[str, Any]) -> None:
    # DESIGN.md: nothing scans the whole table on a request path. Without the
    # permission, no code path can.
    for owner, statement in statements(template):
        assert "dynamodb:Scan" not in as_list(statement["Action"]), owner


def test_only_the_worker_reads_the_provider_key_and_only_that_parameter(
    template: dict[str, Any],
) -> None:
    readers = {
        owner
        for owner, statement in statements(template)
        if any(a.startswith("ssm:") for a in as_list(statement["Action"]))
    }
    assert readers == {"ProcessProfileFunction"}
    worker = template["Resources"]["ProcessProfileFunction"]["Properties"]
    env = worker["Environment"]["Variables"]
    # The function is told the parameter's name, the same one its policy allows.
    assert env["RAPIDAPI_KEY_PARAMETER"] == {"Ref": "RapidApiKeyParameterName"}
    parameter = template["Parameters"]["RapidApiKeyParameterName"]
    assert parameter["Default"].startswith("/")
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch(parameter["Default"])
    # The pattern keeps the ARN exact: no wildcard, no second parameter.
    for widening in ("/viralspot/*", "*", "/a,/b", "viralspot/key", "/a key"):
        assert not pattern.fullmatch(widening), widening


# ---------------------------------------------------------------- API


def api_events(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for function in functions(template).values():
        for event in function["Properties"].get("Events", {}).values():
            if event.get("Type") == "Api":
                props = event["Properties"]
                yield props["Method"].upper(), props["Path"], props


def test_api_key_is_required_on_exactly_the_admin_routes(template: dict[str, Any]) -> None:
    (api,) = resources_of_type(template, "AWS::Serverless::Api").values()
    # The default must stay public, or every public route would demand a key.
    assert api["Properties"].get("Auth", {}).get("ApiKeyRequired", False) is False
    requiring = set()
    public = set()
    for method, path, props in api_events(template):
        required = props.get("Auth", {}).get("ApiKeyRequired", False)
        assert isinstance(required, bool), (method, path)
        (requiring if required else public).add((method, path))
    assert requiring == ADMIN_ROUTES
    assert ("POST", "/api/profile/{username}/request") in public
    assert ("GET", "/api/health") in public
    assert not public & ADMIN_ROUTES


def test_usage_plan_throttles_and_caps_the_admin_key(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    (api,) = resources_of_type(template, "AWS::Serverless::Api").values()
    # The key and its plan are declared, not generated by SAM: the function checks the same key.
    assert "UsagePlan" not in api["Properties"].get("Auth", {})
    (key_id,) = resources_of_type(template, "AWS::ApiGateway::ApiKey")
    plans = resources_of_type(template, "AWS::ApiGateway::UsagePlan")
    links = resources_of_type(template, "AWS::ApiGateway::UsagePlanKey").values()
    (link,) = [k["Properties"] for k in links if k["Properties"]["KeyId"] == {"Ref": key_id}]
    assert link["KeyType"] == "API_KEY"
    plan = plans[link["UsagePlanId"]["Ref"]]["Properties"]
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "Api"}, "Stage": {"Ref": "Api.Stage"}}]
    throttle, quota = plan.get("Throttle", {}), plan.get("Quota", {})
    assert throttle.get("RateLimit", 0) > 0, plan
    assert throttle.get("BurstLimit", 0) >= throttle["RateLimit"], plan
    assert quota.get("Limit", 0) > 0, plan
    assert quota.get("Period") in ("DAY", "WEEK", "MONTH"), plan
    # And the whole stage is throttled, keys or not.
    settings = api["Properties"]["MethodSettings"]
    assert any(
        s.get("ResourcePath") == "/*" and "ThrottlingRateLimit" in s and "ThrottlingBurstLimit" in s
        for s in settings
    )
    assert resources[key_id]["Properties"]["Enabled"] is True


def test_the_admin_key_is_generated_into_secrets_manager_and_read_only_by_the_api(
    template: dict[str, Any],
) -> None:
    secrets = resources_of_type(template, "AWS::SecretsManager::Secret")
    assert set(secrets) == {"AdminKeySecret", "CursorKeySecret"}
    for name, secret in secrets.items():
        generated = secret["Properties"].get("GenerateSecretString", {})
        assert generated.get("PasswordLength", 0) >= 32, name
        assert "SecretString" not in secret["Properties"], f"{name}: a value in the template"
    (key,) = resources_of_type(template, "AWS::ApiGateway::ApiKey").values()
    assert key["Properties"]["Value"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${AdminKeySecret}:SecretString}}"
    }
    readers = {
        owner
        for owner, statement in statements(template)
        if any(a.startswith("secretsmanager:") for a in as_list(statement["Action"]))
    }
    assert readers == {"RequestProfileFunction"}
    env = template["Resources"]["RequestProfileFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ADMIN_KEY_SECRET"] == {"Ref": "AdminKeySecret"}
    assert env["CURSOR_KEY_SECRET"] == {"Ref": "CursorKeySecret"}


def test_a_waf_rate_limit_guards_the_stage_by_default(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    limit = parameters["WafRateLimit"]
    assert int(limit["Default"]) >= 10, "on by default, with a stated limit"
    assert int(parameters["WafWriteRateLimit"]["Default"]) < int(limit["Default"])
    assert template["Conditions"]["WafEnabled"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WafRateLimit"}, 0]}]
    }
    (acl_id, acl) = next(iter(resources_of_type(template, "AWS::WAFv2::WebACL").items()))
    assert acl["Condition"] == "WafEnabled"
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL"
    rules = {rule["Name"]: rule for rule in props["Rules"]}
    by_ip = [
        rule["Statement"]["RateBasedStatement"]
        for rule in rules.values()
        if "RateBasedStatement" in rule["Statement"]
    ]
    assert {r["Limit"]["Ref"] for r in by_ip} == {"WafRateLimit", "WafWriteRateLimit"}
    assert all(r["AggregateKeyType"] == "IP" for r in by_ip)
    for rule in rules.values():
        if "RateBasedStatement" in rule["Statement"]:
            assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    (association,) = resources_of_type(template, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Condition"] == "WafEnabled"
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    prefix, stage = association["Properties"]["ResourceArn"]["Fn::Join"][1]
    assert prefix["Fn::Sub"].endswith("::/restapis/${Api}/stages/")
    assert stage == {"Ref": "Api.Stage"}


def test_the_work_a_flood_can_cause_is_bounded(template: dict[str, Any]) -> None:
    """Whatever reaches the queues, the worker runs at most its reserved concurrency,
    each queue at most its cap, and the low queue (bulk, crawler) below the total."""
    parameters = template["Parameters"]

    def default(value: Any) -> int:
        return int(parameters[value["Ref"]]["Default"]) if isinstance(value, dict) else int(value)

    worker = template["Resources"]["ProcessProfileFunction"]["Properties"]
    # Reserved when WorkerReservedConcurrency is not 0: its default is the bound.
    reservation = worker["ReservedConcurrentExecutions"]
    if "Fn::If" in reservation:
        reservation = reservation["Fn::If"][1]
    reserved = default(reservation)
    caps = {
        name: default(event["Properties"]["ScalingConfig"]["MaximumConcurrency"])
        for name, event in worker["Events"].items()
        if event["Type"] == "SQS"
    }
    assert set(caps) == {"HighQueue", "MediumQueue", "LowQueue"}
    assert sum(caps.values()) <= reserved
    assert caps["LowQueue"] < reserved


def test_gateway_refusals_are_the_api_envelope(template: dict[str, Any]) -> None:
    (api,) = resources_of_type(template, "AWS::Serverless::Api").values()
    responses = api["Properties"]["GatewayResponses"]
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        body = responses[kind]["ResponseTemplates"]["application/json"]
        rendered = json.loads(body.replace("$context.error.messageString", '"Forbidden"'))
        assert rendered == {"success": False, "detail": "Forbidden"}
        assert "Access-Control-Allow-Origin" in responses[kind]["ResponseParameters"]["Headers"]


# ---------------------------------------------------------------- secrets


def looks_secret(text: str) -> bool:
    return any(pattern.search(text) for pattern in SECRET_VALUE)


@pytest.mark.parametrize(
    "text",
    [
        "AKIAIOSFODNN7EXAMPLE",
        "0123456789abcdef0123456789abcdef0123456789abcdef01",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ],
)
def test_the_secret_detector_detects(text: str) -> None:
    assert looks_secret(text)


def test_no_secret_sits_in_the_template(template: dict[str, Any]) -> None:
    for path, text in all_strings(template):
        assert not looks_secret(text), f"{path} looks like a secret"
    for name, parameter in template.get("Parameters", {}).items():
        if SECRET_NAME.search(name):
            # A parameter about a secret names where it is kept; it never holds it.
            assert name.endswith("ParameterName"), name
            assert parameter.get("Default", "/").startswith("/"), name
    secrets = resources_of_type(template, "AWS::SecretsManager::Secret")
    for function_name, function in functions(template).items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        global_vars = template["Globals"]["Function"]["Environment"]["Variables"]
        for key, value in {**global_vars, **variables}.items():
            if not SECRET_NAME.search(key):
                continue
            # A variable about a secret names where it is kept: an SSM parameter's
            # name, or a Secrets Manager secret of this template (its ARN).
            if key.endswith("_SECRET"):
                assert isinstance(value, dict), f"{function_name}: {key} holds a secret?"
                assert value.get("Ref") in secrets, f"{function_name}: {key} holds a secret?"
            else:
                assert key.endswith("_PARAMETER"), f"{function_name}: {key} holds a secret?"


# ---------------------------------------------------------------- data at rest


def test_tables_are_encrypted_recoverable_and_retained(template: dict[str, Any]) -> None:
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    assert set(tables) >= {"ProfilesTable", "ContentTable", "JobsTable"}
    for name, table in tables.items():
        props = table["Properties"]
        pitr = props.get("PointInTimeRecoverySpecification", {})
        assert pitr.get("PointInTimeRecoveryEnabled") is True, f"{name}: no point-in-time recovery"
        assert props.get("SSESpecification", {}).get("SSEEnabled") is True, f"{name}: no SSE"
        assert table.get("DeletionPolicy") == "Retain", name
        assert table.get("UpdateReplacePolicy") == "Retain", name


def test_queues_are_encrypted_and_redrive_to_dead_letter_queues(
    template: dict[str, Any],
) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    dead_letter = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q.get("Properties", {})
    }
    assert dead_letter, "no queue has a dead-letter queue"
    for name, queue in queues.items():
        props = queue.get("Properties", {})
        encrypted = props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props
        assert encrypted, name
        if name in dead_letter:
            assert "RedrivePolicy" not in props, f"{name}: a dead-letter queue of its own"
            continue
        redrive = props.get("RedrivePolicy")
        assert redrive, f"{name}: no RedrivePolicy; poison messages would loop for ever"
        target = redrive["deadLetterTargetArn"]["Fn::GetAtt"]
        assert target[1] == "Arn"
        assert queues[target[0]]["Type"] == "AWS::SQS::Queue"
        assert 1 <= int(redrive["maxReceiveCount"]) <= 10, name
        # A dead letter must outlive its original, or it expires before anyone looks:
        # a retention set by a parameter is taken at the most the parameter allows.
        kept = _retention(template, queues[target[0]]["Properties"])
        assert kept >= _retention(template, props), name


def _retention(template: dict[str, Any], props: dict[str, Any]) -> int:
    period = props.get("MessageRetentionPeriod", 345600)
    if isinstance(period, dict):
        return int(template["Parameters"][period["Ref"]]["MaxValue"])
    return int(period)


# ---------------------------------------------------------------- the checks can fail


def _statement(template: dict[str, Any], function: str, sid: str) -> dict[str, Any]:
    for policy in template["Resources"][function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []):
            if statement.get("Sid") == sid:
                return statement  # type: ignore[no-any-return]
    raise KeyError(sid)


def _event(template: dict[str, Any], path: str) -> dict[str, Any]:
    for function in functions(template).values():
        for event in function["Properties"].get("Events", {}).values():
            if event.get("Type") == "Api" and event["Properties"]["Path"] == path:
                return event["Properties"]  # type: ignore[no-any-return]
    raise KeyError(path)


def _worker_statement_with(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    for owner, statement in statements(template):
        if owner == "ProcessProfileFunction" and as_list(statement["Action"])[0].startswith(prefix):
            return statement
    raise KeyError(prefix)


MUTATIONS: dict[str, tuple[Any, Any]] = {
    "resource star": (
        lambda t: _worker_statement_with(t, "dynamodb:").__setitem__("Resource", "*"),
        test_every_statement_allows_named_actions_on_named_resources,
    ),
    "wildcard action": (
        lambda t: _worker_statement_with(t, "dynamodb:").__setitem__("Action", ["dynamodb:*"]),
        test_every_statement_allows_named_actions_on_named_resources,
    ),
    "scan": (
        lambda t: _worker_statement_with(t, "dynamodb:")["Action"].append("dynamodb:Scan"),
        test_no_statement_lets_a_function_scan_a_table,
    ),
    "table action on a queue": (
        lambda t: _worker_statement_with(t, "dynamodb:").__setitem__(
            "Resource", {"Fn::GetAtt": ["HighQueue", "Arn"]}
        ),
        test_every_statement_allows_named_actions_on_named_resources,
    ),
    "managed policy": (
        lambda t: t["Resources"]["RetryFailedFunction"]["Properties"]["Policies"].append(
            "AmazonDynamoDBFullAccess"
        ),
        test_functions_have_only_inline_least_privilege_policies,
    ),
    "SAM CRUD template": (
        lambda t: t["Resources"]["RetryFailedFunction"]["Properties"]["Policies"].append(
            {"DynamoDBCrudPolicy": {"TableName": {"Ref": "JobsTable"}}}
        ),
        test_functions_have_only_inline_least_privilege_policies,
    ),
    "ssm wildcard": (
        lambda t: _worker_statement_with(t, "ssm:").__setitem__(
            "Resource", {"Fn::Sub": "arn:${AWS::Partition}:ssm:*:*:parameter/viralspot/*"}
        ),
        test_every_statement_allows_named_actions_on_named_resources,
    ),
    "admin route without key": (
        lambda t: _event(t, "/api/viral-ideas/redrive").pop("Auth"),
        test_api_key_is_required_on_exactly_the_admin_routes,
    ),
    "public route with key": (
        lambda t: _event(t, "/api/health").__setitem__("Auth", {"ApiKeyRequired": True}),
        test_api_key_is_required_on_exactly_the_admin_routes,
    ),
    "no quota": (
        lambda t: t["Resources"]["AdminUsagePlan"]["Properties"].pop("Quota"),
        test_usage_plan_throttles_and_caps_the_admin_key,
    ),
    "waf off by default": (
        lambda t: t["Parameters"]["WafRateLimit"].__setitem__("Default", 0),
        test_a_waf_rate_limit_guards_the_stage_by_default,
    ),
    "secret value in the template": (
        lambda t: t["Resources"]["CursorKeySecret"]["Properties"].__setitem__(
            "SecretString", "not-so-secret"
        ),
        test_the_admin_key_is_generated_into_secrets_manager_and_read_only_by_the_api,
    ),
    "secret read by the worker": (
        lambda t: t["Resources"]["ProcessProfileFunction"]["Properties"]["Policies"][0][
            "Statement"
        ].append(
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": [{"Ref": "AdminKeySecret"}],
            }
        ),
        test_the_admin_key_is_generated_into_secrets_manager_and_read_only_by_the_api,
    ),
    "secret value in the environment": (
        lambda t: t["Resources"]["RequestProfileFunction"]["Properties"]["Environment"][
            "Variables"
        ].__setitem__("ADMIN_KEY_SECRET", "hunter2"),
        test_no_secret_sits_in_the_template,
    ),
    "key in a default": (
        lambda t: t["Parameters"]["RapidApiHost"].__setitem__(
            "Default", "0123456789abcdef0123456789abcdef0123456789abcdef01"
        ),
        test_no_secret_sits_in_the_template,
    ),
    "key in the environment": (
        lambda t: t["Resources"]["ProcessProfileFunction"]["Properties"]["Environment"][
            "Variables"
        ].__setitem__("RAPIDAPI_KEY", {"Ref": "RapidApiHost"}),
        test_no_secret_sits_in_the_template,
    ),
    "no PITR": (
        lambda t: t["Resources"]["JobsTable"]["Properties"].pop("PointInTimeRecoverySpecification"),
        test_tables_are_encrypted_recoverable_and_retained,
    ),
    "no SSE": (
        lambda t: t["Resources"]["LowQueue"]["Properties"].pop("SqsManagedSseEnabled"),
        test_queues_are_encrypted_and_redrive_to_dead_letter_queues,
    ),
    "no redrive": (
        lambda t: t["Resources"]["HighQueue"]["Properties"].pop("RedrivePolicy"),
        test_queues_are_encrypted_and_redrive_to_dead_letter_queues,
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_policy_fails_on_a_template_that_breaks_it(
    template: dict[str, Any], mutation: str
) -> None:
    mutate, check = MUTATIONS[mutation]
    broken = copy.deepcopy(template)
    mutate(broken)
    with pytest.raises(AssertionError):
        check(broken)
