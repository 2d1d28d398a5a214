"""Streamed against buffered responses under the Lambda emulator (`cargo lambda watch`).

Run from the repository root with the project venv:

    .venv/bin/python bench/lambda_emulator.py [--n 50]

For each response mode (streaming, the default of a Function URL, and buffered) it starts the
emulator exactly as tests/clients/test_lambda.py does (the real binary, built in debug by the
emulator's cargo), waits for the cold start, makes 5 warm-up calls and then N plain JSON-RPC
POSTs of execute_code('1+1') to the emulated Function URL, and prints p50/p99 of each mode and
the streamed/buffered ratio. Every process it starts is stopped by its process group.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "clients"))
from test_lambda import DEFAULT_PORT, Emulator, free_port, port_is_free  # noqa: E402

import httpx2  # noqa: E402

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream",
           "mcp-protocol-version": "2025-11-25"}


def call(client, url, i):
    body = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "execute_code", "arguments": {"code": "1+1"}}}
    t = time.perf_counter()
    resp = client.post(url, content=json.dumps(body), headers=HEADERS, timeout=120)
    elapsed = time.perf_counter() - t
    assert resp.status_code == 200 and '"2"' in resp.text, resp.text[:300]
    return elapsed


def measure(mode, n):
    port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    emu = Emulator(mode, port)
    try:
        with emu.running():
            emu.wait_function_ready()
            with httpx2.Client() as client:
                for i in range(5):
                    call(client, emu.url, i)
                samples = [call(client, emu.url, 100 + i) for i in range(n)]
    finally:
        if getattr(emu, "left", None):
            print(f"[{mode}] left running: {emu.left}", file=sys.stderr)
    xs = sorted(samples)
    return {"p50_ms": statistics.median(xs) * 1e3, "p99_ms": xs[int(0.99 * (len(xs) - 1))] * 1e3}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    results = {mode: measure(mode, args.n) for mode in ["buffered", "streaming"]}
    print("| response mode | p50 | p99 |\n| --- | ---: | ---: |")
    for mode, r in results.items():
        print(f"| {mode} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |")
    ratio = results["streaming"]["p50_ms"] / results["buffered"]["p50_ms"]
    print(f"streamed / buffered p50: {ratio:.2f}x")


if __name__ == "__main__":
    main()
