"""Latency and memory benchmark: jupyter-mcp-server against a raw jupyter_client floor.

Run from the repository root with the project venv (this is what `make bench` does):

    .venv/bin/python bench/bench.py [--n 200] [--total-calls 1000] [--bin PATH] [--raw-only]

In one run, against the same ipykernel (the venv's):
  (a) raw floor: jupyter_client blocking client, N round trips of execute('1+1'), each waiting
      for the shell execute_reply and the iopub idle status;
  (b) the server binary, N execute_code('1+1') calls with the Python mcp SDK over one
      connection (after a warm-up), once per protocol mode; p50/p99 and ratios to the floor;
  (c) first-call latency on a new kernel name while the warm spare is ready;
  (d) server RSS (VmRSS of the server process only) idle after start and after --total-calls
      execute_code calls.
Prints a markdown table and writes bench/results.json. Every process it starts is stopped by PID.
"""

import argparse
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv" / "bin" / "python"
URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)/mcp")
MODES = ["2026-07-28", "legacy"]  # the first is the headline figure
FIRST_CALL_NAMES = [f"bench-new-{i}" for i in range(1, 6)]
SPARE_WARMUP_SECS = 3.0
WARMUP_CALLS = 20


# ------------------------------------------------------------------------------- helpers

def pct(samples, p):
    """Percentile by linear interpolation between closest ranks (samples in seconds -> ms)."""
    xs = sorted(samples)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return (xs[lo] + (xs[hi] - xs[lo]) * (k - lo)) * 1000.0


def summary(samples):
    return {
        "n": len(samples),
        "p50_ms": round(pct(samples, 50), 3),
        "p99_ms": round(pct(samples, 99), 3),
        "mean_ms": round(statistics.fmean(samples) * 1000.0, 3),
        "min_ms": round(min(samples) * 1000.0, 3),
        "max_ms": round(max(samples) * 1000.0, 3),
    }


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def descendants(pid):
    """All live descendant PIDs of pid (walks /proc; children files need CONFIG_PROC_CHILDREN)."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rfind(")") + 2:].split()[1])
            parent_of[int(entry)] = ppid
        except (OSError, ValueError, IndexError):
            continue
    out, frontier = set(), {pid}
    while frontier:
        nxt = {c for c, p in parent_of.items() if p in frontier and c not in out}
        out |= nxt
        frontier = nxt
    return out


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


# ------------------------------------------------------------------------------- (a) raw

def bench_raw(n):
    from jupyter_client.manager import KernelManager

    # IPC transport, like the server (unix sockets in a private directory)
    sockdir = tempfile.mkdtemp(prefix="jmcp-raw-")
    km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockdir, "k"))
    kc = None
    kernel_pid = None
    result = {}
    try:
        t0 = time.perf_counter()
        km.start_kernel()
        kernel_pid = km.provisioner.pid if km.provisioner else None
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        result["kernel_start_ms"] = round((time.perf_counter() - t0) * 1000.0, 1)
        result["kernel_cmd"] = km.format_kernel_cmd()
        result["transport"] = km.transport

        def round_trip(code):
            msg_id = kc.execute(code, store_history=True)
            got_reply = got_idle = False
            reply = None
            while not (got_reply and got_idle):
                if not got_idle:
                    msg = kc.get_iopub_msg(timeout=30)
                    if (msg["parent_header"].get("msg_id") == msg_id
                            and msg["msg_type"] == "status"
                            and msg["content"]["execution_state"] == "idle"):
                        got_idle = True
                else:
                    msg = kc.get_shell_msg(timeout=30)
                    if msg["parent_header"].get("msg_id") == msg_id:
                        got_reply = True
                        reply = msg
            return reply

        # round_trip reads iopub until this request's idle, then its shell reply (buffered by
        # then): both are required before the next request, as the server requires both too.
        for _ in range(WARMUP_CALLS):
            r = round_trip("1+1")
            assert r["content"]["status"] == "ok", r["content"]
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            round_trip("1+1")
            samples.append(time.perf_counter() - t)
        result.update(summary(samples))
    finally:
        if kc is not None:
            kc.stop_channels()
        try:
            km.shutdown_kernel(now=True)
        except Exception as e:  # noqa: BLE001 - fall through to the PID kill below
            print(f"raw kernel shutdown failed: {e}", file=sys.stderr)
        if kernel_pid and pid_alive(kernel_pid):
            kill_pids([kernel_pid])
        shutil.rmtree(sockdir, ignore_errors=True)
    return result


# ------------------------------------------------------------------------------- (b-d) server

class ServerProc:
    def __init__(self, binary, max_kernels):
        self.workdir = tempfile.mkdtemp(prefix="jmcp-bench-")
        args = [str(binary), "--port", "0", "--host", "127.0.0.1", "--working-dir", self.workdir,
                "--python", str(VENV_PY), "--max-kernels", str(max_kernels)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.pid = self.proc.pid
        self.log = []
        self.url = None
        self.seen_children = set()
        found = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.log.append(line)
                if self.url is None and (m := URL_RE.search(line)):
                    self.url = m.group(0)
                    found.set()
        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(60):
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.log))

    def note_children(self):
        self.seen_children |= descendants(self.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.note_children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                print("server ignored SIGTERM for 20 s; killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        # kernels the server should have stopped: give them a moment, then kill by PID
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


async def bench_server(server, n, total_calls):
    import anyio
    from mcp import Client

    calls = 0
    out = {"modes": {}}

    async def call(client, code, kernel=None):
        nonlocal calls
        args = {"code": code}
        if kernel:
            args["kernel"] = kernel
        r = await client.call_tool("execute_code", args)
        calls += 1
        if r.is_error or (r.structured_content or {}).get("status") != "ok":
            raise RuntimeError(f"execute_code failed: {r.model_dump_json()[:1000]}")
        return r

    # (b) steady-state latency, per protocol mode, one connection each
    kernel_started_at = None
    for mode in MODES:
        async with Client(server.url, mode=mode, read_timeout_seconds=120) as client:
            await client.list_tools()
            t = time.perf_counter()
            r = await call(client, "1+1")
            first = time.perf_counter() - t
            if kernel_started_at is None:
                kernel_started_at = time.monotonic()
                out["default_kernel_first_call_ms"] = round(first * 1000.0, 1)
            assert "2" in "".join(getattr(b, "text", "") for b in r.content), r
            for _ in range(WARMUP_CALLS - 1):
                await call(client, "1+1")
            samples = []
            for _ in range(n):
                t = time.perf_counter()
                await call(client, "1+1")
                samples.append(time.perf_counter() - t)
            out["modes"][mode] = summary(samples)
    server.note_children()

    # (b') the same call as one plain HTTP POST (no SDK), to separate server time from SDK time
    import httpx2
    headers = {"Accept": "application/json, text/event-stream",
               "Content-Type": "application/json", "MCP-Protocol-Version": "2025-11-25"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "execute_code", "arguments": {"code": "1+1"}}}
    async with httpx2.AsyncClient(timeout=120) as http:
        samples = []
        for i in range(WARMUP_CALLS + n):
            t = time.perf_counter()
            resp = await http.post(server.url, json=body, headers=headers)
            elapsed = time.perf_counter() - t
            calls += 1
            reply = resp.json() if resp.status_code == 200 else None
            if not reply or reply.get("result", {}).get("structuredContent", {}).get("status") != "ok":
                raise RuntimeError(f"plain POST failed: {resp.status_code} {resp.text[:1000]}")
            if i >= WARMUP_CALLS:
                samples.append(elapsed)
        out["plain_http"] = summary(samples)

    # (c) first call on a new kernel name with the warm spare ready
    firsts = []
    async with Client(server.url, mode=MODES[0], read_timeout_seconds=120) as client:
        last_start = kernel_started_at
        for name in FIRST_CALL_NAMES:
            wait = SPARE_WARMUP_SECS - (time.monotonic() - last_start)
            if wait > 0:
                await anyio.sleep(wait)
            t = time.perf_counter()
            await call(client, "1+1", kernel=name)
            firsts.append(time.perf_counter() - t)
            last_start = time.monotonic()
            server.note_children()
        out["first_call"] = {
            "names": FIRST_CALL_NAMES,
            "samples_ms": [round(x * 1000.0, 1) for x in firsts],
            "median_ms": round(statistics.median(firsts) * 1000.0, 1),
            "spare_warmup_secs": SPARE_WARMUP_SECS,
        }

        # (d) top up to total_calls execute_code calls, then read the server's RSS
        while calls < total_calls:
            await call(client, "1+1")
        server.note_children()
    await anyio.sleep(1.0)
    out["calls_made"] = calls
    return out


# ------------------------------------------------------------------------------- main

def find_binary(explicit):
    if explicit:
        return Path(explicit)
    for kind in ("release", "debug"):
        p = ROOT / "target" / kind / "jupyter-mcp-server"
        if p.exists():
            return p
    return None


def render(res):
    raw = res.get("raw")
    lines = ["| measure | p50 (ms) | p99 (ms) | notes |", "|---|---:|---:|---|"]
    if raw:
        lines.append(f"| raw jupyter_client execute('1+1') | {raw['p50_ms']:.2f} | {raw['p99_ms']:.2f} "
                     f"| n={raw['n']}, {raw['transport']}, reply + idle |")
    srv = res.get("server")
    if srv:
        for mode, s in srv["modes"].items():
            note = f"n={s['n']}, one connection"
            if raw:
                note += (f"; ratio p50 {s['p50_ms'] / raw['p50_ms']:.2f}x, "
                         f"p99 {s['p99_ms'] / raw['p99_ms']:.2f}x")
            lines.append(f"| server execute_code('1+1'), mcp {mode} | {s['p50_ms']:.2f} "
                         f"| {s['p99_ms']:.2f} | {note} |")
        s = srv["plain_http"]
        note = "n={}, plain HTTP POST (httpx2), JSON reply, no SDK".format(s["n"])
        if raw:
            note += (f"; ratio p50 {s['p50_ms'] / raw['p50_ms']:.2f}x, "
                     f"p99 {s['p99_ms'] / raw['p99_ms']:.2f}x")
        lines.append(f"| server execute_code('1+1'), no SDK | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
                     f"| {note} |")
        fc = srv["first_call"]
        lines.append(f"| first call, new kernel name, warm spare (median of {len(fc['samples_ms'])}) "
                     f"| {fc['median_ms']:.1f} | | samples {fc['samples_ms']} ms |")
        if raw:
            lines.append(f"| raw cold kernel start (for comparison) | {raw['kernel_start_ms']:.1f} | | "
                         "start + wait_for_ready |")
        rss = srv["rss_kib"]
        lines.append(f"| server RSS idle after start | {rss['idle_after_start'] / 1024:.1f} MiB | | "
                     "VmRSS of the server process only |")
        lines.append(f"| server RSS after {srv['calls_made']} calls | {rss['after_calls'] / 1024:.1f} MiB "
                     f"| | binary: {srv['binary_kind']} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="timed round trips per measure")
    ap.add_argument("--total-calls", type=int, default=1000,
                    help="execute_code calls before the second RSS reading")
    ap.add_argument("--bin", help="server binary (default: target/release, else target/debug)")
    ap.add_argument("--raw-only", action="store_true", help="only the jupyter_client floor")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = ap.parse_args()

    import jupyter_client
    import ipykernel
    import mcp  # noqa: F401
    from importlib.metadata import version

    res = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                 "python": platform.python_version()},
        "versions": {"jupyter_client": jupyter_client.__version__,
                     "ipykernel": ipykernel.__version__, "mcp": version("mcp")},
        "n": args.n,
    }

    print(f"(a) raw jupyter_client floor, n={args.n} ...", file=sys.stderr)
    res["raw"] = bench_raw(args.n)

    if not args.raw_only:
        binary = find_binary(args.bin)
        if binary is None or not binary.exists():
            sys.exit("no server binary: build it (cargo build --release) or pass --bin")
        import anyio
        max_kernels = len(FIRST_CALL_NAMES) + 4
        print(f"(b-d) server {binary} ...", file=sys.stderr)
        server = ServerProc(binary, max_kernels)
        leftover = []
        try:
            time.sleep(2.0)  # let it settle (and start its warm spare)
            rss_idle = vm_rss_kib(server.pid)
            server.note_children()
            srv = anyio.run(bench_server, server, args.n, args.total_calls)
            srv["rss_kib"] = {"idle_after_start": rss_idle, "after_calls": vm_rss_kib(server.pid)}
            srv["binary"] = str(binary)
            srv["binary_kind"] = binary.parent.name
            srv["max_kernels"] = max_kernels
            res["server"] = srv
        finally:
            leftover = server.stop()
        res["server_left_children"] = leftover
        if server.proc.returncode not in (0, -signal.SIGTERM, 143):
            res["server_exit_code"] = server.proc.returncode

    table = render(res)
    print(table)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
