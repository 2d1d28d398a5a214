"""Long-running work through the official Python MCP SDK with its default timeouts: a cell that
runs longer than any client waits for a call answers `running` with an execution id, is polled
to the end with get_execution, and its kernel keeps its variables.

The 150 s cell runs once, over the legacy (initialize) era; the stateless 2026-07-28 era runs
the same path with a short cell and a short `wait`.
"""

import time

import pytest
from mcp import Client
from sdk_helpers import run

CALL_WAIT = 40  # the server's default --call-wait


def structured(result):
    return result.structured_content or {}


async def poll_to_end(client, execution_id):
    """get_execution with its default wait until the execution ended; returns the last report."""
    for _ in range(20):
        report = await client.call_tool("get_execution", {"execution_id": execution_id})
        assert not report.is_error, report
        if structured(report)["status"] != "running":
            return report
    raise AssertionError(f"execution {execution_id} still running after 20 polls")


def ticking(seconds):
    return (
        "import time\n"
        f"for i in range({seconds}):\n"
        "    print(f'tick {i}', flush=True)\n"
        "    time.sleep(1)\n"
        f"finished = {seconds}"
    )


async def long_cell(server, mode, seconds, wait):
    # Default timeouts: no read_timeout_seconds of our own.
    async with Client(server.url, mode=mode) as client:
        args = {"code": ticking(seconds)}
        if wait is not None:
            args["wait"] = wait
        started = time.monotonic()
        first = await client.call_tool("execute_code", args)
        answered = time.monotonic() - started
        limit = (CALL_WAIT if wait is None else wait) + 1
        assert answered < limit, f"answered after {answered:.1f} s"
        assert structured(first)["status"] == "running", first
        execution_id = structured(first)["execution_id"]
        report = await poll_to_end(client, execution_id)
    # A new connection reads the variables the execution left.
    async with Client(server.url, mode=mode) as client:
        result = structured(report)["result"]
        assert result["status"] == "ok", report
        printed = "".join(o.get("text", "") for o in result["outputs"] if o["type"] == "stream")
        assert "tick 0" in printed and f"tick {seconds - 1}" in printed, printed[-500:]
        again = await client.call_tool("execute_code", {"code": "finished"})
        assert structured(again)["outputs"][0]["text"] == str(seconds)


def test_a_150_s_cell_is_polled_to_the_end_with_default_timeouts(server):
    run(long_cell, server, "legacy", 150, None)


def test_a_cell_past_its_wait_is_polled_to_the_end_statelessly(server):
    run(long_cell, server, "2026-07-28", 6, 2)


def test_a_client_that_leaves_after_running_reads_the_result_later(server):
    async def body():
        async with Client(server.url, mode="legacy") as client:
            first = await client.call_tool(
                "execute_code", {"code": ticking(4), "kernel": "leaver", "wait": 1}
            )
            execution_id = structured(first)["execution_id"]
        # The connection is gone; the work is not.
        await anyio_sleep(5)
        async with Client(server.url, mode="2026-07-28") as client:
            report = await client.call_tool(
                "get_execution", {"execution_id": execution_id, "wait": 0}
            )
            assert structured(report)["status"] == "ok", report

    run(body)


async def anyio_sleep(seconds):
    import anyio

    await anyio.sleep(seconds)
