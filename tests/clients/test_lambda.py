"""The Lambda front door, end to end, through `cargo lambda watch` (no AWS, no Docker).

The module fixture starts `cargo lambda watch` in this repository, so the function it runs is
the real binary built from this tree, with `AWS_LAMBDA_RUNTIME_API` pointing at the emulator's
Runtime API. The function's environment is what a Lambda deployment gives it: fake
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, JUPYTER_MCP_PYTHON, a temporary
JUPYTER_MCP_WORKING_DIR and JUPYTER_MCP_ALLOWED_HOSTS listing the hosts of events/*.json plus
the emulator's own address. Every test runs in both response modes of the handler: `streaming`
(the default, `run_with_streaming_response`) and `buffered` (JUPYTER_MCP_LAMBDA_STREAMING=false);
LAMBDA_TEST_MODES=streaming (or buffered) narrows that.

- events: every events/*.json through `cargo lambda invoke --data-file`, against its entry in
  events/expect.json (status, JSON-RPC result or error, headers, checks);
- authentication as deployed (a second emulator, `auth_emulator`, without
  JUPYTER_MCP_INSECURE_NO_AUTH): an event without an IAM identity and without a bearer gets 401
  with WWW-Authenticate and a JSON-RPC body and runs nothing; the IAM events (Function URL, REST
  API, HTTP API) are served as their ARN; the protected-resource metadata is served; audit
  records carry Lambda's request id; single tenancy removes what the previous principal left
  (and `shared` keeps it);
- the Python `mcp` SDK (modes legacy and 2026-07-28) against the emulated Function URL
  http://127.0.0.1:PORT/lambda-url/jupyter-mcp-server/mcp: tools, a cell that streams
  progress, a plot;
- kernel state kept between invocations of a warm function; a cold start (the emulator
  restarted) gets a fresh kernel;
- what user code can see: no AWS_* or Lambda runtime variables, and not the function's own
  /proc/<pid>/environ;
- scripts/smoke.py against the emulator.

At the end the emulator is stopped by its process group and the test checks that no function
(bootstrap) or kernel process it started is left. Latencies measured on the way (cold start,
warm execute_code) are printed; run with `-s` to see them.
"""

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import pytest
from mcp import Client
from sdk_helpers import run
from mcp_types import ImageContent, TextContent

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
EXPECT = EVENTS / "expect.json"
SMOKE = ROOT / "scripts" / "smoke.py"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = Path(os.environ.get("JUPYTER_MCP_TEST_PYTHON", VENV_BIN / "python"))
FUNCTION = "jupyter-mcp-server"  # the binary, and so the function name under cargo lambda
DEFAULT_PORT = 9000  # cargo lambda's default invoke port
SDK_MODES = ["legacy", "2026-07-28"]
CALL_TIMEOUT = 120
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Made-up credentials, as Lambda puts real ones in the function's environment. None may reach
# user code.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKELAMBDATEST42",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-" + uuid.uuid4().hex,
    "AWS_SESSION_TOKEN": "fake-session-token-" + uuid.uuid4().hex,
}

sys.path.insert(0, str(EVENTS))
import generate as event_generator  # noqa: E402  (events/generate.py)

sys.path.pop(0)


def modes():
    wanted = os.environ.get("LAMBDA_TEST_MODES", "streaming,buffered")
    return [m.strip() for m in wanted.split(",") if m.strip()]


def expectations(function=None):
    """The entries of events/expect.json; with FUNCTION, those checked under that function
    configuration (`insecure-no-auth` unless the entry's `functions` says otherwise)."""
    entries = json.loads(EXPECT.read_text())["events"]
    if function is None:
        return entries
    return [e for e in entries if function in e.get("functions", ["insecure-no-auth"])]


def iam_arn_of(event):
    """The IAM identity an event carries (what AWS puts there after checking SigV4), or None."""
    ctx = event.get("requestContext") or {}
    iam = ((ctx.get("authorizer") or {}).get("iam") or {}).get("userArn")
    return iam or (ctx.get("identity") or {}).get("userArn")


def event_files():
    return sorted(p.name for p in EVENTS.glob("*.json") if p != EXPECT)


def event_hosts():
    """The Host header of every event: the function must accept exactly these."""
    hosts = set()
    for name in event_files():
        headers = json.loads((EVENTS / name).read_text()).get("headers") or {}
        hosts.update(v for k, v in headers.items() if k.lower() == "host")
    return sorted(hosts)


def cargo_lambda():
    """`cargo lambda` needs the cargo-lambda executable on PATH (pip installs it in .venv)."""
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    if shutil.which("cargo-lambda", path=path) is None:
        pytest.fail("cargo-lambda is not installed: "
                    f"{VENV_BIN / 'pip'} install -r requirements-lambda.txt "
                    "(or: pip install cargo-lambda ziglang)")
    return path


def cargo_runner_variable():
    """CARGO_TARGET_<HOST TRIPLE>_RUNNER: `cargo run` (and so `cargo lambda watch`) starts the
    binary as `RUNNER BINARY ARGS`."""
    rustc = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    triple = re.search(r"^host: (\S+)$", rustc, re.M).group(1)
    return "CARGO_TARGET_" + re.sub(r"[-.]", "_", triple).upper() + "_RUNNER"


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Processes, read from /proc (this runs as the same user as the emulator, or root).
# --------------------------------------------------------------------------------------------


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def read_proc(pid, name):
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None


def ppid_of(pid):
    stat = read_proc(pid, "stat")
    if stat is None:
        return None
    return int(stat[stat.rindex(b")") + 2:].split()[1])


def alive(pid):
    stat = read_proc(pid, "stat")
    return stat is not None and stat[stat.rindex(b")") + 2:][:1] != b"Z"


def describe_pid(pid):
    cmdline = (read_proc(pid, "cmdline") or b"").replace(b"\0", b" ").decode(errors="replace")
    return f"{pid}: {cmdline.strip()}"


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


class Emulator:
    """One `cargo lambda watch` and the function it runs.

    Known emulator fault (cargo-lambda 1.9.2), why `make test` re-runs failed client tests once:
    under load about one run in 10-20 of this file has a buffered call answered with HTTP 500 (the
    SDK's "Server returned an error response") or never answered. Its debug log
    (`RUST_LOG=debug`, `JMCP_EMULATOR_LOG_DIR`) shows the function posting its whole response and
    being answered 200 at once, then opening a new Runtime API connection (the emulator registers
    it as a new instance), then the emulator failing the invoke: its Runtime API answers the
    response POST before reading the body (`respond_to_next_invocation` in its
    functions_router.rs), and `create_buffered_response` then cannot read a body whose connection
    is gone. Giving that connection TCP_NODELAY in buffered mode did not change the rate (1 in 12
    runs), so the function's side is not the cause."""

    def __init__(self, mode, port, function_env=None):
        """FUNCTION_ENV: extra or overriding variables for the function. Set `runner` before
        `start` to run the function through a command (cargo's target runner), e.g. a sandbox
        around the function (test_lambda_like.py), and `release` to run the release build
        (bench/lambda_emulator.py) instead of the debug one."""
        self.mode = mode
        self.port = port
        self.tmp = Path(tempfile.mkdtemp(prefix="jmcp-lambda-test-"))
        self.workdir = self.tmp / "notebooks"
        self.workdir.mkdir()
        self.marker = "jmcp-lambda-test-" + uuid.uuid4().hex  # finds our processes in /proc
        self.log_path = self.tmp / "emulator.log"
        self.path = cargo_lambda()
        self.proc = None
        self.invoked = set()
        self.started_at = None
        self.seen_pids = set()  # every process of ours seen, checked at the end
        self.seen_functions = set()  # the function (bootstrap) processes among them
        self.seen_kernels = set()  # and the kernels
        hosts = event_hosts() + [f"127.0.0.1:{port}", f"localhost:{port}"]
        self.function_env = {
            **FAKE_AWS,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "JUPYTER_MCP_PYTHON": str(PYTHON),
            "JUPYTER_MCP_WORKING_DIR": str(self.workdir),
            "JUPYTER_MCP_ALLOWED_HOSTS": ",".join(hosts),
            "JUPYTER_MCP_LAMBDA_STREAMING": "true" if mode == "streaming" else "false",
            # The emulator neither signs nor verifies SigV4, so its requests carry no IAM
            # identity: without this every client here would get 401. The IAM events carry one
            # and are served as their ARN (src/auth/iam.rs has the refusal tests).
            "JUPYTER_MCP_INSECURE_NO_AUTH": "true",
            "JMCP_LAMBDA_TEST_MARKER": self.marker,
            "RUST_LOG": "info",
            **(function_env or {}),
        }
        self.runner = None
        self.release = False
        self.env_file = self.tmp / "function.env"
        self.set_function_env()

    def set_function_env(self, **changes):
        """Updates the function's environment (`--env-file`); it takes effect at the next
        start, as a new deployment's configuration reaches new execution environments only."""
        self.function_env.update(changes)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.function_env.items()))

    def unset_function_env(self, name):
        """Removes a variable from the function's environment (from the next start on)."""
        self.function_env.pop(name, None)
        self.set_function_env()

    @property
    def url(self):
        """The emulated Function URL of the MCP endpoint."""
        return f"http://127.0.0.1:{self.port}/lambda-url/{FUNCTION}/mcp"

    @property
    def invoke_url(self):
        return f"http://127.0.0.1:{self.port}/2015-03-31/functions/{FUNCTION}/invocations"

    def start(self):
        # Build first, so a compile error reads as one and the cold start is not a compile.
        profile = ["--release"] if self.release else []
        build = subprocess.run(["cargo", "build", *profile, "--bin", FUNCTION], cwd=ROOT,
                               capture_output=True, text=True, timeout=1800)
        assert build.returncode == 0, f"cargo build failed:\n{build.stderr[-6000:]}"
        env = {**os.environ, "PATH": self.path, **FAKE_AWS,
               "JMCP_LAMBDA_TEST_MARKER": self.marker}
        if self.runner:
            env[cargo_runner_variable()] = " ".join(str(a) for a in self.runner)
        self.log = open(self.log_path, "a")
        # --wait: no function instance until the first invocation, so every invocation goes to
        # the one instance named FUNCTION (without it the emulator also boots one for `_`).
        self.proc = subprocess.Popen(
            ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1",
             "--invoke-port", str(self.port), "--ignore-changes", "--wait",
             "--env-file", str(self.env_file), *profile, "--bin", FUNCTION],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cargo lambda watch exited {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError("cargo lambda watch did not listen:\n" + self.log_tail())
        self.started_at = time.monotonic()
        self.invoked = set()

    def log_tail(self, n=60):
        try:
            return "".join(self.log_path.read_text(errors="replace").splitlines(True)[-n:])
        except OSError:
            return ""

    def init_ms(self):
        """The init duration the function logged for its latest cold start."""
        found = re.findall(r'"lambda init done","init_ms":(\d+)', self.log_path.read_text())
        return int(found[-1]) if found else None

    def our_pids(self):
        """Processes this emulator started: those carrying the marker in their environment
        (cargo lambda, cargo, the function) and the kernels (children of the function, working
        in our working directory)."""
        marker = self.marker.encode()
        function_pids, kernel_pids, found = set(), set(), set()
        for pid in all_pids():
            if pid == os.getpid():
                continue
            environ = read_proc(pid, "environ")
            if environ and marker in environ:
                found.add(pid)
                try:
                    exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
                except OSError:
                    exe = ""
                if exe == FUNCTION:
                    function_pids.add(pid)
        for pid in all_pids():
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = ""
            if ppid_of(pid) in function_pids or cwd.startswith(str(self.workdir)):
                found.add(pid)
                kernel_pids.add(pid)
        self.seen_pids |= found
        self.seen_functions |= function_pids
        self.seen_kernels |= kernel_pids
        return found

    def stop(self):
        """SIGTERM to the emulator's process group, as Lambda would retire the environment;
        then every process it started must be gone. Anything left is killed by pid and reported."""
        self.our_pids()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            left = {p for p in self.seen_pids | self.our_pids() if alive(p)}
            if not left:
                break
            time.sleep(0.2)
        left = sorted(p for p in self.seen_pids | self.our_pids() if alive(p))
        described = [describe_pid(p) for p in left]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.seen_pids = set()
        self.seen_functions_stopped = self.seen_functions
        self.seen_kernels_stopped = self.seen_kernels
        self.seen_functions, self.seen_kernels = set(), set()
        if getattr(self, "log", None):
            self.log.close()
        return described

    @contextlib.contextmanager
    def running(self):
        """Starts the emulator and yields it; on the way out (or when the start fails) stops it
        and removes its directory. What was left running is kept in `self.left` for the
        caller's leftover check."""
        try:
            self.start()
            yield self
        finally:
            try:
                self.left = self.stop()
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def restart(self, fresh_tmp=False):
        """Stops and starts the emulator: the next invocation is a cold start. FRESH_TMP: the
        function's working directory is removed in between, as a new execution environment
        has an empty /tmp (the function creates the directory again)."""
        left = self.stop()
        assert not left, "left running after the emulator stopped:\n" + "\n".join(left)
        if fresh_tmp:
            shutil.rmtree(self.workdir)
        self.start()

    # ----------------------------------------------------------------------------------------

    def invoke_event(self, name):
        """Sends events/NAME with `cargo lambda invoke --data-file`. Returns (status, body
        text, how), `how` saying where the status came from."""
        status, body, how, _ = self.invoke_file(EVENTS / name)
        self.invoked.add(name)
        return status, body, how

    def invoke_payload(self, event, label):
        """Sends an event built here (a dict) like a file of events/; returns what
        `invoke_file` does."""
        path = self.tmp / f"event-{label}.json"
        path.write_text(json.dumps(event))
        return self.invoke_file(path)

    def invoke_file(self, path):
        """Returns (status, body text, how, headers): `headers` (lower-case names) are those of
        the function's response where the way it was read shows them, else None."""
        cmd = ["cargo", "lambda", "invoke", FUNCTION, "--invoke-address", "127.0.0.1",
               "--invoke-port", str(self.port), "--data-file", str(path)]
        run = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PATH": self.path},
                             capture_output=True, text=True, timeout=300)
        self.our_pids()
        event = json.loads(path.read_text())
        if self.mode == "buffered" or not function_streams(event):
            # The function answers with the API Gateway / Function URL response object: always
            # when streaming is off, and for API Gateway events in any mode (API Gateway invokes
            # synchronously and cannot unwrap a stream).
            assert run.returncode == 0, f"cargo lambda invoke failed: {run.stderr}"
            response = json.loads(run.stdout)
            body = response.get("body") or ""
            if response.get("isBase64Encoded"):
                body = base64.b64decode(body).decode()
            headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
            for k, v in (response.get("multiValueHeaders") or {}).items():
                headers.setdefault(k.lower(), ", ".join(v))
            return (response["statusCode"], body, "statusCode of the buffered response",
                    headers)
        if run.returncode == 0:
            # Streaming: the emulator answers the invoke with the prelude's status and the
            # streamed body; `cargo lambda invoke` prints the body when that status is 200.
            return 200, run.stdout.rstrip("\n"), "cargo lambda invoke succeeded", None
        # `cargo lambda invoke` reads any other status as a function error and cannot parse
        # the MCP body as one ("invalid error payload"), so ask the emulator directly (the same
        # POST that `cargo lambda invoke` sends) for the status, headers and body.
        resp = self.post_invoke_response(path.read_bytes())
        return (resp.status_code, resp.text,
                f"direct invoke (cargo lambda invoke: {run.stderr.strip()[:300]})",
                {k.lower(): v for k, v in resp.headers.items()})

    def log_records(self):
        """The function's JSON log lines (its tracing and the audit records on stdout), parsed;
        a span's fields are merged into the record when the formatter nests them."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            start = line.find("{")
            if start < 0:
                continue
            try:
                record = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(record, dict):
                if isinstance(record.get("fields"), dict):
                    record = {**record, **record["fields"]}
                records.append(record)
        return records

    def wait_function_ready(self, attempts=5):
        """One tools/list through the Function URL, retried only while the emulator itself
        fails (connection refused, 5xx: the function instance is still being started with
        --wait). A JSON-RPC answer of any kind ends the wait. Returns the failures seen."""
        import httpx2
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "tools/list"})
        headers = {"content-type": "application/json",
                   "accept": "application/json, text/event-stream",
                   "mcp-protocol-version": "2025-11-25"}
        failures = []
        for _ in range(attempts):
            try:
                resp = httpx2.post(self.url, content=body, headers=headers, timeout=120)
                if resp.status_code < 500:
                    return failures
                failures.append(f"HTTP {resp.status_code}: {resp.text[:200]}")
            except Exception as e:  # noqa: BLE001 - any transport failure is worth a retry
                failures.append(f"{type(e).__name__}: {e}")
            time.sleep(1)
        pytest.fail("the function never answered after a restart: " + "; ".join(failures)
                    + "\n" + self.log_tail())

    def post_invoke(self, payload):
        resp = self.post_invoke_response(payload)
        return resp.status_code, resp.text

    def post_invoke_response(self, payload):
        import httpx2
        return httpx2.post(self.invoke_url, content=payload, timeout=300)


def print_emulator_log_if_failed(request, fixture, label):
    """When the test that used the emulator fixture FIXTURE failed, print the end of its log (the
    function's JSON lines and the emulator's own messages): an emulator-side error is otherwise
    invisible."""
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and fixture in request.fixturenames:
        emu = request.getfixturevalue(fixture)
        print(f"--- last lines of the {label(emu)} emulator log ---\n{emu.log_tail(80)}")
        keep = os.environ.get("JMCP_EMULATOR_LOG_DIR")  # to study a failure, the whole log
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(emu.log_path, Path(keep) / f"{request.node.name}-{uuid.uuid4().hex[:8]}.log")


@pytest.fixture(autouse=True)
def emulator_log_on_failure(request):
    yield
    print_emulator_log_if_failed(request, "emulator", lambda emu: emu.mode)


def function_streams(event):
    """Whether the function streams its answer to this event (streaming mode): only HTTP API v2
    payloads that did not come through an API Gateway domain, i.e. Function URLs."""
    context = event.get("requestContext") or {}
    if event.get("version") != "2.0" or "http" not in context:
        return False
    return ".execute-api." not in (context.get("domainName") or "")


def running_emulator(mode, label, configure=None):
    """A started emulator for a module fixture; afterwards no function or kernel process it
    started may be left."""
    port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    emu = Emulator(mode, port)
    if configure:
        configure(emu)
    with emu.running():
        yield emu
    assert not emu.left, (f"[{label}] left running after the emulator stopped "
                          "(function or kernel processes):\n" + "\n".join(emu.left))
    # The check above means something only if the function and its kernels were found.
    assert emu.seen_functions_stopped and emu.seen_kernels_stopped, (
        f"[{label}] never saw the function ({emu.seen_functions_stopped}) or its kernels "
        f"({emu.seen_kernels_stopped}) in /proc: the leftover check found nothing to check")


@pytest.fixture(scope="module", params=modes())
def emulator(request):
    yield from running_emulator(request.param, request.param)


@pytest.fixture(scope="module", params=modes())
def auth_emulator(request):
    """The function as deployed: credentials required (no JUPYTER_MCP_INSECURE_NO_AUTH), single
    tenancy (the default). The emulator signs nothing, so only events carrying an IAM identity
    (as AWS puts it there after checking SigV4) are served."""
    yield from running_emulator(
        request.param, f"auth {request.param}",
        lambda emu: emu.unset_function_env("JUPYTER_MCP_INSECURE_NO_AUTH"))


@pytest.fixture(autouse=True)
def auth_emulator_log_on_failure(request):
    yield
    print_emulator_log_if_failed(request, "auth_emulator", lambda emu: f"auth {emu.mode}")


# --------------------------------------------------------------------------------------------
# Helpers for replies
# --------------------------------------------------------------------------------------------


def parse_body(text):
    """A JSON body, or the last JSON-RPC reply of an SSE body."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    reply = None
    for line in text.splitlines():
        if line.startswith("data:"):
            try:
                message = json.loads(line[5:].strip())
            except ValueError:
                continue
            if isinstance(message, dict) and ("result" in message or "error" in message):
                reply = message
    return reply


def lookup(value, path):
    """Dotted path with [N], [*] and ["key.with.dots"]; [*] maps the rest over a list."""
    tokens = re.findall(r'\["[^"]*"\]|[^.\[\]]+|\[\*\]|\[\d+\]', path)

    def walk(v, toks):
        if not toks:
            return v
        tok, rest = toks[0], toks[1:]
        if tok == "[*]":
            return [walk(item, rest) for item in (v or [])]
        if tok.startswith('["'):
            return walk(v[tok[2:-2]], rest)
        if tok.startswith("["):
            return walk(v[int(tok[1:-1])], rest)
        return walk(v[tok], rest)

    return walk(value, tokens)


JSON_TYPES = {"object": dict, "array": list, "string": str, "number": (int, float),
              "boolean": bool, "null": type(None)}


def png_ok(items):
    for item in items or []:
        if item.get("type") == "image" and item.get("mimeType") == "image/png":
            raw = base64.b64decode(item["data"], validate=True)
            if raw.startswith(PNG_SIGNATURE) and len(raw) > 1000:
                return True
    return False


def check(message, path, op, want):
    try:
        got = lookup(message, path)
    except (KeyError, IndexError, TypeError) as e:
        return f"{path}: missing ({type(e).__name__}: {e})"
    if op == "equals":
        ok = got == want
    elif op == "has":
        ok = (want in got) if isinstance(got, (list, str)) else False
    elif op == "has_type":
        ok = isinstance(got, JSON_TYPES[want]) and not (want == "number" and isinstance(got, bool))
    elif op == "png":
        ok = png_ok(got) == want
    else:
        return f"{path}: unknown op {op!r} in expect.json"
    return None if ok else f"{path} {op} {want!r}: got {json.dumps(got)[:500]}"


def connect(emulator, mode):
    return Client(emulator.url, mode=mode, read_timeout_seconds=CALL_TIMEOUT)


def describe(result):
    return json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True))[:2000]


def all_text(result):
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


def stdout_of(result):
    sc = result.structured_content or {}
    return "".join(o.get("text", "") for o in sc.get("outputs", [])
                   if o.get("type") == "stream" and o.get("name") == "stdout")


async def execute(client, code, kernel=None, **kw):
    args = {"code": code}
    if kernel is not None:
        args["kernel"] = kernel
    return await client.call_tool("execute_code", args, **kw)


def report(line):
    """Measurements: printed (visible with -s) and appended to the emulator log."""
    print(f"\n[lambda-emulator] {line}", flush=True)


# --------------------------------------------------------------------------------------------
# The event files themselves (no emulator needed)
# --------------------------------------------------------------------------------------------


def test_every_event_has_an_expectation():
    expected = [e["event"] for e in expectations()]
    assert len(expected) == len(set(expected)), f"an event is listed twice: {expected}"
    files = event_files()
    assert sorted(expected) == files, (
        f"events without an expectation: {sorted(set(files) - set(expected))}; "
        f"expectations without an event file: {sorted(set(expected) - set(files))}")
    for entry in expectations():
        assert entry["rpc"] in ("result", "error"), entry
        assert isinstance(entry["status"], int), entry
        if "after" in entry:
            assert expected.index(entry["after"]) < expected.index(entry["event"]), entry


def test_events_match_their_generator():
    """events/*.json are what events/generate.py writes: edit the generator, not the JSON."""
    built = event_generator.build()
    assert sorted(built) == event_files()
    for name, event in built.items():
        assert (EVENTS / name).read_text() == event_generator.render(event), (
            f"events/{name} differs from events/generate.py; run python events/generate.py")


@pytest.mark.parametrize("name", event_files())
def test_event_is_a_well_formed_http_event(name):
    """What Lambda would send: a body string, a Host matching the domain, and for 2026-07-28
    the MCP-Protocol-Version / Mcp-Method / Mcp-Name headers that agree with the body."""
    event = json.loads((EVENTS / name).read_text())
    headers = {k.lower(): v for k, v in event["headers"].items()}
    assert isinstance(event["body"], str) and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert headers["host"] == ctx["domainName"], name
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json, text/event-stream"
    assert int(headers["content-length"]) == len(event["body"].encode())
    if event.get("version") == "2.0":
        assert ctx["http"]["method"] == "POST" and event["rawPath"] == "/mcp", name
    else:
        assert event["httpMethod"] == "POST" and event["path"] == "/mcp", name
        for k, v in event["headers"].items():
            assert event["multiValueHeaders"][k] == [v], name
    try:
        body = json.loads(event["body"])
    except ValueError:
        assert "malformed" in name, f"{name}: body is not JSON"
        return
    version = headers["mcp-protocol-version"]
    meta = body.get("params", {}).get("_meta", {})
    if version == "2026-07-28":
        assert meta.get("io.modelcontextprotocol/protocolVersion") == version, name
        assert headers["mcp-method"] == body["method"], name
        if body["method"] == "tools/call":
            assert headers["mcp-name"] == body["params"]["name"], name
    else:
        assert "mcp-method" not in headers and not meta, name


# --------------------------------------------------------------------------------------------
# (a) every event through `cargo lambda invoke --data-file`
# --------------------------------------------------------------------------------------------


def check_event(emu, entry):
    """Sends an event (and its `after` first if needed) and checks it against its entry."""
    if "after" in entry and entry["after"] not in emu.invoked:
        emu.invoke_event(entry["after"])
    status, body, how, headers = emu.invoke_file(EVENTS / entry["event"])
    emu.invoked.add(entry["event"])
    context = f"[{emu.mode}] {entry['event']} ({how}): HTTP {status}: {body[:1500]}"
    assert status == entry["status"], context
    message = parse_body(body)
    assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", context
    assert entry["rpc"] in message, f"expected a JSON-RPC {entry['rpc']}: {context}"
    problems = [p for p in (check(message, *c) for c in entry.get("checks", [])) if p]
    assert not problems, "\n".join(problems) + "\n" + context
    for name, want in entry.get("headers", {}).items():
        assert headers is not None, f"the response headers cannot be read this way: {context}"
        assert headers.get(name) == want, f"header {name}: {headers.get(name)!r}: {context}"


@pytest.mark.parametrize("entry", expectations("insecure-no-auth"),
                         ids=lambda e: e["event"].removesuffix(".json"))
def test_event(emulator, entry):
    check_event(emulator, entry)


# --------------------------------------------------------------------------------------------
# (a') authentication as deployed: credentials required, IAM identities from the events
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", expectations("auth"),
                         ids=lambda e: e["event"].removesuffix(".json"))
def test_event_with_credentials_required(auth_emulator, entry):
    check_event(auth_emulator, entry)


def tool_call_records(emu):
    return [r for r in emu.log_records() if r.get("event") == "tool_call"]


def test_without_an_iam_identity_every_event_is_refused_and_runs_nothing(auth_emulator):
    """Every event of events/ that carries no IAM identity (and no Authorization header): 401,
    `WWW-Authenticate: Bearer resource_metadata="https://<host>/.well-known/..."`, a JSON-RPC
    error -32001 answering the request's id, a `refused` audit record with Lambda's request id,
    and no tool call: no tool_call record, no kernel, and the file the no-credentials event's
    code would write does not exist."""
    emu = auth_emulator
    names = [n for n in event_files() if not iam_arn_of(json.loads((EVENTS / n).read_text()))]
    assert "function-url-no-credentials.json" in names and len(names) >= 10, names
    calls_before = len(tool_call_records(emu))
    refused_before = [r for r in emu.log_records() if r.get("event") == "refused"]
    for name in names:
        event = json.loads((EVENTS / name).read_text())
        status, body, how, headers = emu.invoke_file(EVENTS / name)
        context = f"[{emu.mode}] {name} ({how}): HTTP {status}: {body[:800]}"
        assert status == 401, context
        message = json.loads(body)
        assert message["jsonrpc"] == "2.0" and message["error"]["code"] == -32001, context
        try:
            rpc_id = json.loads(event["body"]).get("id")
        except ValueError:
            rpc_id = None  # the malformed body: no id to answer
        assert message["id"] == rpc_id, context
        host = {k.lower(): v for k, v in event["headers"].items()}["host"]
        if headers is not None:
            assert headers.get("www-authenticate") == (
                f'Bearer resource_metadata="https://{host}/.well-known/oauth-protected-resource/mcp"'
            ), context
        else:
            # Streamed 200s only: a 401 is always read with its headers.
            pytest.fail(f"no headers for a refusal: {context}")
    records = emu.log_records()
    refused = [r for r in records if r.get("event") == "refused"][len(refused_before):]
    # At least one per event: a streamed non-200 is sent twice (see `invoke_file`).
    assert len(refused) >= len(names), refused
    assert all(r.get("request_id") and r.get("principal") is None for r in refused), refused
    assert len({r["request_id"] for r in refused}) == len(refused), "one request id per invocation"
    assert len(tool_call_records(emu)) == calls_before, "a refused request reached a tool"
    ran = [p for p in emu.workdir.rglob("ran-without-credentials.txt")]
    assert not ran, ran


def test_the_function_url_refuses_a_request_without_credentials(auth_emulator):
    """A plain HTTP POST through the emulated Function URL (the streamed adapter in streaming
    mode): 401, the challenge, and the JSON-RPC error with the request's id."""
    import httpx2
    body = {"jsonrpc": "2.0", "id": "no-creds-7", "method": "tools/call",
            "params": {"name": "execute_code", "arguments": {"code": "print(1)"}}}
    resp = httpx2.post(auth_emulator.url, json=body, timeout=120, headers={
        "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"})
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == (
        f'Bearer resource_metadata="https://127.0.0.1:{auth_emulator.port}'
        '/.well-known/oauth-protected-resource/mcp"'), resp.headers
    message = resp.json()
    assert message["id"] == "no-creds-7" and message["error"]["code"] == -32001, message
    assert "no credentials" in message["error"]["message"], message


def test_protected_resource_metadata_is_served(auth_emulator):
    """RFC 9728 document at both well-known paths, without credentials, https on Lambda: the
    MCP endpoint's (which every 401 links) names `<base>/mcp`, the path-less one `<base>`."""
    import httpx2
    base = auth_emulator.url.removesuffix("/mcp")
    public = f"https://127.0.0.1:{auth_emulator.port}"
    for path, resource in [("/.well-known/oauth-protected-resource", public),
                           ("/.well-known/oauth-protected-resource/mcp", public + "/mcp")]:
        resp = httpx2.get(base + path, timeout=120)
        assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text[:500]}"
        doc = resp.json()
        assert doc["resource"] == resource, doc
        assert doc["bearer_methods_supported"] == ["header"], doc
        assert doc["authorization_servers"] == [], doc


def invocation_request_ids(emu):
    """Lambda request ids of the invocations the function logged (lambda_runtime's span)."""
    ids = set()
    text = emu.log_path.read_text(errors="replace")
    ids.update(re.findall(r'"requestId":"([0-9a-f-]{36})"', text))
    return ids


def test_audit_record_carries_the_lambda_request_id(auth_emulator):
    """The `tool_call` record on the function's stdout has the invocation's request id
    (Lambda's, from the Runtime API), not the API Gateway / Function URL one in the event."""
    emu = auth_emulator
    before = len(tool_call_records(emu))
    entry = next(e for e in expectations("auth") if e["event"] == "function-url-iam-alice.json")
    check_event(emu, entry)
    new = tool_call_records(emu)[before:]
    assert len(new) == 1, new
    (record,) = new
    assert record["principal"] == event_generator.IAM_USER_ARN, record
    assert record["tool"] == "execute_code" and record["auth"] == "aws_iam", record
    request_id = record["request_id"]
    assert request_id and request_id != "iam-0001-0000-4000-8000-000000000000", record
    assert request_id in invocation_request_ids(emu), (
        f"{request_id} is not the request id of an invocation the function logged")


# --------------------------------------------------------------------------------------------
# (a'') Lambda tenancy: what the previous principal left, seen from the host
# --------------------------------------------------------------------------------------------

ALICE_ARN = event_generator.IAM_USER_ARN
BOB_ARN = event_generator.IAM_ROLE_ARN
# Alice's kernel leaves a file in its home and in its TMPDIR, and says where, and which process
# it is.
ALICE_CODE = ("import os, tempfile\n"
              "open('alice.txt', 'w').write('alice')\n"
              "t = os.path.join(tempfile.gettempdir(), 'alice-tmp.txt')\n"
              "open(t, 'w').write('alice')\n"
              "print(os.getcwd()); print(t); print(os.getpid())")
# Bob's says where it runs and whether the module planted in its package directory is there.
BOB_CODE = ("import os, importlib.util\n"
            "print(os.getcwd())\n"
            "print(importlib.util.find_spec('jmcp_planted') is not None)\n"
            "print(sorted(os.path.join(d, f) for d, _, fs in os.walk('.') for f in fs))")


def iam_call(emu, arn, code, label, kernel=None):
    """execute_code as ARN through a Function URL event carrying that IAM identity; returns the
    kernel's stdout lines."""
    args = {"code": code}
    if kernel:
        args["kernel"] = kernel
    headers, body = event_generator.tool_call("execute_code", args)
    event = event_generator.v2_event(
        event_generator.FUNCTION_URL_HOST, event_generator.FUNCTION_URL_ID, headers, body,
        f"{label}-{uuid.uuid4()}", iam_arn=arn)
    status, text, how, _ = emu.invoke_payload(event, label)
    context = f"[{emu.mode}] {label} ({how}): HTTP {status}: {text[:1500]}"
    assert status == 200, context
    result = parse_body(text)["result"]
    assert result["structuredContent"]["status"] == "ok", context
    return result["content"][0]["text"].splitlines()


def switch_lines(emu):
    return [r for r in emu.log_records()
            if "lambda single tenancy" in str(r.get("message", ""))]


def wait_gone(pid, seconds=15):
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def test_single_tenancy_removes_what_the_previous_principal_left(auth_emulator):
    """Alice, then bob, in one execution environment (single tenancy, the default). Before bob's
    call: alice's kernel and its spare are stopped; her directory, the file her kernel wrote in
    its TMPDIR, and what a kernel without Landlock could leave elsewhere (planted here from the
    host: a file in the working directory, one in the kernels' runtime root, and bob's future
    directory holding a module in .packages) are gone; bob gets an empty directory of his own;
    the function logs the switch with from, to and kernels_stopped."""
    emu = auth_emulator
    cwd, tmp_file, pid = iam_call(emu, ALICE_ARN, ALICE_CODE, "alice")
    alice_home, tmp_file, pid = Path(cwd), Path(tmp_file), int(pid)
    assert alice_home.parent == emu.workdir, alice_home
    assert alice_home.name == event_generator.principal_dir(ALICE_ARN)
    assert (alice_home / "alice.txt").exists() and tmp_file.exists() and alive(pid)
    runtime_root = tmp_file.parents[2]  # ROOT/tmp/<kernel id>/alice-tmp.txt
    assert (runtime_root / "server.lock").exists(), runtime_root
    # What a kernel could leave where Landlock does not apply (Lambda's kernel is unverified).
    (emu.workdir / "left-by-alice.txt").write_text("alice")
    (runtime_root / "left-by-alice.txt").write_text("alice")
    bob_home = emu.workdir / event_generator.principal_dir(BOB_ARN)
    (bob_home / ".packages").mkdir(parents=True)
    bob_home.chmod(0o700)
    (bob_home / ".packages" / "jmcp_planted.py").write_text("print('planted')\n")
    switches_before = len(switch_lines(emu))

    cwd, planted_found, listing = iam_call(emu, BOB_ARN, BOB_CODE, "bob")
    assert Path(cwd) == bob_home, cwd
    assert planted_found == "False", "bob's kernel can import the module planted for him"
    assert listing == "[]", f"bob's new directory holds files: {listing}"
    assert not alice_home.exists(), sorted(p.name for p in alice_home.rglob("*"))
    assert not (emu.workdir / "left-by-alice.txt").exists()
    assert not tmp_file.exists() and not (runtime_root / "left-by-alice.txt").exists()
    assert (runtime_root / "server.lock").exists(), "the runtime root's lock was removed"
    assert sorted(p.name for p in emu.workdir.iterdir()) == [bob_home.name]
    assert wait_gone(pid), f"alice's kernel still runs: {describe_pid(pid)}"
    # No process of the environment works in alice's directory any more.
    emu.our_pids()
    for other in all_pids():
        try:
            assert not os.readlink(f"/proc/{other}/cwd").startswith(str(alice_home)), other
        except OSError:
            pass
    switches = switch_lines(emu)[switches_before:]
    assert len(switches) == 1, switches
    (line,) = switches
    assert line["from"] == ALICE_ARN and line["to"] == BOB_ARN, line
    assert int(line["kernels_stopped"]) >= 1, line
    assert line["files_removed"] in (True, "true"), line


# --------------------------------------------------------------------------------------------
# (b) the Python MCP SDK against the emulated Function URL
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SDK_MODES)
def test_sdk_tools_and_code(emulator, mode):
    async def body():
        async with connect(emulator, mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"execute_code", "get_kernel_status", "create_notebook"} <= names, names
            r = await execute(client, "print(6*7)")
            assert not r.is_error, describe(r)
            assert stdout_of(r).strip() == "42", describe(r)
            r = await execute(client, "1/0")
            assert r.is_error and r.structured_content["status"] == "error", describe(r)
            assert "ZeroDivisionError" in all_text(r), describe(r)
    run(body)


@pytest.mark.parametrize("mode", SDK_MODES)
def test_sdk_plot(emulator, mode):
    async def body():
        async with connect(emulator, mode) as client:
            r = await execute(client, "import matplotlib.pyplot as plt\n"
                                      "plt.plot([1, 2, 3]); plt.show()")
            assert not r.is_error, describe(r)
            images = [b for b in r.content if isinstance(b, ImageContent)]
            assert images and images[0].mime_type == "image/png", describe(r)
            raw = base64.b64decode(images[0].data, validate=True)
            assert raw.startswith(PNG_SIGNATURE) and len(raw) > 1000, raw[:16]
    run(body)


@pytest.mark.parametrize("mode", SDK_MODES)
def test_sdk_progress_streams(emulator, mode):
    """A cell that prints for ~2 s: progress notifications reach the callback before the
    result. With response streaming they must arrive while the cell runs (the first one well
    before the result); buffered, the whole SSE body arrives at the end, still in order."""
    code = ("import time\n"
            "for i in range(8):\n"
            "    print('tick', i, flush=True)\n"
            "    time.sleep(0.25)\n")

    async def body():
        events = []

        async def on_progress(progress, total, message):
            events.append((time.monotonic(), progress, message))

        async with connect(emulator, mode) as client:
            await client.list_tools()
            start = time.monotonic()
            r = await execute(client, code, progress_callback=on_progress)
            done = time.monotonic()
            assert not r.is_error, describe(r)
            assert stdout_of(r).count("tick") == 8, describe(r)
            await anyio.sleep(0.2)
            before = [e for e in events if e[0] < done]
            assert before, f"no progress notification before the result ({len(events)} total)"
            progresses = [e[1] for e in events]
            assert progresses == sorted(progresses), progresses
            if emulator.mode == "streaming":
                first = before[0][0]
                assert done - first >= 0.8, (
                    f"first progress only {done - first:.2f} s before the result (cell took "
                    f"{done - start:.2f} s): the response was not streamed")
    run(body)


# --------------------------------------------------------------------------------------------
# (c) warm state, (e) what user code sees, smoke script, latency
# --------------------------------------------------------------------------------------------


def test_state_persists_between_warm_invocations(emulator):
    kernel = "warm"

    async def body():
        async with connect(emulator, "2026-07-28") as client:
            r = await execute(client, "x = 1", kernel)
            assert not r.is_error, describe(r)
        async with connect(emulator, "legacy") as client:  # another client, another era
            r = await execute(client, "print(x + 1)", kernel)
            assert not r.is_error, describe(r)
            assert stdout_of(r).strip() == "2", describe(r)
            # Lambda's memory sets the kernel limit (7 under the emulator's 4096 MB): free it.
            r = await client.call_tool("shutdown_kernel", {"kernel": kernel})
            assert not r.is_error, describe(r)
    run(body)


def test_streamed_responses_do_not_wait_for_a_delayed_ack(emulator):
    """lambda_runtime's connection to the Runtime API keeps Nagle's algorithm on, so a streamed
    response's body waited ~40 ms for the Runtime API's delayed ACK of the frame before it. The
    function gives that connection TCP_NODELAY (read back) and logs it; buffered responses are
    one frame and are left alone, so that mode logs nothing about it."""
    async def body():
        async with connect(emulator, "2026-07-28") as client:
            r = await execute(client, "1+1", "default")
            assert not r.is_error, describe(r)
    run(body)
    log = emulator.log_path.read_text(errors="replace")
    if emulator.mode == "streaming":
        assert "Runtime API connection: TCP_NODELAY set (read back)" in log, emulator.log_tail(40)
        assert "Runtime API connection not found" not in log, emulator.log_tail(40)
    else:
        assert "TCP_NODELAY" not in log, emulator.log_tail(40)


def test_user_code_sees_no_lambda_secrets(emulator):
    async def body():
        async with connect(emulator, "2026-07-28") as client:
            r = await execute(client, "import os; print(dict(os.environ))", "env")
            assert not r.is_error, describe(r)
            env_text = stdout_of(r)
            r = await execute(client, (
                "import os\n"
                "ppid = os.getppid()\n"
                "print('PPID', ppid)\n"
                "try:\n"
                "    data = open(f'/proc/{ppid}/environ', 'rb').read()\n"
                "    print('READ', len(data))\n"
                "except OSError as e:\n"
                "    print('DENIED', type(e).__name__, e.errno)\n"), "env")
            assert not r.is_error, describe(r)
            proc_text = stdout_of(r)
            r = await client.call_tool("shutdown_kernel", {"kernel": "env"})
            assert not r.is_error, describe(r)
            return env_text, proc_text

    env_text, proc_text = run(body)
    assert env_text.startswith("{"), env_text[:500]
    for name, value in FAKE_AWS.items():
        assert value not in env_text, f"{name}'s value is visible to user code"
    for name in ["AWS_LAMBDA_RUNTIME_API", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "JMCP_LAMBDA_TEST_MARKER"]:
        assert f"'{name}'" not in env_text, f"{name} is visible to user code"
    assert f"127.0.0.1:{emulator.port}" not in env_text, "the Runtime API address is visible"
    leaked = re.findall(r"'((?:AWS_|_LAMBDA|_X_AMZN|LAMBDA_)[A-Z0-9_]*)'", env_text)
    assert not leaked, f"Lambda variables visible to user code: {leaked}"

    ppid = int(re.search(r"PPID (\d+)", proc_text).group(1))
    # The parent is the function itself (the bootstrap): its exe, and its environment as this
    # test (outside the kernel) reads it, holding the Runtime API address.
    assert os.path.basename(os.readlink(f"/proc/{ppid}/exe")) == FUNCTION, describe_pid(ppid)
    environ = read_proc(ppid, "environ") or b""
    assert b"AWS_LAMBDA_RUNTIME_API=" in environ, "the kernel's parent is not the function"
    assert emulator.marker.encode() in environ
    assert "DENIED" in proc_text and "READ" not in proc_text, (
        f"user code read /proc/{ppid}/environ of the function: {proc_text}")


def test_smoke_script_against_the_emulator(emulator):
    run_ = subprocess.run([sys.executable, str(SMOKE), emulator.url], capture_output=True,
                          text=True, timeout=600)
    out = run_.stdout + run_.stderr
    assert run_.returncode == 0, out
    for step in ["server/discover", "tools/list", "execute_code text", "execute_code plot",
                 "notebook round trip"]:
        assert re.search(rf"^ok\s+{re.escape(step)}\s+[\d.]+ ms", run_.stdout, re.M), out
    report(f"[{emulator.mode}] smoke.py:\n{run_.stdout.strip()}")


def test_smoke_script_fails_clearly(emulator):
    """A wrong path: exit status 1 at the first step, saying what came back."""
    bad = emulator.url.removesuffix("/mcp") + "/not-mcp"
    run_ = subprocess.run([sys.executable, str(SMOKE), bad, "--timeout", "60"],
                          capture_output=True, text=True, timeout=120)
    assert run_.returncode == 1, run_.stdout + run_.stderr
    assert re.search(r"^FAIL\s+server/discover\s+[\d.]+ ms\s+HTTP 404", run_.stdout, re.M), \
        run_.stdout + run_.stderr
    assert "FAILED at server/discover" in run_.stderr


def test_smoke_sigv4_signature_matches_botocore():
    """smoke.py --sigv4 signs like botocore (which AWS's own CLI uses), header for header."""
    auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    sys.path.insert(0, str(SMOKE.parent))
    try:
        import smoke
    finally:
        sys.path.pop(0)
    import datetime
    url = "https://abcdefg.lambda-url.us-east-1.on.aws/mcp"
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'
    now = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.timezone.utc)
    creds = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
    assert smoke.sigv4_target("abcdefg.lambda-url.us-east-1.on.aws") == ("lambda", "us-east-1")
    assert smoke.sigv4_target("h77papi456.execute-api.eu-west-2.amazonaws.com") == \
        ("execute-api", "eu-west-2")
    headers = {"Content-Type": "application/json", "MCP-Protocol-Version": "2026-07-28",
               "Mcp-Method": "tools/list"}
    signed = smoke.sigv4_sign("POST", url, headers, body, access_key=creds[0],
                              secret_key=creds[1], token=creds[2], region="us-east-1",
                              service="lambda", now=now)
    theirs = AWSRequest(method="POST", url=url, data=body, headers={
        k: v for k, v in signed.items() if k not in ("Authorization", "Host")})
    theirs.context["timestamp"] = "20261126T120000Z"
    signer = auth.SigV4Auth(Credentials(*creds), "lambda", "us-east-1")
    canonical = signer.canonical_request(theirs)
    signature = signer.signature(signer.string_to_sign(theirs, canonical), theirs)
    assert signed["Authorization"].endswith(f"Signature={signature}"), (signed, canonical)


def test_warm_execute_latency(emulator):
    """Median of 15 warm execute_code('1+1') round trips through the emulated Function URL
    (2026-07-28, one SDK client, so one invocation per call). Reported, and bounded loosely."""
    async def body():
        async with connect(emulator, "2026-07-28") as client:
            r = await execute(client, "1+1")
            assert not r.is_error, describe(r)
            times = []
            for _ in range(15):
                t = time.perf_counter()
                r = await execute(client, "1+1")
                times.append((time.perf_counter() - t) * 1000)
                assert not r.is_error and "2" in all_text(r), describe(r)
            return times

    times = run(body)
    p50 = statistics.median(times)
    report(f"[{emulator.mode}] warm execute_code('1+1') via the Function URL: p50 {p50:.1f} ms, "
           f"min {min(times):.1f} ms, max {max(times):.1f} ms")
    assert p50 < 2000, times


# --------------------------------------------------------------------------------------------
# (d) a cold start: a new environment, a fresh kernel. Last: it restarts the emulator.
# --------------------------------------------------------------------------------------------


def test_cold_start_gets_a_fresh_kernel(emulator):
    kernel = "cold"

    async def set_state():
        async with connect(emulator, "2026-07-28") as client:
            r = await execute(client, "y = 5", kernel)
            assert not r.is_error, describe(r)
            for _ in range(3):
                await execute(client, "y += 1", kernel)
            r = await client.call_tool("get_kernel_status", {"kernel": kernel})
            assert r.structured_content["execution_count"] >= 4, describe(r)

    run(set_state)
    emulator.restart()
    restarted = time.monotonic()
    # The emulator starts the function on its first invocation; wait for that here so the
    # checks below are about the server, not the emulator's start-up (failures are reported).
    hiccups = emulator.wait_function_ready()
    if hiccups:
        report(f"[{emulator.mode}] emulator start-up failures before the function answered: {hiccups}")

    async def after():
        async with connect(emulator, "2026-07-28") as client:
            # get_kernel_status never starts a kernel: a new environment has none by that name.
            r = await client.call_tool("get_kernel_status", {"kernel": kernel})
            assert not r.is_error, describe(r)
            assert r.structured_content["state"] == "not_started", describe(r)
            t = time.monotonic()
            r = await execute(client, "print(6*7)", kernel)
            first_call = time.monotonic() - t
            assert not r.is_error and stdout_of(r).strip() == "42", describe(r)
            first_result = time.monotonic() - restarted
            r = await client.call_tool("get_kernel_status", {"kernel": kernel})
            assert not r.is_error, describe(r)
            status = r.structured_content
            r = await execute(client, "y", kernel)
            return first_call, first_result, status, r

    first_call, first_result, status, r = run(after)
    elapsed = time.monotonic() - restarted
    assert status["state"] in {"idle", "busy"}, status
    assert status["execution_count"] == 1, f"not a fresh kernel: {status}"
    assert status["uptime_secs"] is not None and status["uptime_secs"] <= elapsed + 1, (
        f"kernel uptime {status['uptime_secs']} s, but the emulator restarted {elapsed:.1f} s ago")
    assert r.is_error and "NameError" in all_text(r), f"state survived a cold start: {describe(r)}"
    report(f"[{emulator.mode}] cold start: function init {emulator.init_ms()} ms (logged); "
           f"first execute_code {first_call * 1000:.0f} ms (discover + init + call: "
           f"{first_result * 1000:.0f} ms from the emulator listening)")


# --------------------------------------------------------------------------------------------
# (f) shared tenancy. Last: it restarts the credentials-required emulator with another setting.
# --------------------------------------------------------------------------------------------


def test_shared_tenancy_keeps_the_previous_principal(auth_emulator):
    """With JUPYTER_MCP_LAMBDA_TENANCY=shared, alice's directory, files and kernel survive bob's
    call, and no switch is logged."""
    emu = auth_emulator
    emu.set_function_env(JUPYTER_MCP_LAMBDA_TENANCY="shared")
    switches_before = len(switch_lines(emu))  # the log goes on across the restart
    try:
        emu.restart(fresh_tmp=True)
        emu.wait_function_ready()
        cwd, tmp_file, pid = iam_call(emu, ALICE_ARN, ALICE_CODE, "alice-shared")
        alice_home, tmp_file, pid = Path(cwd), Path(tmp_file), int(pid)
        cwd, _, _ = iam_call(emu, BOB_ARN, BOB_CODE, "bob-shared")
        assert Path(cwd).name == event_generator.principal_dir(BOB_ARN)
        assert (alice_home / "alice.txt").exists() and tmp_file.exists()
        assert alive(pid), "alice's kernel was stopped under shared tenancy"
        assert not switch_lines(emu)[switches_before:], switch_lines(emu)[switches_before:]
        # Alice's kernel still holds her state.
        (again,) = iam_call(emu, ALICE_ARN, "import os; print(os.getpid())", "alice-again")
        assert int(again) == pid
    finally:
        emu.set_function_env(JUPYTER_MCP_LAMBDA_TENANCY="single")


# --------------------------------------------------------------------------------------------
# Long-running work: an execution outlives its invocation and is polled to the end
# --------------------------------------------------------------------------------------------


def test_a_90_s_cell_is_finished_through_polls_that_keep_an_invocation_open(emulator):
    """The call answers `running` after its wait; each get_execution with a wait holds its
    invocation open while the cell runs (so on Lambda the polls are what move the work), and
    the last one returns the whole result. One mode is enough: the polls take the same path
    streamed or buffered, and each run costs 90 s."""
    if emulator.mode != "buffered":
        pytest.skip("run once, in the buffered mode (the path is the same; 90 s per run)")
    code = ("import time\n"
            "for i in range(90):\n"
            "    print('tick', i, flush=True)\n"
            "    time.sleep(1)\n"
            "finished = 90")

    async def body():
        async with connect(emulator, "2026-07-28") as client:
            first = await client.call_tool("execute_code", {"code": code, "kernel": "long",
                                                            "wait": 5})
            assert first.structured_content["status"] == "running", describe(first)
            execution_id = first.structured_content["execution_id"]
            polls = []
            report = None
            for _ in range(10):
                started = time.monotonic()
                report = await client.call_tool(
                    "get_execution", {"execution_id": execution_id, "wait": 30})
                polls.append(time.monotonic() - started)
                assert not report.is_error, describe(report)
                if report.structured_content["status"] != "running":
                    break
            assert report.structured_content["status"] == "ok", describe(report)
            # Every poll but the last was held open for its whole wait.
            assert all(p >= 25 for p in polls[:-1]), polls
            assert len(polls) <= 4, polls
            printed = "".join(o.get("text", "")
                              for o in report.structured_content["result"]["outputs"])
            assert "tick 0" in printed and "tick 89" in printed, printed[-300:]
            r = await execute(client, "print(finished)", "long")
            assert stdout_of(r).strip() == "90", describe(r)
            await client.call_tool("shutdown_kernel", {"kernel": "long"})
    run(body)


def test_an_unknown_execution_on_lambda_says_it_may_be_elsewhere(emulator):
    async def body():
        async with connect(emulator, "legacy") as client:
            r = await client.call_tool("get_execution", {
                "execution_id": "0b8f9c7e-1111-4222-8333-444455556666", "wait": 0})
            assert r.is_error, describe(r)
            text = all_text(r)
            assert text.startswith("status: elsewhere"), text
            assert "execution environment" in text, text
    run(body)
