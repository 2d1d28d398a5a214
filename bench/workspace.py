"""Latency the S3 write-through adds (`--workspace-bucket`), against a local S3 API (the `moto`
server on loopback): p50 of small calls with the bucket, as a ratio to the same calls without.

    .venv/bin/python bench/workspace.py [--n 50]

Cases: execute_code('1+1') (nothing changes: one LIST before the call, a directory walk after),
execute_code writing a small file (plus one conditional PUT), execute_cell on a one-cell
notebook (the notebook is rewritten and uploaded). Skipped (exit 0) when moto is not installed.
Writes the `workspace` section of bench/results.json.
Every process it starts is stopped by PID.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "clients"))
from harness import write_section  # noqa: E402


async def measure(url, n):
    from mcp import Client
    out = {}
    async with Client(url, mode="legacy", read_timeout_seconds=120) as c:
        await c.call_tool("execute_code", {"code": "1"})
        await c.call_tool("create_notebook", {"path": "bench.ipynb"})
        await c.call_tool("insert_cell", {"path": "bench.ipynb", "cell_type": "code", "source": "2+2"})
        cases = {
            "execute_code 1+1": ("execute_code", lambda i: {"code": "1+1"}),
            "execute_code writing 1 KiB": ("execute_code", lambda i: {
                "code": f"open('bench.txt','w').write('{i}' * 1024)"}),
            "execute_cell": ("execute_cell", lambda i: {"path": "bench.ipynb", "cell": 0}),
        }
        for name, (tool, args) in cases.items():
            samples = []
            for i in range(n):
                t = time.perf_counter()
                r = await c.call_tool(tool, args(i))
                samples.append((time.perf_counter() - t) * 1000)
                assert not r.is_error, r
            out[name] = statistics.median(samples)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args()
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError:
        print("workspace bench skipped: moto is not installed (pip install -r requirements-test.txt)")
        return
    from conftest import Server
    # The moto server and bucket exactly as tests/clients/test_workspace.py makes them.
    from test_workspace import BUCKET, start_moto
    moto_proc, endpoint, _ = start_moto()
    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_S3": endpoint}
    try:
        results = {}
        for label, extra in [("no bucket", []), ("bucket", ["--workspace-bucket", BUCKET])]:
            s = Server(extra_args=extra, env={**os.environ, **fake})
            try:
                results[label] = anyio.run(measure, s.url, args.n)
            finally:
                s.stop()
        print(f"\n| call (p50 of {args.n}, local moto S3) | no bucket ms | bucket ms | ratio |")
        print("| --- | --- | --- | --- |")
        for case in results["no bucket"]:
            a, b = results["no bucket"][case], results["bucket"][case]
            print(f"| {case} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")
        write_section("workspace", {"n": args.n, "p50_ms": results})
    finally:
        moto_proc.kill()
        moto_proc.wait()


if __name__ == "__main__":
    main()
