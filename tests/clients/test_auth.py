"""Real MCP clients with bearer credentials: the Python SDK (`mcp` 2.x) and the MCP Inspector
CLI connect with an API key; without one, or with a wrong one, they are refused. Two principals
keep their state apart through the same server.

The server runs with two API keys configured only as SHA-256 digests (JUPYTER_MCP_API_KEYS).
"""

import hashlib
import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp_types import TextContent
from sdk_helpers import run
from conftest import Server
from test_inspector import inspector, inspector_env, text_of  # noqa: F401 (a fixture)

ALICE = "jmcp_sdk_alice_1b4e28ba2fa1116b2f6c9d3f0a4e5b6c"
BOB = "jmcp_sdk_bob_6f1ed002ab5595859014ebf0951522d9"
MODES = ["legacy", "2026-07-28"]


def digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    env = os.environ.copy()
    env["JUPYTER_MCP_API_KEYS"] = f"alice:{digest(ALICE)},bob:{digest(BOB)}"
    s = Server(extra_args=["--audit-log", str(audit)], env=env)
    s.audit = audit
    yield s
    s.stop()


def client(server, mode, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = streamable_http_client(server.url, http_client=create_mcp_http_client(headers=headers))
    return Client(transport, mode=mode, read_timeout_seconds=120)


def text(result):
    return "".join(b.text for b in result.content if isinstance(b, TextContent))


@pytest.mark.parametrize("mode", MODES)
def test_sdk_connects_with_a_bearer_key_and_principals_stay_apart(keyed_server, mode):
    async def body():
        async with client(keyed_server, mode, ALICE) as alice:
            r = await alice.call_tool("execute_code", {"code": f"token = 'alice-{mode}'\nprint(token)",
                                                       "kernel": f"alice-{mode}"})
            assert text(r) == f"alice-{mode}\n", r
            r = await alice.call_tool("get_kernel_status", {"kernel": f"alice-{mode}"})
            assert r.structured_content["security"]["principal"] == "alice"
        async with client(keyed_server, mode, BOB) as bob:
            r = await bob.call_tool("execute_code", {"code": "print(globals().get('token'))",
                                                     "kernel": f"alice-{mode}"})
            assert text(r) == "None\n", r
            r = await bob.call_tool("get_kernel_status", {"kernel": f"alice-{mode}"})
            assert r.structured_content["execution_count"] == 1, r
    run(body)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", [None, "jmcp_wrong"], ids=["no-key", "wrong-key"])
def test_sdk_without_a_valid_key_is_refused(keyed_server, mode, key):
    async def body():
        async with client(keyed_server, mode, key) as c:
            await c.call_tool("list_kernels", {})
    with pytest.raises(Exception) as info:
        run(body)
    assert "401" in str(info.value) or "Unauthorized" in str(info.value), repr(info.value)


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_connects_with_a_bearer_header(keyed_server, inspector_env, era):
    r = inspector(keyed_server, inspector_env, era, "tools/call", "--tool-name", "execute_code",
                  "--tool-args-json", json.dumps({"code": "print(6*7)"}),
                  "--header", f"Authorization: Bearer {ALICE}")
    assert r.returncode == 0 and r.json, str(r)
    assert "42" in text_of(r.json["result"]), str(r)


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_without_a_key_is_refused(keyed_server, inspector_env, era):
    r = inspector(keyed_server, inspector_env, era, "tools/list")
    assert r.returncode != 0, str(r)
    out = r.stdout + r.stderr
    assert "401" in out or "Unauthorized" in out, str(r)


def test_no_key_reaches_the_logs(keyed_server):
    """Calls as alice and bob and refused ones (this test makes its own, so it passes alone):
    every record names its principal and no key appears in the log or the audit file."""
    async def calls():
        for key in (ALICE, BOB):
            async with client(keyed_server, "legacy", key) as c:
                r = await c.call_tool("execute_code", {"code": "print('logged')", "kernel": "logs"})
                assert text(r) == "logged\n", r
    run(calls)
    for headers in ({}, {"Authorization": "Bearer jmcp_wrong"}):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
        req = urllib.request.Request(keyed_server.url, data=body, method="POST", headers={
            **headers, "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=30)
        assert refused.value.code == 401
    logs = "".join(keyed_server.log) + keyed_server.audit.read_text()
    for key in (ALICE, BOB, "jmcp_wrong"):
        assert key not in logs
    records = [json.loads(l) for l in keyed_server.audit.read_text().splitlines()]
    assert any(r["event"] == "refused" for r in records)
    called = [r for r in records if r["event"] == "tool_call"]
    assert {r["principal"] for r in called} == {"alice", "bob"}
    assert {r["principal"] for r in called if r["tool"] == "execute_code" and r["kernel"] == "logs"} \
        == {"alice", "bob"}
