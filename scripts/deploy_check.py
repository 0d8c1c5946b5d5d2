"""Checks the deployment recipes against the code: scripts/lint-deploy runs it.

Usage: deploy_check.py SERVER_HELP LAMBDA_HELP OUT_DIR

- Every BEDROCK_CHAT_* variable the Dockerfile and deploy/compose.yaml set is one the
  server's --help lists; every one the SAM template sets, one the Lambda function's lists.
- The template's DynamoDB tables have the key schema, index and TTL attribute that
  bedrock-chat-store and bedrock-chat-ratelimit use (read from their sources), and the
  function's role grants each table exactly the DynamoDB actions that crate's code calls.
- Writes OUT_DIR/image.env (the Dockerfile's runtime ENV, NAME=VALUE a line) and
  OUT_DIR/healthcheck.argv (its HEALTHCHECK command, one argument a line) for the entry
  command test.
"""

import json
import re
import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
failures = []


def fail(message):
    failures.append(message)


def documented(help_path):
    return set(re.findall(r"env: (BEDROCK_CHAT_[A-Z_]+)=", Path(help_path).read_text()))


def dockerfile_runtime():
    """The last stage's ENV pairs and HEALTHCHECK argv."""
    text = (ROOT / "Dockerfile").read_text()
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            lines.append(current.strip())
        current = ""
    stages = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    runtime = lines[stages[-1]:]
    env, healthcheck = {}, None
    for line in runtime:
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
        elif instruction.upper() == "HEALTHCHECK":
            command = rest[rest.index("CMD") + 3:].strip()
            healthcheck = json.loads(command)
    if not env:
        fail("Dockerfile: the runtime stage sets no ENV")
    if not healthcheck:
        fail("Dockerfile: the runtime stage has no HEALTHCHECK CMD [...]")
    return env, healthcheck or []


class TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, ...) read as plain values."""


def _any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


TemplateLoader.add_multi_constructor("!", _any_tag)


def rust_const(path, name):
    text = (ROOT / path).read_text()
    match = re.search(rf'const {name}: &str = "([^"]+)";', text)
    if not match:
        fail(f"{path}: no const {name}")
        return None
    return match.group(1)


def check_table(name, table, keys, types, index, ttl):
    props = table["Properties"]
    got_keys = [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]]
    if got_keys != keys:
        fail(f"template {name}: key schema {got_keys}, the code uses {keys}")
    got_types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    if got_types != types:
        fail(f"template {name}: attributes {got_types}, the code uses {types}")
    got_indexes = [
        (i["IndexName"], [(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]])
        for i in props.get("LocalSecondaryIndexes", [])
    ]
    if got_indexes != index:
        fail(f"template {name}: local indexes {got_indexes}, the code uses {index}")
    spec = props.get("TimeToLiveSpecification", {})
    if spec.get("AttributeName") != ttl or spec.get("Enabled") is not True:
        fail(f"template {name}: TTL {spec}, the code expires items by {ttl}")


# What each DynamoDB SDK call or transaction item needs in IAM. CreateTable and
# UpdateTimeToLive are left out on purpose: the template makes the tables, and the function
# only describes them (from_url creates a table only when it is missing).
SDK_ACTIONS = {
    r"\.describe_table\(\)": "dynamodb:DescribeTable",
    r"\.get_item\(\)": "dynamodb:GetItem",
    r"\.batch_get_item\(\)": "dynamodb:BatchGetItem",
    r"\.transact_get_items\(\)": "dynamodb:GetItem",
    r"\.query\(\)": "dynamodb:Query",
    r"\.scan\(\)": "dynamodb:Scan",
    r"\.put_item\(\)": "dynamodb:PutItem",
    r"\.update_item\(\)": "dynamodb:UpdateItem",
    r"\.delete_item\(\)": "dynamodb:DeleteItem",
    r"\.batch_write_item\(\)": "dynamodb:BatchWriteItem",
    r"\bPut::builder\(\)": "dynamodb:PutItem",
    r"\bPutRequest::builder\(\)": "dynamodb:PutItem",
    r"\bUpdate::builder\(\)": "dynamodb:UpdateItem",
    r"\bDelete::builder\(\)": "dynamodb:DeleteItem",
    r"\bDeleteRequest::builder\(\)": "dynamodb:DeleteItem",
    r"\bConditionCheck::builder\(\)": "dynamodb:ConditionCheckItem",
}


def needed_actions(directory):
    """The IAM actions the DynamoDB code under `directory` calls for."""
    actions = set()
    for path in sorted((ROOT / directory).rglob("*.rs")):
        text = path.read_text()
        for pattern, action in SDK_ACTIONS.items():
            if re.search(pattern, text):
                actions.add(action)
    return actions


def check_policy(resources):
    """The role grants each table exactly the actions its crate's code calls for."""
    statements = {}
    for policy in resources["FunctionRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            statements[statement.get("Sid")] = set(statement["Action"])
    for sid, directory in (
        ("History", "bedrock-chat-store/src/dynamodb"),
        ("RateLimits", "bedrock-chat-ratelimit/src/dynamodb"),
    ):
        needed, granted = needed_actions(directory), statements.get(sid, set())
        if needed - granted:
            fail(f"template FunctionRole {sid}: {directory} also calls {sorted(needed - granted)}")
        if granted - needed:
            fail(f"template FunctionRole {sid}: grants {sorted(granted - needed)}, which {directory} never calls")


def main(server_help, lambda_help, out_dir):
    server_vars, lambda_vars = documented(server_help), documented(lambda_help)
    if not server_vars or not lambda_vars:
        fail("no `env: BEDROCK_CHAT_...` in the programs' --help")

    env, healthcheck = dockerfile_runtime()
    for name in env:
        if name.startswith("BEDROCK_CHAT_") and name not in server_vars:
            fail(f"Dockerfile: ENV {name} is not a server setting")

    compose = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
    server = compose["services"]["server"]
    build = server["build"]
    if not (ROOT / "deploy" / build["context"] / build["dockerfile"]).is_file():
        fail("deploy/compose.yaml: the server's build does not name the repository's Dockerfile")
    for name in server.get("environment", {}):
        if name.startswith("BEDROCK_CHAT_") and name not in server_vars:
            fail(f"deploy/compose.yaml: {name} is not a server setting")
    for service in ("postgres", "redis"):
        if service not in compose["services"]:
            fail(f"deploy/compose.yaml: no {service} service")

    template = yaml.load((ROOT / "deploy/lambda/template.yaml").read_text(), Loader=TemplateLoader)
    resources = template["Resources"]
    env_maps = [template["Globals"]["Function"]["Environment"]["Variables"]]
    for resource in resources.values():
        if resource["Type"] == "AWS::Serverless::Function":
            env_maps.append(resource["Properties"].get("Environment", {}).get("Variables", {}))
    for variables in env_maps:
        for name in variables:
            if name.startswith("BEDROCK_CHAT_") and name not in lambda_vars:
                fail(f"deploy/lambda/template.yaml: {name} is not a Lambda function setting")

    store = "bedrock-chat-store/src/dynamodb/items.rs"
    pk, sk = rust_const(store, "PK"), rust_const(store, "SK")
    updated, by_updated = rust_const(store, "UPDATED_KEY"), rust_const(store, "BY_UPDATED")
    check_table(
        "HistoryTable",
        resources["HistoryTable"],
        [(pk, "HASH"), (sk, "RANGE")],
        {pk: "S", sk: "S", updated: "S"},
        [(by_updated, [(pk, "HASH"), (updated, "RANGE")])],
        rust_const(store, "EXPIRES"),
    )
    limiter = "bedrock-chat-ratelimit/src/dynamodb/mod.rs"
    lpk, window = rust_const(limiter, "PK"), rust_const(limiter, "SK")
    if "attribute(SK, ScalarAttributeType::N)" not in (ROOT / limiter).read_text():
        fail(f"{limiter}: the window sort key is no longer a number; update the template")
    check_table(
        "RateLimitTable",
        resources["RateLimitTable"],
        [(lpk, "HASH"), (window, "RANGE")],
        {lpk: "S", window: "N"},
        [],
        rust_const(limiter, "EXPIRES"),
    )

    check_policy(resources)

    out = Path(out_dir)
    (out / "image.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    (out / "healthcheck.argv").write_text("".join(f"{arg}\n" for arg in healthcheck))
    if failures:
        for message in failures:
            print(f"scripts/deploy_check.py: {message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:4])
