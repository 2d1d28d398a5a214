"""Streamed against buffered responses under the Lambda emulator (`cargo lambda watch`).

Run from the repository root with the project venv (after bench/bench.py, whose raw floor the
ratios use; `make bench` runs both):

    .venv/bin/python bench/lambda_emulator.py [--n 200] [--rounds 5] [--cold-reps 3] [--debug]

Two emulators run side by side on two loopback ports, one per response mode of the handler:
streaming (a Function URL's default) and buffered. Each is started exactly as
tests/clients/test_lambda.py does (tests' `Emulator`, with `--wait`: no function process until
the first invocation), running the release build unless --debug. Measures, one function each:
  cold start   the first execute_code('1+1') POST to a fresh emulator: from the function's
               exec to the answer (a runner script stamps the time just before it execs the
               function: `cargo run` execs in place, so the process's /proc start time is
               cargo's, and cargo's check that the build is fresh, ~0.5 s, is the emulator's
               cost, not the function's), and from the POST; the function's logged init_ms and
               since_init_ms (init done to the first invocation received); COLD_REPS restarts
               per mode, alternating modes;
  warm         N plain JSON-RPC POSTs of execute_code('1+1') to each emulated Function URL, the
               two modes alternating in rounds; p50/p99 and the streamed/buffered ratio; then
               the same again from a client that acknowledges every segment at once
               (TCP_QUICKACK before each read). The emulator's own HTTP server leaves Nagle on
               for the caller's connection, so its last chunk of a streamed answer waits for the
               caller's delayed ACK (~40 ms); a Function URL's front end is AWS's, not this one,
               so the quick-ACK rows show what the function itself adds.
Ratios to the raw floor come from the `bench` section of bench/results.json (same `make bench`);
this script writes the `lambda_emulator` section. Every process it starts is stopped by its
process group.
"""

import argparse
import json
import os
import re
import socket
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "clients"))
from harness import (POST_HEADERS, WORKLOADS, check_jsonrpc_reply, execute_body,  # noqa: E402
                     post_execute_sync, ratio, read_section, summary, write_section)
from test_lambda import DEFAULT_PORT, Emulator, free_port, port_is_free  # noqa: E402

import httpx2  # noqa: E402

MODES = ["buffered", "streaming"]
WARMUP_CALLS = 5
COLD_ATTEMPTS = 20  # the emulator may answer 5xx while it still starts the function
ONE_PLUS_ONE = WORKLOADS["1+1"]


def stamp_exec(emu):
    """Runs the emulator's function through a runner that writes the wall-clock time just
    before it execs the function (bash's $EPOCHREALTIME: no fork), into emu.exec_stamp."""
    emu.exec_stamp = emu.tmp / "exec-stamp"
    runner = emu.tmp / "stamp-exec"
    runner.write_text(f'#!/bin/bash\necho "$EPOCHREALTIME" > {emu.exec_stamp}\nexec "$@"\n')
    runner.chmod(0o755)
    emu.runner = [runner]


def first_invocation_ms(emu):
    """The function's own account of its latest cold start: init done to the first invocation
    received (the Runtime API's delivery and the extension registration)."""
    found = re.findall(r'"lambda first invocation received","since_start_ms":(\d+),'
                       r'"since_init_ms":(\d+)', emu.log_path.read_text())
    return int(found[-1][1]) if found else None


def cold_call(emu):
    """The first execute_code on a fresh emulator (no function process yet). Returns ms from
    the POST and from the function's exec to the answer, from the POST to the exec (the
    emulator's spawn and `cargo run`), the logged init_ms and since_init_ms, and the attempts
    it took."""
    emu.exec_stamp.unlink(missing_ok=True)
    posted = time.time()
    t = time.perf_counter()
    with httpx2.Client(timeout=120) as http:
        for attempt in range(1, COLD_ATTEMPTS + 1):
            try:
                post_execute_sync(http, emu.url, "cold 1+1", ONE_PLUS_ONE, i=0)
                break
            except (httpx2.TransportError, RuntimeError) as e:
                if attempt == COLD_ATTEMPTS or "HTTP 4" in str(e) or "HTTP 200" in str(e):
                    raise
                time.sleep(0.2)
    answered = time.time()
    from_request = time.perf_counter() - t
    execed = float(emu.exec_stamp.read_text())
    return {"from_exec_ms": round((answered - execed) * 1000.0, 1),
            "from_request_ms": round(from_request * 1000.0, 1),
            "request_to_exec_ms": round((execed - posted) * 1000.0, 1),
            "init_ms": emu.init_ms(), "init_to_first_invocation_ms": first_invocation_ms(emu),
            "attempts": attempt}


def measure_cold_start(emus, reps):
    """REPS cold starts per mode, the modes alternating; medians."""
    samples = {mode: [] for mode in emus}
    for r in range(reps):
        for mode in (MODES if r % 2 == 0 else MODES[::-1]):
            emu = emus[mode]
            if r > 0:
                emu.restart()
            samples[mode].append(cold_call(emu))
            print(f"  [{mode}] cold start {r + 1}/{reps}: {samples[mode][-1]}", file=sys.stderr)
    out = {}
    for mode, xs in samples.items():
        med = lambda key: statistics.median(x[key] for x in xs if x[key] is not None)  # noqa: E731
        known = lambda key: med(key) if any(x[key] is not None for x in xs) else None  # noqa: E731
        out[mode] = {"samples": xs, "from_exec_median_ms": med("from_exec_ms"),
                     "from_request_median_ms": med("from_request_ms"),
                     "request_to_exec_median_ms": med("request_to_exec_ms"),
                     "init_median_ms": known("init_ms"),
                     "init_to_first_invocation_median_ms": known("init_to_first_invocation_ms")}
    return out


class QuickAckClient:
    """HTTP/1.1 over one kept-alive socket that sets TCP_QUICKACK before every read, so no
    segment the emulator sends waits for this side's delayed ACK. Enough HTTP for these answers:
    a Content-Length or a chunked body."""

    def __init__(self, url):
        from urllib.parse import urlsplit
        u = urlsplit(url)
        self.host, self.port, self.path = u.hostname, u.port, u.path
        self.sock = socket.create_connection((self.host, self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _more(self):
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the emulator closed the connection")
        self.buf += data

    def _until(self, marker):
        while marker not in self.buf:
            self._more()
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _exactly(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def post(self, body):
        """Returns (status, body bytes)."""
        payload = json.dumps(body).encode()
        headers = "".join(f"{k}: {v}\r\n" for k, v in POST_HEADERS.items())
        self.sock.sendall((f"POST {self.path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n{headers}"
                           f"content-length: {len(payload)}\r\n\r\n").encode() + payload)
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:])}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self._until(b"\r\n").split(b";")[0], 16)
                chunk = self._exactly(size + 2)[:size]  # the data and its CRLF
                if size == 0:  # the last chunk; the emulator sends no trailers
                    return status, out
                out += chunk
        return status, self._exactly(int(fields.get("content-length", "0")))


def post_execute_quickack(client, name, workload, i):
    t = time.perf_counter()
    status, body = client.post(execute_body(workload.code, i))
    elapsed = time.perf_counter() - t
    check_jsonrpc_reply(name, workload, status, json.loads(body) if status == 200 else None)
    return elapsed


def measure_warm(emus, n, rounds):
    """N warm execute_code('1+1') POSTs per mode after WARMUP_CALLS, alternating in ROUNDS."""
    samples = {mode: [] for mode in emus}
    per_round = max(1, n // rounds)
    with httpx2.Client(timeout=120) as http:
        for mode, emu in emus.items():
            for i in range(WARMUP_CALLS):
                post_execute_sync(http, emu.url, "warm-up 1+1", ONE_PLUS_ONE, i=i + 1)
        for r in range(rounds):
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                samples[mode] += [post_execute_sync(http, emus[mode].url, "1+1", ONE_PLUS_ONE,
                                                    i=100 + i) for i in range(per_round)]
    quick = {mode: [] for mode in emus}
    clients = {mode: QuickAckClient(emu.url) for mode, emu in emus.items()}
    try:
        for mode, client in clients.items():
            for i in range(WARMUP_CALLS):
                post_execute_quickack(client, "quick-ACK warm-up 1+1", ONE_PLUS_ONE, i + 1)
        for r in range(rounds):
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                quick[mode] += [post_execute_quickack(clients[mode], "quick-ACK 1+1", ONE_PLUS_ONE,
                                                      100 + i) for i in range(per_round)]
    finally:
        for client in clients.values():
            client.close()
    out = {mode: summary(xs) for mode, xs in samples.items()}
    out["streamed_over_buffered_p50"] = ratio(out["streaming"]["p50_ms"], out["buffered"]["p50_ms"])
    out["streamed_over_buffered_p99"] = ratio(out["streaming"]["p99_ms"], out["buffered"]["p99_ms"])
    out["quick_ack"] = {mode: summary(xs) for mode, xs in quick.items()}
    q = out["quick_ack"]
    out["quick_ack"]["streamed_over_buffered_p50"] = ratio(q["streaming"]["p50_ms"],
                                                           q["buffered"]["p50_ms"])
    return out


def render(res, bench):
    """Rows for the README table; ratios against the raw floor of bench.py's run, if any."""
    raw_p50 = raw_p99 = raw_cold = None
    if bench and "server" in bench:
        raw = bench["server"]["latency"]["clients"]["raw jupyter_client (IPC)"]["1+1"]
        raw_p50, raw_p99 = raw["p50_ms"], raw["p99_ms"]
        raw_cold = bench["server"]["cold_start"]["raw"]["median_ms"]
    fmt = lambda r: f"{r:.2f}x" if r is not None else "n/a"  # noqa: E731
    lines = ["| measure | client | p50 | p99 | p50 / floor | p99 / floor |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for mode in MODES:
        s = res["warm"][mode]
        lines.append(f"| `1+1` under the emulator ({res['profile']}) | plain HTTP, {mode} "
                     f"| {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms "
                     f"| {fmt(ratio(s['p50_ms'], raw_p50))} | {fmt(ratio(s['p99_ms'], raw_p99))} |")
    for mode in MODES:
        s = res["warm"]["quick_ack"][mode]
        lines.append(f"| `1+1` under the emulator ({res['profile']}) | quick-ACK client, {mode} "
                     f"| {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms "
                     f"| {fmt(ratio(s['p50_ms'], raw_p50))} | {fmt(ratio(s['p99_ms'], raw_p99))} |")
    for mode in MODES:
        c = res["cold_start"][mode]
        lines.append(f"| cold start to first result, emulator ({res['profile']}) | {mode}: "
                     f"function exec to answer (init {c['init_median_ms']} ms, init to first "
                     f"invocation {c['init_to_first_invocation_median_ms']} ms; from the POST "
                     f"{c['from_request_median_ms']:.0f} ms, of which the emulator's spawn and "
                     f"`cargo run` {c['request_to_exec_median_ms']:.0f} ms) "
                     f"| {c['from_exec_median_ms']:.0f} ms | "
                     f"| {fmt(ratio(c['from_exec_median_ms'], raw_cold))} | |")
    w = res["warm"]
    lines.append(f"streamed / buffered: p50 {fmt(w['streamed_over_buffered_p50'])}, "
                 f"p99 {fmt(w['streamed_over_buffered_p99'])}; with the quick-ACK client p50 "
                 f"{fmt(w['quick_ack']['streamed_over_buffered_p50'])}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="warm calls per mode")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cold-reps", type=int, default=3, help="cold starts per mode")
    parser.add_argument("--debug", action="store_true", help="run the debug build")
    args = parser.parse_args()
    res = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "profile": "debug" if args.debug else "release", "loadavg_at_start": os.getloadavg()}
    emus = {}
    left = {}
    with ExitStack() as stack:
        used = set()
        for mode in MODES:
            port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) and DEFAULT_PORT not in used \
                else free_port()
            used.add(port)
            emu = Emulator(mode, port)
            emu.release = not args.debug
            stamp_exec(emu)
            emus[mode] = stack.enter_context(emu.running())
        print(f"cold start, {args.cold_reps} per mode", file=sys.stderr)
        res["cold_start"] = measure_cold_start(emus, args.cold_reps)
        print(f"warm, n={args.n} per mode", file=sys.stderr)
        res["warm"] = measure_warm(emus, args.n, args.rounds)
    for mode, emu in emus.items():
        if getattr(emu, "left", None):
            left[mode] = emu.left
            print(f"[{mode}] left running: {emu.left}", file=sys.stderr)
    res["left_over"] = left
    res["loadavg_at_end"] = os.getloadavg()
    write_section("lambda_emulator", res)
    print(render(res, read_section("bench")))


if __name__ == "__main__":
    main()
