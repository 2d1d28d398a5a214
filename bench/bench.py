"""The server against a raw jupyter_client floor, side by side in one run on the same ipykernel.

Run from the repository root with the project venv (this is what `make bench` does):

    .venv/bin/python bench/bench.py [--n 200] [--rounds 5] [--bin PATH] [--raw-only]

Measures (one function each; bench/README.md says how each is taken):
  latency      p50/p99 of `1+1`, a warm plot and a 1 MB print, for raw jupyter_client over IPC,
               plain HTTP POSTs (httpx2, and the stdlib's http.client), the Python SDK (both
               eras) and the TypeScript SDK (bench/ts_client.mjs), interleaved in rounds so
               drift hits every client alike;
  parallel     calls per second with 8 kernels busy at once: 8 plain-HTTP caller processes on
               8 kernel names against 8 raw caller processes, each with its own raw kernel;
  first call   execute_code on a new kernel name (warm spare ready);
  cold start   process start to the first execute_code answer, against a raw kernel's start to
               its first execute_reply;
  memory       the server's RSS idle and after everything above.
Every figure is also given as a ratio to the raw floor of the same run. Prints a markdown table
and writes the `bench` section of bench/results.json. Every process it starts is stopped by PID.
"""

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (NODE, POST_HEADERS, RESULTS, ROOT, VENV_PY, WORKLOADS,  # noqa: E402
                     check_jsonrpc_reply, check_text_and_images, descendants, execute_body, kill_pids, pid_alive, post_execute, post_execute_sync, ratio,
                     summary, vm_rss_kib, write_section)

URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)/mcp")
SDK_MODES = ["2026-07-28", "legacy"]
TS_DRIVER = ROOT / "bench" / "ts_client.mjs"
FIRST_CALL_NAMES = [f"bench-new-{i}" for i in range(1, 6)]
SPARE_WARMUP_SECS = 3.0
PARALLEL_KERNELS = 8
WARMUP_CALLS = 5  # per client and workload; the plot's first one imports matplotlib
TS_WARMUP_CALLS = 2  # per round: each round is a new node process and connection
CALL_TIMEOUT_SECS = 120


# ------------------------------------------------------------------------------ raw floor

class RawKernel:
    """One ipykernel started by jupyter_client over IPC (unix sockets in a private directory,
    like the server's), with the server's matplotlib backend, and its async client."""

    def __init__(self):
        self.sockdir = tempfile.mkdtemp(prefix="jmcp-raw-")
        self.km = self.kc = self.pid = None

    async def start(self):
        from jupyter_client.manager import AsyncKernelManager
        self.km = AsyncKernelManager(kernel_name="python3", transport="ipc",
                                     ip=os.path.join(self.sockdir, "k"))
        env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
               "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        await self.km.start_kernel(env=env)
        self.pid = self.km.provisioner.pid if self.km.provisioner else None
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=CALL_TIMEOUT_SECS)
        return self

    async def execute(self, code):
        """Sends execute_request and reads iopub up to this request's idle, then its shell
        execute_reply: both, as the server requires both. Returns (reply, outputs)."""
        msg_id = self.kc.execute(code, store_history=True)
        outputs = []
        while True:
            msg = await self.kc.get_iopub_msg(timeout=CALL_TIMEOUT_SECS)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
            if kind in ("stream", "execute_result", "display_data", "error"):
                outputs.append(msg)
        while True:
            reply = await self.kc.get_shell_msg(timeout=CALL_TIMEOUT_SECS)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply, outputs

    async def stop(self):
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None:
            try:
                await self.km.shutdown_kernel(now=True)
            except Exception as e:  # noqa: BLE001 - fall through to the PID kill below
                print(f"raw kernel shutdown failed: {e}", file=sys.stderr)
        if self.pid and pid_alive(self.pid):
            kill_pids([self.pid])
        shutil.rmtree(self.sockdir, ignore_errors=True)


def check_raw(name, workload, reply, outputs):
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{name}: raw execute failed: {reply['content']}")
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    text += "".join(m["content"].get("data", {}).get("text/plain", "") for m in outputs
                    if m["msg_type"] == "execute_result")
    mimes = {k for m in outputs if m["msg_type"] == "display_data" for k in m["content"]["data"]}
    check_text_and_images(name, workload, text, mimes)


# ------------------------------------------------------------------------------ the server

class ServerProc:
    """The server binary on a free loopback port; `listening_s`: from Popen to its URL line."""

    def __init__(self, binary, max_kernels=None):
        self.workdir = tempfile.mkdtemp(prefix="jmcp-bench-")
        args = [str(binary), "--port", "0", "--host", "127.0.0.1", "--working-dir", self.workdir,
                "--python", str(VENV_PY)]
        if max_kernels:
            args += ["--max-kernels", str(max_kernels)]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.pid = self.proc.pid
        self.log, self.url, self.seen_children = [], None, set()
        found = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.log.append(line)
                if self.url is None and (m := URL_RE.search(line)):
                    self.url = m.group(0)
                    self.listening_s = time.perf_counter() - self.started
                    found.set()
        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(60):
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.log))

    def note_children(self):
        self.seen_children |= descendants(self.pid)

    def stop(self):
        """SIGTERM, then every kernel it should have stopped is killed by PID after 5 s and
        returned as left over."""
        if self.proc.poll() is None:
            self.note_children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                print("server ignored SIGTERM for 20 s; killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 5
        left = [p for p in self.seen_children if pid_alive(p)]
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [p for p in left if pid_alive(p)]
        if left:
            print(f"server left child processes running: {left}; killing them", file=sys.stderr)
            kill_pids(left)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return left


# ------------------------------------------------------------------------------ clients
# Each client runs a workload on the server's (or its raw) kernel and returns seconds per call;
# every answer is checked after its clock stops.

class RawClient:
    label = "raw jupyter_client (IPC)"

    def __init__(self, kernel):
        self.kernel = kernel

    async def call(self, name, workload):
        t = time.perf_counter()
        reply, outputs = await self.kernel.execute(workload.code)
        elapsed = time.perf_counter() - t
        check_raw(name, workload, reply, outputs)
        return elapsed


class HttpClient:
    label = "plain HTTP POST (httpx2)"

    def __init__(self, http, url):
        self.http, self.url = http, url

    async def call(self, name, workload):
        return await post_execute(self.http, self.url, name, workload)


class StdlibHttpClient:
    """Plain POSTs through Python's own http.client on one kept-alive connection: the leanest
    Python HTTP client, so its distance to the raw floor is mostly the server's (httpx2 spends
    about half a millisecond a call of its own). Blocking, which is fine: clients take turns."""
    label = "plain HTTP POST (http.client)"

    def __init__(self, url):
        u = urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=CALL_TIMEOUT_SECS)
        self.path = u.path

    async def call(self, name, workload):
        t = time.perf_counter()
        self.conn.request("POST", self.path, json.dumps(execute_body(workload.code, 1, None)),
                          POST_HEADERS)
        resp = self.conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - t
        check_jsonrpc_reply(name, workload, resp.status,
                            json.loads(data) if resp.status == 200 else None)
        return elapsed

    def close(self):
        self.conn.close()


class SdkClient:
    def __init__(self, client, mode):
        self.client, self.label = client, f"Python mcp SDK, {mode}"

    async def call(self, name, workload):
        t = time.perf_counter()
        r = await self.client.call_tool("execute_code", {"code": workload.code})
        elapsed = time.perf_counter() - t
        if r.is_error or (r.structured_content or {}).get("status") != "ok":
            raise RuntimeError(f"{name}: execute_code failed: {r.model_dump_json()[:1000]}")
        text = "\n".join(getattr(b, "text", "") for b in r.content if b.type == "text")
        mimes = {b.mime_type for b in r.content if b.type == "image"}
        check_text_and_images(name, workload, text, mimes)
        return elapsed


async def ts_round(url, n):
    """One node process of bench/ts_client.mjs: TS_WARMUP_CALLS then N[name] timed calls per
    workload. Returns ({name: seconds}, protocol version)."""
    if not NODE.exists() or not (ROOT / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        raise RuntimeError(f"{NODE} or the TypeScript SDK is missing: run `npm ci` in {ROOT}")
    spec = json.dumps({k: {**w.as_json(), "n": n[k]} for k, w in WORKLOADS.items()})
    proc = await anyio.run_process([str(NODE), str(TS_DRIVER), url, spec, "1",
                                    str(TS_WARMUP_CALLS)], check=False, cwd=ROOT)
    lines = [l for l in proc.stdout.decode().splitlines() if l.startswith("{")]
    out = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0 or not out.get("ok"):
        raise RuntimeError(f"ts_client.mjs failed ({proc.returncode}): {out or proc.stdout[-2000:]}"
                           f"\n{proc.stderr.decode()[-2000:]}")
    return {k: [x / 1000.0 for x in v] for k, v in out["samples_ms"].items()}, out["protocolVersion"]


# ------------------------------------------------------------------------------ measures

async def measure_latency(url, n, n_heavy, rounds):
    """p50/p99 per workload and client: N calls of `1+1`, N_HEAVY of the others. Rounds
    interleave the clients (the order rotates each round) so that load from other processes
    lands on all of them alike."""
    import httpx2
    from mcp import Client
    per_round = {k: max(1, (n if k == "1+1" else n_heavy) // rounds) for k in WORKLOADS}
    samples = {}  # label -> workload -> [seconds]
    async with AsyncExitStack() as stack:
        raw = await RawKernel().start()
        stack.push_async_callback(raw.stop)
        stdlib = StdlibHttpClient(url)
        stack.callback(stdlib.close)
        clients = [RawClient(raw), HttpClient(await stack.enter_async_context(
            httpx2.AsyncClient(timeout=CALL_TIMEOUT_SECS)), url), stdlib]
        for mode in SDK_MODES:
            c = await stack.enter_async_context(
                Client(url, mode=mode, read_timeout_seconds=CALL_TIMEOUT_SECS))
            await c.list_tools()
            clients.append(SdkClient(c, mode))
        ts_label, ts_version = "TypeScript SDK", None
        for c in clients:
            samples[c.label] = {k: [] for k in WORKLOADS}
            for name, w in WORKLOADS.items():
                for _ in range(WARMUP_CALLS):
                    await c.call(name, w)
        samples[ts_label] = {k: [] for k in WORKLOADS}
        order = clients + [ts_label]
        for r in range(rounds):
            print(f"  latency round {r + 1}/{rounds}", file=sys.stderr)
            for c in order[r % len(order):] + order[:r % len(order)]:
                if c == ts_label:
                    got, ts_version = await ts_round(url, per_round)
                    for k, v in got.items():
                        samples[ts_label][k] += v
                    continue
                for name, w in WORKLOADS.items():
                    for _ in range(per_round[name]):
                        samples[c.label][name].append(await c.call(name, w))
    out = {"per_round": per_round, "rounds": rounds, "ts_protocol_version": ts_version,
           "clients": {}}
    floor = {k: summary(v) for k, v in samples[RawClient.label].items()}
    for label, by_workload in samples.items():
        out["clients"][label] = {}
        for k, v in by_workload.items():
            s = summary(v)
            s["p50_ratio"] = ratio(s["p50_ms"], floor[k]["p50_ms"])
            s["p99_ratio"] = ratio(s["p99_ms"], floor[k]["p99_ms"])
            out["clients"][label][k] = s
    return out


def measure_parallel(url, kernels, calls, rounds):
    """Calls per second with KERNELS kernels busy at once: KERNELS caller processes doing CALLS
    `1+1` calls each, raw (each with its own raw kernel and client) and through the server (each
    a plain-HTTP client on its own kernel name), alternating in ROUNDS rounds. A side's round
    starts when all its callers are told to go and ends when the last one has answered; its rate
    is all its calls over the wall time of its rounds. One process per caller, so that neither
    side is held back by one Python process's event loop (the callers are the floor's too)."""
    names = [f"bench-par-{i}" for i in range(1, kernels + 1)]
    workers = {"raw": [], "server": []}
    wall = {"raw": 0.0, "server": 0.0}
    lat = {"raw": [], "server": []}
    kernel_pids = []
    try:
        for side in ("raw", "server"):
            for name in names:
                workers[side].append(subprocess.Popen(
                    [str(VENV_PY), __file__, "--parallel-worker", side, "--url", url,
                     "--kernel", name, "--parallel-calls", str(calls)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, cwd=ROOT))
        for w in workers["raw"] + workers["server"]:  # kernels started and warm, untimed
            line = w.stdout.readline().split()
            if not line or line[0] != "ready":
                raise RuntimeError(f"a parallel caller did not start: {line}")
            kernel_pids += [int(x) for x in line[1:]]
        for r in range(rounds):
            for side in (["raw", "server"] if r % 2 == 0 else ["server", "raw"]):
                t = time.perf_counter()
                for w in workers[side]:
                    w.stdin.write("go\n")
                for w in workers[side]:
                    line = w.stdout.readline()
                    if not line.startswith("{"):
                        raise RuntimeError(f"a {side} caller failed: {line!r}")
                    lat[side] += json.loads(line)["latency_s"]
                wall[side] += time.perf_counter() - t
    finally:
        for w in workers["raw"] + workers["server"]:
            try:
                w.stdin.close()  # EOF: the caller stops its kernel (raw) or shuts it down
            except OSError:
                pass
        for w in workers["raw"] + workers["server"]:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_pids([w.pid])
                w.wait()
        kill_pids([p for p in kernel_pids if pid_alive(p)])
    total = kernels * calls * rounds
    out = {"kernels": kernels, "calls_per_caller_per_round": calls, "rounds": rounds,
           "callers": "one process each"}
    for side in ("raw", "server"):
        out[side] = {"calls": total, "wall_s": round(wall[side], 3),
                     "calls_per_s": round(total / wall[side], 1), "latency": summary(lat[side])}
    out["ratio"] = ratio(out["server"]["calls_per_s"], out["raw"]["calls_per_s"])
    return out


async def parallel_worker(side, url, kernel, calls):
    """One caller process of measure_parallel: starts and warms its kernel, says `ready` (with
    the raw kernel's PID, for the parent to kill if this process dies), then runs CALLS calls
    for each `go` line and prints their latencies as one JSON line; at EOF it stops its kernel."""
    import httpx2
    w = WORKLOADS["1+1"]
    readline = lambda: anyio.to_thread.run_sync(sys.stdin.readline)  # noqa: E731
    if side == "raw":
        k = await RawKernel().start()
        try:
            client = RawClient(k)
            await client.call("1+1", w)
            print("ready", k.pid or "", flush=True)
            while (await readline()).strip() == "go":
                print(json.dumps({"latency_s": [await client.call("1+1", w)
                                                for _ in range(calls)]}), flush=True)
        finally:
            await k.stop()
        return
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT_SECS) as http:
        await post_execute(http, url, "1+1", w, kernel=kernel)
        print("ready", flush=True)
        try:
            while (await readline()).strip() == "go":
                print(json.dumps({"latency_s": [await post_execute(http, url, "1+1", w,
                                                                   kernel=kernel)
                                                for _ in range(calls)]}), flush=True)
        finally:  # give the memory back before the next measures
            await http.post(url, headers=POST_HEADERS, json={
                "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "shutdown_kernel", "arguments": {"kernel": kernel}}})


async def measure_first_call(server, since):
    """execute_code (plain POST) on each of FIRST_CALL_NAMES, each at least SPARE_WARMUP_SECS
    after the previous kernel started, so the warm spare is ready."""
    import httpx2
    firsts = []
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT_SECS) as http:
        last_start = since
        for name in FIRST_CALL_NAMES:
            wait = SPARE_WARMUP_SECS - (time.monotonic() - last_start)
            if wait > 0:
                await anyio.sleep(wait)
            firsts.append(await post_execute(http, server.url, "1+1", WORKLOADS["1+1"], kernel=name))
            last_start = time.monotonic()
            server.note_children()
    return {"names": FIRST_CALL_NAMES, "samples_ms": [round(x * 1000.0, 1) for x in firsts],
            "median_ms": round(statistics.median(firsts) * 1000.0, 1),
            "spare_warmup_secs": SPARE_WARMUP_SECS}


async def measure_cold_start(binary, reps):
    """Process start to the first execute_code('1+1') answer: the server (Popen, its URL line,
    one plain POST; its spare and first kernel start inside that) against a raw kernel (start,
    wait_for_ready, execute until reply and idle), alternating, REPS each; medians."""
    import httpx2
    server_s, listening_s, raw_s, left = [], [], [], []
    for _ in range(reps):
        t = time.perf_counter()
        raw = RawKernel()
        try:
            await raw.start()
            reply, outputs = await raw.execute("1+1")
            raw_s.append(time.perf_counter() - t)
            check_raw("cold 1+1", WORKLOADS["1+1"], reply, outputs)
        finally:
            await raw.stop()

        def server_once():
            t = time.perf_counter()
            s = ServerProc(binary)
            try:
                with httpx2.Client(timeout=CALL_TIMEOUT_SECS) as http:
                    post_execute_sync(http, s.url, "cold 1+1", WORKLOADS["1+1"])
                server_s.append(time.perf_counter() - t)
                listening_s.append(s.listening_s)
            finally:
                left.extend(s.stop())
        await anyio.to_thread.run_sync(server_once)
        await anyio.sleep(1.0)
    ms = lambda xs: [round(x * 1000.0, 1) for x in xs]  # noqa: E731
    med = lambda xs: round(statistics.median(xs) * 1000.0, 1)  # noqa: E731
    return {"reps": reps,
            "server": {"samples_ms": ms(server_s), "median_ms": med(server_s),
                       "listening_median_ms": med(listening_s)},
            "raw": {"samples_ms": ms(raw_s), "median_ms": med(raw_s)},
            "ratio": ratio(med(server_s), med(raw_s)), "left_over": left}


async def bench_server(binary, args):
    out = {"binary": str(binary), "binary_kind": binary.parent.name}
    max_kernels = 1 + PARALLEL_KERNELS + len(FIRST_CALL_NAMES) + 2
    server = ServerProc(binary, max_kernels)
    out["max_kernels"] = max_kernels
    try:
        await anyio.sleep(2.0)  # let it settle (and start its warm spare)
        rss = {"idle_after_start": vm_rss_kib(server.pid)}
        print(f"latency: {len(WORKLOADS)} workloads x 5 clients, n={args.n}/{args.n_heavy}",
              file=sys.stderr)
        out["latency"] = await measure_latency(server.url, args.n, args.n_heavy, args.rounds)
        server.note_children()
        rss["after_latency"] = vm_rss_kib(server.pid)
        print(f"parallel: {PARALLEL_KERNELS} kernels", file=sys.stderr)
        out["parallel"] = await anyio.to_thread.run_sync(
            measure_parallel, server.url, PARALLEL_KERNELS, args.parallel_calls, args.rounds)
        server.note_children()
        rss["after_parallel"] = vm_rss_kib(server.pid)
        print("first call on a new kernel name", file=sys.stderr)
        out["first_call"] = await measure_first_call(server, time.monotonic())
        await anyio.sleep(1.0)
        rss["at_end"] = vm_rss_kib(server.pid)
        out["rss_kib"] = rss
    finally:
        out["left_over"] = server.stop()
        if server.proc.returncode not in (0, -signal.SIGTERM, 143):
            out["server_exit_code"] = server.proc.returncode
    print(f"cold start, {args.cold_reps} x server and raw", file=sys.stderr)
    out["cold_start"] = await measure_cold_start(binary, args.cold_reps)
    return out


# ------------------------------------------------------------------------------ report

def render(res):
    """The markdown table of the `bench` section (bench/lambda_emulator.py adds its rows)."""
    lat = res["server"]["latency"]
    lines = ["| measure | client | p50 | p99 | p50 / floor | p99 / floor |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for k in WORKLOADS:
        for label, by_workload in lat["clients"].items():
            s = by_workload[k]
            lines.append(f"| `{k}` | {label} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms "
                         f"| {s['p50_ratio']:.2f}x | {s['p99_ratio']:.2f}x |")
    par = res["server"]["parallel"]
    lines.append(f"| {par['kernels']} kernels busy, calls/s | raw: {par['kernels']} processes "
                 f"| {par['raw']['calls_per_s']:.0f}/s | | 1 | |")
    lines.append(f"| {par['kernels']} kernels busy, calls/s | plain HTTP, {par['kernels']} processes "
                 f"| {par['server']['calls_per_s']:.0f}/s | | {par['ratio']:.2f}x | |")
    cold = res["server"]["cold_start"]
    fc = res["server"]["first_call"]
    lines.append(f"| cold start to first result | raw kernel (start + execute) "
                 f"| {cold['raw']['median_ms']:.0f} ms | | 1 | |")
    lines.append(f"| cold start to first result | server process, plain HTTP "
                 f"| {cold['server']['median_ms']:.0f} ms | | {cold['ratio']:.2f}x | |")
    lines.append(f"| first call on a new kernel name (spare warm) | plain HTTP "
                 f"| {fc['median_ms']:.0f} ms | | {fc['median_ms'] / cold['raw']['median_ms']:.2f}x | |")
    rss = res["server"]["rss_kib"]
    lines.append(f"| server RSS idle / at end | | {rss['idle_after_start'] / 1024:.1f} MiB "
                 f"/ {rss['at_end'] / 1024:.1f} MiB | | | |")
    return "\n".join(lines)


def find_binary(explicit):
    if explicit:
        return Path(explicit)
    for kind in ("release", "debug"):
        p = ROOT / "target" / kind / "jupyter-mcp-server"
        if p.exists():
            return p
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="timed `1+1` calls per client")
    ap.add_argument("--n-heavy", type=int, default=100,
                    help="timed calls per client of the plot and of the 1 MB print")
    ap.add_argument("--rounds", type=int, default=5, help="rounds the clients are interleaved in")
    ap.add_argument("--parallel-calls", type=int, default=50,
                    help="calls per caller per round in the parallel measure")
    ap.add_argument("--cold-reps", type=int, default=5, help="cold starts of each kind")
    ap.add_argument("--bin", help="server binary (default: target/release, else target/debug)")
    ap.add_argument("--raw-only", action="store_true", help="only the raw floor; needs no binary")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--parallel-worker", choices=["raw", "server"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--kernel", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.parallel_worker:  # one caller process of the parallel measure
        anyio.run(parallel_worker, args.parallel_worker, args.url, args.kernel,
                  args.parallel_calls)
        return

    import ipykernel
    import jupyter_client
    from importlib.metadata import version

    res = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                 "python": platform.python_version(),
                 "loadavg_at_start": os.getloadavg()},
        "versions": {"jupyter_client": jupyter_client.__version__,
                     "ipykernel": ipykernel.__version__, "mcp": version("mcp"),
                     "matplotlib": version("matplotlib")},
        "n": args.n, "n_heavy": args.n_heavy,
    }
    if args.raw_only:
        async def raw_only():
            k = await RawKernel().start()
            try:
                c = RawClient(k)
                out = {}
                for name, w in WORKLOADS.items():
                    for _ in range(WARMUP_CALLS):
                        await c.call(name, w)
                    out[name] = summary([await c.call(name, w) for _ in range(args.n)])
                return out
            finally:
                await k.stop()
        res["raw"] = anyio.run(raw_only)
        print(json.dumps(res["raw"], indent=2))
    else:
        binary = find_binary(args.bin)
        if binary is None or not binary.exists():
            sys.exit("no server binary: build it (cargo build --release) or pass --bin")
        res["server"] = anyio.run(bench_server, binary, args)
        res["host"]["loadavg_at_end"] = os.getloadavg()
        print(render(res))
    # bench.py runs first in `make bench`: it starts a fresh results file.
    Path(args.out).write_text("{}\n")
    write_section("bench", res, args.out)
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
