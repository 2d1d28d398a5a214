"""Executions that outlive their call, against the raw floor in the same run.

Run from the repository root with the project venv (`make bench` runs it after bench.py):

    .venv/bin/python bench/executions.py [--n 100] [--bin PATH]

Measures, through plain HTTP POSTs on one kept-alive stdlib connection (the lean client whose
distance to the raw floor is mostly the server's):
  finishes      p50 of execute_code `1+1`, which ends within its wait and answers as always;
  running       p50 of execute_code of a 0.3 s sleep with `wait: 0`: it answers `running` with an
                execution id at once (the cell is then waited for, untimed, before the next);
  get_execution p50 of a get_execution round trip on an execution that has ended;
  floor         p50 of `1+1` through raw jupyter_client over IPC on the same ipykernel,
                interleaved with the server's measures in rounds.
The figures that matter are ratios: running over finishes (answering `running` must cost no
more than finishing) and get_execution over the floor. Writes the `executions` section of
bench/results.json.
"""

import argparse
import http.client
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import RawClient, RawKernel, ServerProc, find_binary  # noqa: E402
from harness import POST_HEADERS, WORKLOADS, ratio, summary, write_section  # noqa: E402

SLEEP = "import time\ntime.sleep(0.3)"


class Calls:
    """tools/call over one kept-alive connection; each call returns (seconds, result)."""

    def __init__(self, url):
        u = urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        self.path = u.path
        self.id = 0

    def call(self, tool, arguments):
        self.id += 1
        body = {"jsonrpc": "2.0", "id": self.id, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments}}
        t = time.perf_counter()
        self.conn.request("POST", self.path, json.dumps(body), POST_HEADERS)
        resp = self.conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - t
        if resp.status != 200:
            raise RuntimeError(f"{tool}: HTTP {resp.status}: {data[:500]!r}")
        result = json.loads(data)["result"]
        return elapsed, result.get("structuredContent") or {}


def server_round(c, per_round, samples):
    """One round of the three server measures (the blocking stdlib client: clients take turns)."""
    for _ in range(per_round):
        t, out = c.call("execute_code", {"code": "1+1", "kernel": "bench-exec"})
        assert out.get("status") == "ok", out
        samples["finishes"].append(t)
        t, out = c.call("execute_code", {"code": SLEEP, "kernel": "bench-exec", "wait": 0})
        assert out.get("status") == "running", out
        samples["running"].append(t)
        execution_id = out["execution_id"]
        _, report = c.call("get_execution", {"execution_id": execution_id, "wait": 10})
        assert report.get("status") == "ok", report
        t, report = c.call("get_execution", {"execution_id": execution_id, "wait": 0})
        assert report.get("status") == "ok", report
        samples["get_execution_finished"].append(t)


async def measure(url, n, rounds):
    """The server's measures and the raw floor, interleaved in rounds so that load from other
    processes lands on both alike."""
    per_round = max(1, n // rounds)
    samples = {"finishes": [], "running": [], "get_execution_finished": [], "floor_1+1": []}
    c = Calls(url)
    raw = await RawKernel().start()
    try:
        floor = RawClient(raw)
        for _ in range(5):
            c.call("execute_code", {"code": "1+1", "kernel": "bench-exec"})
            await floor.call("1+1", WORKLOADS["1+1"])
        for r in range(rounds):
            print(f"  executions round {r + 1}/{rounds}", file=sys.stderr)
            server_round(c, per_round, samples)
            for _ in range(per_round):
                samples["floor_1+1"].append(await floor.call("1+1", WORKLOADS["1+1"]))
    finally:
        await raw.stop()
        c.conn.close()
    return {k: summary(v) for k, v in samples.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5, help="rounds the server and floor alternate in")
    ap.add_argument("--bin", help="server binary (default: target/release, else target/debug)")
    args = ap.parse_args()
    binary = find_binary(args.bin)
    if binary is None or not binary.exists():
        sys.exit("no server binary: build it (cargo build --release) or pass --bin")
    server = ServerProc(binary)
    try:
        res = anyio.run(measure, server.url, args.n, args.rounds)
    finally:
        left = server.stop()
    res["left_over"] = left
    res["running_over_finishes_p50"] = ratio(res["running"]["p50_ms"], res["finishes"]["p50_ms"])
    res["get_execution_over_floor_p50"] = ratio(res["get_execution_finished"]["p50_ms"],
                                                res["floor_1+1"]["p50_ms"])
    res["finishes_over_floor_p50"] = ratio(res["finishes"]["p50_ms"], res["floor_1+1"]["p50_ms"])
    print("| measure | p50 | p99 | p50 ratio |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| raw jupyter_client `1+1` (floor) | {res['floor_1+1']['p50_ms']:.2f} ms "
          f"| {res['floor_1+1']['p99_ms']:.2f} ms | 1 |")
    print(f"| execute_code `1+1`, finishes | {res['finishes']['p50_ms']:.2f} ms "
          f"| {res['finishes']['p99_ms']:.2f} ms | {res['finishes_over_floor_p50']:.2f}x floor |")
    print(f"| execute_code answering `running` | {res['running']['p50_ms']:.2f} ms "
          f"| {res['running']['p99_ms']:.2f} ms | {res['running_over_finishes_p50']:.2f}x "
          "finishing |")
    print(f"| get_execution, ended | {res['get_execution_finished']['p50_ms']:.2f} ms "
          f"| {res['get_execution_finished']['p99_ms']:.2f} ms "
          f"| {res['get_execution_over_floor_p50']:.2f}x floor |")
    write_section("executions", res)


if __name__ == "__main__":
    main()
