"""template.yaml (the SAM template for AWS Lambda) and the exec wrapper, checked offline.

cfn-lint validates the template, and the template translated by the real SAM translator; it does
not look inside SAM's FunctionUrlConfig or at what the environment says, so each of those
values has its own test here. The wrapper script is run for real against a stand-in binary.

Needs requirements-lambda.txt (cfn-lint, aws-sam-translator, and PyYAML through cfn-lint) in the
Python running pytest: `make lint-template` installs it into .venv.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML comes with cfn-lint: pip install -r requirements-lambda.txt")

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
WRAPPER = ROOT / "lambda" / "wrapper.sh"
CONFIG_DIR = ROOT / "src" / "config"

FUNCTION = "McpFunction"
LAYER = "McpPythonLayer"
ROLE = "McpFunctionRole"
LOG_GROUP = "McpLogGroup"
HTTP_API = "McpHttpApi"
LAMBDA_TIMEOUT_MAX_SECS = 900
# What the function's role may do, all on its own log group.
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}


def config_source():
    """The text of the server's configuration module (src/config/*.rs)."""
    return "\n".join(p.read_text() for p in sorted(CONFIG_DIR.glob("*.rs")))


class CfnLoader(yaml.SafeLoader):
    """YAML loader that reads CloudFormation short tags (!Ref, !Sub, !GetAtt, ...) as the long
    form (`{"Ref": ...}`, `{"Fn::Sub": ...}`), as CloudFormation does."""


def _cfn_tag(loader, suffix, node):
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


@pytest.fixture(scope="module")
def template():
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


@pytest.fixture(scope="module")
def function(template):
    return template["Resources"][FUNCTION]["Properties"]


@pytest.fixture(scope="module")
def env(function):
    return function["Environment"]["Variables"]


def parameter_of(template, value):
    """The Parameters entry that `value` (a `{"Ref": name}`) points at."""
    assert isinstance(value, dict) and set(value) == {"Ref"}, f"expected a Ref to a parameter, got {value!r}"
    assert value["Ref"] in template["Parameters"], f"{value['Ref']} is not a parameter"
    return template["Parameters"][value["Ref"]]


def cfn_lint(path):
    exe = Path(sys.executable).with_name("cfn-lint")
    cmd = [str(exe)] if exe.exists() else [shutil.which("cfn-lint") or "cfn-lint"]
    return subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=300)


# --- linters ---------------------------------------------------------------------------------


def test_cfn_lint_passes():
    pytest.importorskip("cfnlint", reason="pip install -r requirements-lambda.txt")
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("auth_type", ["AWS_IAM", "NONE"])
def test_sam_translation_passes_cfn_lint(auth_type, tmp_path, monkeypatch):
    """Translates with the real SAM translator (as CloudFormation will) and lints the plain
    CloudFormation that comes out, where Lambda's own schemas check InvokeMode, Runtime, ..."""
    pytest.importorskip("samtranslator", reason="pip install -r requirements-lambda.txt")
    from samtranslator.translator.transform import transform

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # a pseudo parameter; nothing is called
    doc = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    # What `sam package` does to local paths before the transform runs.
    doc["Resources"][FUNCTION]["Properties"]["CodeUri"] = "s3://example-bucket/function.zip"
    doc["Resources"][LAYER]["Properties"]["ContentUri"] = "s3://example-bucket/layer.zip"

    class NoManagedPolicies:
        def load(self):
            return {}

    out = transform(doc, {"FunctionUrlAuthType": auth_type}, NoManagedPolicies())
    url = out["Resources"][f"{FUNCTION}Url"]["Properties"]
    assert url["InvokeMode"] == "RESPONSE_STREAM"
    assert url["AuthType"] == {"Ref": "FunctionUrlAuthType"}
    translated = tmp_path / "translated.json"
    translated.write_text(json.dumps(out))
    result = cfn_lint(translated)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Function URL ----------------------------------------------------------------------------


def test_function_url_streams(function):
    assert function["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"


def test_function_url_auth_type_is_a_parameter_defaulting_to_iam(template, function):
    param = parameter_of(template, function["FunctionUrlConfig"]["AuthType"])
    assert param["Default"] == "AWS_IAM"
    assert param["AllowedValues"] == ["AWS_IAM", "NONE"]


def test_public_permissions_exist_only_for_auth_type_none(template):
    """SAM adds no public permission when AuthType is a Ref, so the template does, and only
    under a condition that holds when the parameter is NONE."""
    public = {
        name: res
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Lambda::Permission" and res["Properties"].get("Principal") == "*"
    }
    actions = {res["Properties"]["Action"] for res in public.values()}
    assert actions == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    for name, res in public.items():
        condition = template["Conditions"][res["Condition"]]
        assert condition == {"Fn::Equals": [{"Ref": "FunctionUrlAuthType"}, "NONE"]}, name
        assert res["Properties"]["FunctionName"] == {"Ref": FUNCTION}, name


# --- function --------------------------------------------------------------------------------


def test_architecture_parameter_defaults_to_arm64(template, function):
    (arch,) = function["Architectures"]
    param = parameter_of(template, arch)
    assert param["Default"] == "arm64"
    assert sorted(param["AllowedValues"]) == ["arm64", "x86_64"]


def test_runtime_is_managed_python313(function):
    assert function["Runtime"] == "python3.13"
    assert isinstance(function["Handler"], str) and function["Handler"]
    assert function["CodeUri"] == "target/lambda/jupyter-mcp-server/"


def test_exec_wrapper_is_set(env):
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/jupyter-mcp/wrapper.sh"


def test_server_environment(template, env):
    assert env["JUPYTER_MCP_PYTHON"] == "/var/lang/bin/python3.13"
    assert env["JUPYTER_MCP_KERNEL_PYTHONPATH"] == "/opt/python"
    assert env["JUPYTER_MCP_WORKING_DIR"] == "/tmp/notebooks"
    assert env["JUPYTER_MCP_LAMBDA_STREAMING"] == "true"
    assert "Default" in parameter_of(template, env["JUPYTER_MCP_ALLOWED_HOSTS"])
    assert parameter_of(template, env["JUPYTER_MCP_KERNEL_MEMORY_MB"])["Default"] == 512


def test_environment_names_exist_in_server_config(env):
    """Every JUPYTER_MCP_* variable the template sets is one the server reads (src/config/env.rs)."""
    declared = set(re.findall(r'pub const ENV_\w+: &str = "(JUPYTER_MCP_\w+)";', config_source()))
    used = {name for name in env if name.startswith("JUPYTER_MCP_")}
    assert used <= declared, f"not read by the server: {sorted(used - declared)}"


def test_layer_is_attached(template, function):
    assert function["Layers"] == [{"Ref": LAYER}]
    layer = template["Resources"][LAYER]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    props = layer["Properties"]
    assert props["ContentUri"] == "build/layer"
    assert props["CompatibleRuntimes"] == ["python3.13"]
    assert props["CompatibleArchitectures"] == function["Architectures"]


def test_timeout_parameter_is_within_lambda_limit(template, function):
    param = parameter_of(template, function["Timeout"])
    assert param["MaxValue"] <= LAMBDA_TIMEOUT_MAX_SECS
    assert 1 <= param["MinValue"] <= param["Default"] <= param["MaxValue"]


def test_logs_go_to_own_group_with_retention(template, function):
    assert function["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": {"Ref": LOG_GROUP}}
    group = template["Resources"][LOG_GROUP]["Properties"]
    assert isinstance(parameter_of(template, group["RetentionInDays"])["Default"], int)


# --- execution role --------------------------------------------------------------------------


def test_function_uses_the_template_role(function):
    assert function["Role"] == {"Fn::GetAtt": [ROLE, "Arn"]}
    # With Role set, SAM would not use these; their presence would only mislead.
    assert "Policies" not in function
    assert "PermissionsBoundary" not in function


def test_role_has_no_managed_policies(template):
    role = template["Resources"][ROLE]["Properties"]
    assert "ManagedPolicyArns" not in role
    others = [
        name for name, res in template["Resources"].items()
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy")
    ]
    assert others == []


def test_role_only_writes_its_own_logs_and_uses_its_workspace_prefix(template):
    role = template["Resources"][ROLE]["Properties"]
    # The one conditional policy (the API keys' secret) has its own test below.
    policies = {p["PolicyName"]: p["PolicyDocument"]["Statement"] for p in role["Policies"]
                if "Fn::If" not in p}
    assert set(policies) == {"write-own-logs", "workspace-prefix"}, set(policies)
    for s in policies["write-own-logs"]:
        assert s["Effect"] == "Allow"
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert set(actions) <= LOG_ACTIONS, actions
        assert not any("*" in a for a in actions), actions
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        assert resources == [{"Fn::GetAtt": [LOG_GROUP, "Arn"]}], resources
    objects, listing = policies["workspace-prefix"]
    assert set(objects["Action"]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    # Objects under the prefix only, never the whole bucket.
    assert objects["Resource"]["Fn::Sub"][0].endswith(":s3:::${Bucket}/${WorkspacePrefix}*")
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${WorkspacePrefix}*"}}}


def test_workspace_bucket_is_private_encrypted_and_expires_old_versions(template, env):
    bucket = template["Resources"]["WorkspaceBucket"]
    assert bucket["Condition"] == "CreateWorkspaceBucket"
    props = bucket["Properties"]
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    (lifecycle,) = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0
    # An existing bucket can be given instead; either way the function is told which.
    assert template["Parameters"]["WorkspaceBucketName"]["Default"] == ""
    assert env["JUPYTER_MCP_WORKSPACE_BUCKET"] == {
        "Fn::If": ["CreateWorkspaceBucket", {"Ref": "WorkspaceBucket"}, {"Ref": "WorkspaceBucketName"}]}
    assert env["JUPYTER_MCP_WORKSPACE_PREFIX"] == {"Ref": "WorkspacePrefix"}


def test_role_is_assumed_by_lambda_only(template):
    (statement,) = template["Resources"][ROLE]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"


# --- authentication settings: API keys' secret, OIDC, tenancy ---------------------------------


NO_VALUE = {"Ref": "AWS::NoValue"}
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jmcp/api-keys-AbCdEf"


def resolve(template, node, params):
    """NODE with the template's Conditions, `Fn::If` and parameter `Ref`s evaluated for PARAMS
    (other parameters at their defaults), as CloudFormation would; `AWS::NoValue` entries are
    dropped. Other intrinsics are left as they are."""
    def value(name):
        return params.get(name, template["Parameters"][name].get("Default"))

    def condition(name):
        return truth(template["Conditions"][name])

    def truth(c):
        if "Fn::Equals" in c:
            a, b = (walk(x) for x in c["Fn::Equals"])
            return a == b
        if "Fn::Not" in c:
            return not truth(c["Fn::Not"][0])
        if "Condition" in c:
            return condition(c["Condition"])
        raise AssertionError(f"unsupported condition {c!r}")

    def walk(n):
        if isinstance(n, dict):
            if set(n) == {"Ref"} and n["Ref"] in template["Parameters"]:
                return value(n["Ref"])
            if set(n) == {"Fn::If"}:
                name, yes, no = n["Fn::If"]
                return walk(yes if condition(name) else no)
            out = {k: walk(v) for k, v in n.items()}
            return {k: v for k, v in out.items() if v != NO_VALUE}
        if isinstance(n, list):
            return [x for x in (walk(v) for v in n) if x != NO_VALUE]
        return n

    return walk(node)


def role_statements(template, params):
    role = resolve(template, template["Resources"][ROLE]["Properties"], params)
    return [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]


def actions_of(statement):
    a = statement["Action"]
    return a if isinstance(a, list) else [a]


def test_api_keys_secret_is_readable_only_when_set_and_only_that_secret(template):
    """ApiKeysSecretId wires JUPYTER_MCP_API_KEYS_SECRET_ID and one GetSecretValue on that ARN;
    left empty (the default), the role cannot read any secret and the variable is not set."""
    param = template["Parameters"]["ApiKeysSecretId"]
    assert param["Default"] == ""
    pattern = re.compile(param["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch(SECRET_ARN)
    for bad in ["*", "jmcp/api-keys", "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
                "arn:aws:secretsmanager:*:*:secret:x"]:
        assert not pattern.fullmatch(bad), f"ApiKeysSecretId accepts {bad!r}"

    def secret_statements(params):
        return [s for s in role_statements(template, params)
                if any(a.startswith("secretsmanager:") for a in actions_of(s))]

    assert secret_statements({}) == []
    (statement,) = secret_statements({"ApiKeysSecretId": SECRET_ARN})
    assert statement["Effect"] == "Allow"
    assert actions_of(statement) == ["secretsmanager:GetSecretValue"]
    assert statement["Resource"] == SECRET_ARN
    env_of = lambda params: resolve(template, template["Resources"][FUNCTION], params)[
        "Properties"]["Environment"]["Variables"]
    assert "JUPYTER_MCP_API_KEYS_SECRET_ID" not in env_of({})
    assert env_of({"ApiKeysSecretId": SECRET_ARN})["JUPYTER_MCP_API_KEYS_SECRET_ID"] == SECRET_ARN


def test_oidc_parameters_are_wired_together(template):
    env_of = lambda params: resolve(template, template["Resources"][FUNCTION], params)[
        "Properties"]["Environment"]["Variables"]
    oidc = ["JUPYTER_MCP_OIDC_ISSUER", "JUPYTER_MCP_OIDC_AUDIENCE", "JUPYTER_MCP_OIDC_JWKS_URL"]
    assert not set(oidc) & set(env_of({}))
    given = {"OidcIssuer": "https://idp.example.com/", "OidcAudience": "https://mcp.example.com/mcp",
             "OidcJwksUrl": "https://idp.example.com/.well-known/jwks.json"}
    env = env_of(given)
    assert [env[v] for v in oidc] == list(given.values())
    # An issuer without the rest is refused at deploy time (and by the server at start).
    rule = template["Rules"]["OidcNeedsAudienceAndJwks"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "OidcIssuer"}, ""]}]}
    asserted = {a["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"] for a in rule["Assertions"]}
    assert asserted == {"OidcAudience", "OidcJwksUrl"}
    assert not re.fullmatch(template["Parameters"]["OidcJwksUrl"]["AllowedPattern"],
                            "http://idp.example.com/jwks.json")


def test_lambda_tenancy_parameter_defaults_to_single(template, env):
    param = parameter_of(template, env["JUPYTER_MCP_LAMBDA_TENANCY"])
    assert param["Default"] == "single"
    assert sorted(param["AllowedValues"]) == ["shared", "single"]
    # The server's own values (src/config/mod.rs `Tenancy`).
    enum = re.search(r"pub enum Tenancy \{(.*?)\}", config_source(), re.S).group(1)
    assert sorted(re.findall(r"^\s*(\w+),", enum, re.M)) == ["Shared", "Single"]


# --- no direct invoke: an event a caller writes can name any principal -----------------------


def test_no_permission_allows_a_direct_invoke(template):
    """A direct lambda:InvokeFunction carries a request context its caller wrote (any IAM ARN):
    the template's only InvokeFunction permission is limited to the Function URL, and its role
    holds no lambda action at all."""
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::Lambda::Permission" and \
                res["Properties"]["Action"] == "lambda:InvokeFunction":
            assert res["Properties"].get("InvokedViaFunctionUrl") is True, name
    for params in ({}, {"ApiKeysSecretId": SECRET_ARN}):
        for s in role_statements(template, params):
            assert not any(a.startswith("lambda:") or a == "*" for a in actions_of(s)), s


def test_the_documented_caller_policy_invokes_only_through_the_url():
    """docs/lambda.md's identity policy for callers: lambda:InvokeFunction only with
    lambda:InvokedViaFunctionUrl = true, beside lambda:InvokeFunctionUrl."""
    text = (ROOT / "docs" / "lambda.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)
              if "lambda:Invoke" in b]
    assert blocks, "docs/lambda.md has no caller policy"
    statements = [s for b in blocks for s in b.get("Statement", [b])]
    actions = {a for s in statements for a in actions_of(s)}
    assert actions == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}, actions
    for s in statements:
        if "lambda:InvokeFunction" in actions_of(s):
            assert actions_of(s) == ["lambda:InvokeFunction"], s
            assert s["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}, s


# --- HTTP API and outputs --------------------------------------------------------------------


def test_http_api_route_requires_iam(template, function):
    (event,) = function["Events"].values()
    assert event["Type"] == "HttpApi"
    props = event["Properties"]
    assert (props["Path"], props["Method"], props["ApiId"]) == ("/mcp", "ANY", {"Ref": HTTP_API})
    auth = template["Resources"][HTTP_API]["Properties"]["Auth"]
    assert auth == {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"}


def test_outputs_name_both_endpoints(template):
    outputs = template["Outputs"]
    assert outputs["McpEndpoint"]["Value"] == {"Fn::Sub": f"${{{FUNCTION}Url.FunctionUrl}}mcp"}
    assert outputs["HttpApiMcpEndpoint"]["Value"]["Fn::Sub"].endswith("/mcp")
    assert f"${{{HTTP_API}}}" in outputs["HttpApiMcpEndpoint"]["Value"]["Fn::Sub"]


# --- the exec wrapper ------------------------------------------------------------------------


def fake_task_root(tmp_path):
    """A LAMBDA_TASK_ROOT whose `bootstrap` reports its PID and arguments."""
    root = tmp_path / "task"
    root.mkdir()
    bootstrap = root / "bootstrap"
    bootstrap.write_text('#!/bin/sh\necho "pid=$$ argc=$# args=$*"\n')
    bootstrap.chmod(0o755)
    return root


def test_wrapper_execs_bootstrap_without_runtime_arguments(tmp_path):
    root = fake_task_root(tmp_path)
    # How the python3.13 runtime calls AWS_LAMBDA_EXEC_WRAPPER.
    proc = subprocess.Popen(
        [str(WRAPPER), "/var/lang/bin/python3.13", "-u", "/var/runtime/bootstrap.py"],
        env={"PATH": os.environ["PATH"], "LAMBDA_TASK_ROOT": str(root)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # Same PID: the wrapper exec'd (Lambda's SIGTERM reaches the server), and no arguments.
    assert out.strip() == f"pid={proc.pid} argc=0 args="


def test_wrapper_explains_a_missing_bootstrap(tmp_path):
    result = subprocess.run(
        [str(WRAPPER), "/var/lang/bin/python3.13", "/var/runtime/bootstrap.py"],
        env={"PATH": os.environ["PATH"], "LAMBDA_TASK_ROOT": str(tmp_path)},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 127
    assert "bootstrap" in result.stderr and "make build-lambda" in result.stderr
