"""Latency the S3 write-through adds (`--workspace-bucket`), against a local S3 API (the `moto`
server on loopback): p50 of small calls with the bucket, as a ratio to the same calls without,
and the S3 requests each call makes (counted in moto's request log, so not skewed by load).

    .venv/bin/python bench/workspace.py [--n 50] [--list-cache-ms MS]

Cases: execute_code('1+1') (no file changes: the refresh before the call, a directory walk and
the history append after), execute_code writing a small file (plus one conditional PUT),
execute_cell on a one-cell notebook (the notebook is rewritten and uploaded). --list-cache-ms
adds a run with `--workspace-list-cache-ms MS` (the refresh LIST reused for MS). Skipped (exit 0)
when moto is not installed. Writes the `workspace` section of bench/results.json.
Every process it starts is stopped by PID.
"""

import argparse
import collections
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "clients"))
from harness import write_section  # noqa: E402

REQUEST = re.compile(r'"(GET|PUT|HEAD|DELETE|POST) (\S+) HTTP/[\d.]+" (\d+)')


def s3_requests(lines):
    """Counts of S3 requests by kind (LIST, GET, GET 304, PUT, PUT 412, HEAD, DELETE)."""
    out = collections.Counter()
    for line in lines:
        m = REQUEST.search(line)
        if not m:
            continue
        method, path, status = m.groups()
        kind = "LIST" if method == "GET" and "list-type=2" in path else method
        if status in ("304", "412"):
            kind += f" {status}"
        out[kind] += 1
    return out


async def measure(url, n, log_path):
    from mcp import Client
    out = {}

    def lines():
        return log_path.read_text(errors="replace").splitlines() if log_path else []
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
            await anyio.sleep(0.5)  # moto logs a request just after answering it
            before = len(lines())
            samples = []
            for i in range(n):
                t = time.perf_counter()
                r = await c.call_tool(tool, args(i))
                samples.append((time.perf_counter() - t) * 1000)
                assert not r.is_error, r
            await anyio.sleep(0.5)
            counts = s3_requests(lines()[before:])
            per_call = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(counts.items()))
            out[name] = (statistics.median(samples), per_call or "none")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--list-cache-ms", type=int, default=None)
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
    log_dir = Path(tempfile.mkdtemp(prefix="jmcp-bench-moto-"))
    log_path = log_dir / "moto.log"
    log = open(log_path, "w")
    moto_proc, endpoint, _ = start_moto(log=log)
    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_S3": endpoint}
    runs = [("no bucket", []), ("bucket", ["--workspace-bucket", BUCKET])]
    if args.list_cache_ms is not None:
        runs.append((f"bucket, list cache {args.list_cache_ms} ms",
                     ["--workspace-bucket", BUCKET, "--workspace-prefix", "cached/",
                      "--workspace-list-cache-ms", str(args.list_cache_ms)]))
    try:
        results = {}
        for label, extra in runs:
            s = Server(extra_args=extra, env={**os.environ, **fake})
            try:
                results[label] = anyio.run(measure, s.url, args.n, log_path if extra else None)
            finally:
                s.stop()
        base = results.pop("no bucket")
        print(f"\n| call (p50 of {args.n}, local moto S3) | server | no bucket ms | bucket ms | ratio "
              "| S3 requests per call |")
        print("| --- | --- | --- | --- | --- | --- |")
        for label, cases in results.items():
            for case, (ms, per_call) in cases.items():
                a = base[case][0]
                print(f"| {case} | {label} | {a:.1f} | {ms:.1f} | {ms / a:.2f}x | {per_call} |")
        write_section("workspace", {"n": args.n, "no bucket": base, "with a bucket": results})
    finally:
        moto_proc.kill()
        moto_proc.wait()
        log.close()
        log_path.unlink(missing_ok=True)
        log_dir.rmdir()


if __name__ == "__main__":
    main()
