"""End-to-end tests of the server through the official Python MCP SDK (`mcp` 2.x).

Every test runs twice: once with `mode="legacy"` (the initialize handshake, 2025-era protocol)
and once with `mode="2026-07-28"` (stateless, no handshake). Each test opens its own
`Client` connection(s) against the module-scoped `server` fixture from conftest.py.

The tests are plain (sync) pytest functions that drive the async SDK with `anyio.run`, so no
async pytest plugin is needed.
"""

import base64
import json
import os
import re
import subprocess
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError
from sdk_helpers import run
from mcp_types import ImageContent, TextContent

MODES = ["legacy", "2026-07-28"]
CALL_TIMEOUT = 120  # seconds, per tool call (the first call also starts a kernel)

CONTRACT_TOOLS = {
    "execute_code", "get_kernel_status", "restart_kernel", "interrupt_kernel", "list_kernels",
    "get_variables", "inspect_variable", "install_package", "create_notebook", "read_notebook",
    "list_notebooks",
}
KERNEL_TOOLS = {
    "execute_code", "get_kernel_status", "restart_kernel", "interrupt_kernel", "get_variables",
    "inspect_variable", "install_package",
}
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\]")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def kernel_ipykernel_version():
    """ipykernel version of the kernel Python the fixture passes to the server (`--python`)."""
    python = os.environ.get("JUPYTER_MCP_TEST_PYTHON",
                            Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python")
    return subprocess.run([str(python), "-c", "import ipykernel; print(ipykernel.__version__)"],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def connect(server, mode):
    return Client(server.url, mode=mode, read_timeout_seconds=CALL_TIMEOUT)


def texts(result):
    return [b.text for b in result.content if isinstance(b, TextContent)]


def all_text(result):
    return "\n".join(texts(result))


def stdout_of(result):
    sc = result.structured_content or {}
    return "".join(o.get("text", "") for o in sc.get("outputs", [])
                   if o.get("type") == "stream" and o.get("name") == "stdout")


def describe(result):
    """Short description of a result for assertion messages."""
    return json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True))[:2000]


async def execute(client, code, kernel=None, **kw):
    args = {"code": code}
    if kernel is not None:
        args["kernel"] = kernel
    return await client.call_tool("execute_code", args, **kw)


async def call_expect_error(client, name, arguments):
    """Call a tool that must fail. Either a JSON-RPC error (MCPError) or a result with
    isError=true is an acceptable way to report it; returns a description of the error."""
    try:
        result = await client.call_tool(name, arguments)
    except MCPError as e:
        return f"MCPError {e.code}: {e.message}"
    assert result.is_error, f"{name}({arguments}) should fail, got {describe(result)}"
    return "isError: " + all_text(result)


# --------------------------------------------------------------------------------------------


def test_list_tools(server, mode):
    async def body():
        async with connect(server, mode) as client:
            listing = await client.list_tools()
            tools = {t.name: t for t in listing.tools}
            missing = CONTRACT_TOOLS - tools.keys()
            assert not missing, f"tools missing from tools/list: {sorted(missing)}"
            for name in CONTRACT_TOOLS:
                tool = tools[name]
                assert tool.description and tool.description.strip(), f"{name} has no description"
                schema = tool.input_schema
                assert schema.get("type") == "object", f"{name} inputSchema: {schema}"
                if name in KERNEL_TOOLS:
                    props = schema.get("properties", {})
                    assert "kernel" in props, f"{name} lacks the optional `kernel` argument"
                    assert "kernel" not in schema.get("required", []), f"{name}: kernel must be optional"
            ex = tools["execute_code"]
            assert "code" in ex.input_schema.get("required", []), ex.input_schema
            assert ex.output_schema, "execute_code must declare an outputSchema"
            assert ex.output_schema.get("type") == "object", ex.output_schema
            assert "status" in ex.output_schema.get("properties", {}), ex.output_schema
    run(body)


def test_state_survives_new_connection(server, mode):
    kernel = f"state-{mode}"

    async def body():
        async with connect(server, mode) as client:
            r = await execute(client, "x = 21", kernel)
            assert not r.is_error, describe(r)
            assert r.structured_content["status"] == "ok", describe(r)
        async with connect(server, mode) as client:  # a brand-new connection
            r = await execute(client, "print(x*2)", kernel)
            assert not r.is_error, describe(r)
            assert r.structured_content["status"] == "ok"
            assert stdout_of(r).strip() == "42", describe(r)
            assert "42" in all_text(r), describe(r)
    run(body)


def test_error_cell(server, mode):
    async def body():
        async with connect(server, mode) as client:
            r = await execute(client, "1/0")
            assert r.is_error, describe(r)
            sc = r.structured_content
            assert sc is not None, "error results must still carry structuredContent"
            assert sc["status"] == "error", describe(r)
            errors = [o for o in sc["outputs"] if o.get("type") == "error"]
            assert errors, describe(r)
            err = errors[0]
            assert err["ename"] == "ZeroDivisionError", err
            tb = err["traceback"]
            tb_text = "\n".join(tb) if isinstance(tb, list) else str(tb)
            assert "ZeroDivisionError" in tb_text
            assert not ANSI_RE.search(tb_text), f"ANSI escapes in traceback: {tb_text!r}"
            text = all_text(r)
            assert "ZeroDivisionError" in text, text
            assert not ANSI_RE.search(text), f"ANSI escapes in content text: {text!r}"
            assert "\x1b" not in json.dumps(sc)
    run(body)


def test_matplotlib_image(server, mode):
    async def body():
        async with connect(server, mode) as client:
            r = await execute(
                client, "import matplotlib.pyplot as plt; plt.plot([1,2,3]); plt.show()")
            assert not r.is_error, describe(r)
            images = [b for b in r.content if isinstance(b, ImageContent)]
            assert images, f"no image content block: {describe(r)}"
            img = images[0]
            assert img.mime_type == "image/png", img.mime_type
            raw = base64.b64decode(img.data, validate=True)
            assert raw.startswith(PNG_SIGNATURE), raw[:16]
            assert len(raw) > 1000
            kinds = [o.get("type") for o in r.structured_content["outputs"]]
            assert "image" in kinds, kinds
    run(body)


def test_progress_notifications(server, mode):
    # Both SDK modes deliver notifications/progress: with a progress_callback the SDK puts the
    # request id in params._meta.progressToken, and the server streams the call as SSE.
    code = ("import time\n"
            "for i in range(8):\n"
            "    print('tick', i, flush=True)\n"
            "    time.sleep(0.25)\n")

    async def body():
        events = []

        async def on_progress(progress, total, message):
            events.append((time.monotonic(), progress, total, message))

        async with connect(server, mode) as client:
            r = await execute(client, code, progress_callback=on_progress)
            done = time.monotonic()
            assert not r.is_error, describe(r)
            assert stdout_of(r).count("tick") == 8, describe(r)
            # callbacks are spawned tasks; give any last ones a moment to run
            await anyio.sleep(0.2)
            before = [e for e in events if e[0] < done]
            assert before, f"no progress notification before the result (got {len(events)} total)"
            progresses = [e[1] for e in events]
            assert progresses == sorted(progresses), f"progress must increase: {progresses}"
    run(body)


def test_large_output_truncated(server, mode):
    async def body():
        async with connect(server, mode) as client:
            r = await execute(client, "print('x'*5_000_000)")
            assert not r.is_error, describe(r)
            sc = r.structured_content
            assert sc["status"] == "ok"
            assert sc["truncated"] is True, {k: v for k, v in sc.items() if k != "outputs"}
            size = len(r.model_dump_json(by_alias=True, exclude_none=True).encode())
            assert size < 1024 * 1024, f"reply is {size} bytes"
            assert size < 512 * 1024, f"reply is {size} bytes, expected well under 1 MiB"
            out = stdout_of(r) + "\n" + all_text(r)
            assert "xxxxxxxx" in out, "the kept head/tail must still be there"
            assert re.search(r"truncat|omitted|elided|cut|skipped|dropped", out, re.I), \
                "no marker saying what was cut"
            assert re.search(r"\d", out.replace("x", "")), "marker should say how much was cut"
    run(body)


def test_get_kernel_status(server, mode):
    kernel = f"status-{mode}"

    async def body():
        async with connect(server, mode) as client:
            r = await execute(client, "a = 1", kernel)
            assert not r.is_error, describe(r)
            r = await client.call_tool("get_kernel_status", {"kernel": kernel})
            assert not r.is_error, describe(r)
            sc = r.structured_content
            assert sc["kernel"] == kernel, sc
            assert sc["state"] in {"idle", "busy", "starting"}, sc
            assert isinstance(sc["execution_count"], int) and sc["execution_count"] >= 1, sc
            assert re.match(r"3\.\d+", str(sc["python_version"])), sc
            assert sc["ipykernel_version"] == kernel_ipykernel_version(), sc
            assert isinstance(sc["uptime_secs"], (int, float)), sc
            assert "limits" in sc, sc
            assert isinstance(sc.get("memory_rss_bytes"), int) and sc["memory_rss_bytes"] > 0, sc
            # list_kernels shows it too
            r = await client.call_tool("list_kernels", {})
            assert not r.is_error, describe(r)
            names = [k["kernel"] for k in r.structured_content["kernels"]]
            assert kernel in names, names
    run(body)


def test_get_variables_dataframe(server, mode):
    kernel = f"vars-{mode}"

    async def body():
        async with connect(server, mode) as client:
            r = await execute(
                client,
                "import pandas as pd\n"
                "df = pd.DataFrame({'a': [1, 2, 3], 'b': [4.0, 5.0, 6.0]})\n"
                "n = 7",
                kernel)
            assert not r.is_error, describe(r)
            r = await client.call_tool("get_variables", {"kernel": kernel})
            assert not r.is_error, describe(r)
            variables = {v["name"]: v for v in r.structured_content["variables"]}
            assert "df" in variables and "n" in variables, sorted(variables)
            df = variables["df"]
            assert "DataFrame" in df["type"], df
            shape = df.get("shape")
            assert shape is not None, df
            if isinstance(shape, list):
                assert shape == [3, 2], df
            else:
                assert "3" in str(shape) and "2" in str(shape), df
            assert variables["n"]["type"] == "int", variables["n"]
            assert "7" in variables["n"]["repr"], variables["n"]
            # IPython internals are not variables
            assert not any(name.startswith("_") for name in variables), sorted(variables)
            r = await client.call_tool("inspect_variable", {"name": "df", "kernel": kernel})
            assert not r.is_error, describe(r)
            sc = r.structured_content
            assert sc["name"] == "df" and "DataFrame" in sc["type"], sc
            assert list(sc["columns"]) == ["a", "b"], sc
            r = await client.call_tool("inspect_variable", {"name": "no_such_name", "kernel": kernel})
            assert r.is_error, describe(r)
    run(body)


def test_notebook_round_trip(server, mode):
    path = f"sdk-{mode}.ipynb"
    cells = [
        {"cell_type": "markdown", "source": "# Title\n\nSome *text*."},
        {"cell_type": "code", "source": "x = 1\nprint(x + 1)"},
        {"cell_type": "raw", "source": "raw stuff"},
    ]

    async def body():
        async with connect(server, mode) as client:
            r = await client.call_tool("create_notebook", {"path": path, "cells": cells})
            assert not r.is_error, describe(r)
            r = await client.call_tool("read_notebook", {"path": path})
            assert not r.is_error, describe(r)
            sc = r.structured_content
            assert sc["total_cells"] == len(cells), sc
            got = sc["cells"]
            assert [c["cell_type"] for c in got] == [c["cell_type"] for c in cells], got
            for want, have in zip(cells, got):
                src = have["source"]
                src = "".join(src) if isinstance(src, list) else src
                assert src == want["source"], (want, have)
            assert [c["index"] for c in got] == [0, 1, 2], got
            assert all(c.get("id") for c in got), "nbformat 4.5 cells need ids"
            assert len({c["id"] for c in got}) == 3, got
            # creating again without overwrite must fail
            await call_expect_error(client, "create_notebook", {"path": path, "cells": cells})
            r = await client.call_tool("list_notebooks", {})
            assert not r.is_error, describe(r)
            assert path in [n["path"] for n in r.structured_content["notebooks"]], describe(r)
        # the file on disk is a valid nbformat v4 notebook
        import nbformat
        nb = nbformat.read(Path(server.workdir) / path, as_version=4)
        nbformat.validate(nb)
        assert [c.cell_type for c in nb.cells] == [c["cell_type"] for c in cells]
    run(body)


def test_unknown_tool(server, mode):
    async def body():
        async with connect(server, mode) as client:
            await client.list_tools()
            err = await call_expect_error(client, "no_such_tool", {})
            assert "no_such_tool" in err or "not found" in err.lower() or "unknown" in err.lower(), err
            r = await execute(client, "1+1")
            assert not r.is_error and "2" in all_text(r), describe(r)
    run(body)


def test_missing_required_argument(server, mode):
    async def body():
        async with connect(server, mode) as client:
            await client.list_tools()
            await call_expect_error(client, "execute_code", {})
            await call_expect_error(client, "inspect_variable", {})
            await call_expect_error(client, "read_notebook", {})
            # the server keeps working, on this connection and on a new one
            r = await execute(client, "1+1")
            assert not r.is_error, describe(r)
            assert r.structured_content["status"] == "ok"
            assert "2" in all_text(r), describe(r)
        async with connect(server, mode) as client:
            r = await execute(client, "print('still alive')")
            assert not r.is_error and "still alive" in stdout_of(r), describe(r)
    run(body)
