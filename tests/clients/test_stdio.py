"""The stdio transport (`--transport stdio`) through real clients that launch the server as a
child process, the way Claude Desktop, Claude Code, Cursor and VS Code do: the Python SDK
(`StdioServerParameters`), the MCP Inspector CLI and the TypeScript SDK. Each launch gets its
own working directory; after the client closes, no process may be left in it (server or kernel).
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp_types import ImageContent, TextContent

from conftest import BIN, PYTHON
from sdk_helpers import run
from test_inspector import INSPECTOR, NODE, inspector_env  # noqa: F401 (fixture)
from test_typescript import ts_client

MODES = ["legacy", "2026-07-28"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def server_command(workdir):
    return [str(BIN), "--transport", "stdio", "--working-dir", str(workdir), "--python", str(PYTHON)]


def processes_in(workdir):
    """PIDs whose command line or working directory names `workdir` (the server, its kernels)."""
    workdir = os.path.realpath(workdir)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{entry}/cwd")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (workdir in cmdline or cwd == workdir):
            found.append(int(entry))
    return found


def assert_nothing_left(workdir):
    deadline = time.monotonic() + 30
    while processes_in(workdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_in(workdir) == [], f"left running in {workdir}"


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="jmcp-test-stdio-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def texts(result):
    return "".join(b.text for b in result.content if isinstance(b, TextContent))


@pytest.mark.parametrize("mode", MODES)
def test_python_sdk_over_stdio(workdir, mode):
    cmd = server_command(workdir)
    params = StdioServerParameters(command=cmd[0], args=cmd[1:])

    async def body():
        async with Client(params, mode=mode, read_timeout_seconds=120) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"execute_code", "read_notebook", "install_package"} <= names, names
            r = await client.call_tool("execute_code", {"code": "x = 6 * 7"})
            assert not r.is_error, r
            r = await client.call_tool("execute_code", {"code": "print(x)"})
            assert texts(r) == "42\n", r
            assert r.structured_content["status"] == "ok", r
            r = await client.call_tool(
                "execute_code", {"code": "import matplotlib.pyplot as plt; plt.plot([1, 2]); plt.show()"})
            images = [b for b in r.content if isinstance(b, ImageContent)]
            assert images and base64.b64decode(images[0].data).startswith(PNG_SIGNATURE), r
            r = await client.call_tool("read_notebook", {"path": "missing.ipynb"})
            assert r.is_error and r.structured_content is None, r
            assert texts(r).startswith("status: not_found\n"), r
    run(body)
    assert_nothing_left(workdir)


def inspector_stdio(env, workdir, method, *args):
    cmd = [str(NODE), str(INSPECTOR), "--cli", "--transport", "stdio", "--cwd", str(workdir),
           "--method", method, "--format", "json", "--stored-auth-only", *args, "--",
           *server_command(workdir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    context = f"$ {' '.join(cmd)}\nexit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc, context


def test_inspector_cli_over_stdio(inspector_env, workdir):  # noqa: F811
    proc, context = inspector_stdio(inspector_env, workdir, "tools/list", "--strict")
    # --strict: exit 6 on any error-severity schema portability problem.
    assert proc.returncode == 0, context
    tools = {t["name"] for t in json.loads(proc.stdout)["result"]["tools"]}
    assert {"execute_code", "list_notebooks"} <= tools, context
    proc, context = inspector_stdio(inspector_env, workdir, "tools/call", "--tool-name", "execute_code",
                                    "--tool-args-json", json.dumps({"code": "print(6*7)"}))
    assert proc.returncode == 0, context
    result = json.loads(proc.stdout)["result"]
    assert result["structuredContent"]["status"] == "ok", context
    assert "42" in "".join(c.get("text", "") for c in result["content"]), context
    assert_nothing_left(workdir)


def test_typescript_sdk_over_stdio(workdir):
    out = ts_client("calls", "stdio", *server_command(workdir))
    assert "execute_code:error" in out["seen"], out
    assert_nothing_left(workdir)


def test_typescript_abort_over_stdio_interrupts_the_cell(workdir):
    out = ts_client("abort", "stdio", *server_command(workdir))
    assert out["nextStatus"] == "ok", out
    assert out["nextText"].strip() == "False", out
    assert_nothing_left(workdir)
