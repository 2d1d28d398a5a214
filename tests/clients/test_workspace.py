"""The durable workspace (--workspace-bucket) against a real S3 API: the `moto` server on a free
loopback port, reached through the standard AWS_ENDPOINT_URL_S3 with fake credentials. Two
server processes with separate working directories sharing one bucket stand for two Lambda
execution environments. The last tests run the real function under the Lambda emulator
(`cargo lambda watch`, test_lambda.Emulator) with the bucket on moto: a cold start in a fresh
/tmp finds the workspace and the kernel's history there.
"""

import json
import os
import socket
import subprocess
import time

import anyio
import boto3
import pytest
from mcp import Client
from mcp_types import TextContent
from sdk_helpers import run
from conftest import BIN, PYTHON, Server
from test_lambda import Emulator

BUCKET = "jmcp-workspace-test"
CALL_TIMEOUT = 180
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(log=None, **env):
    """A moto server on a free loopback port; the caller stops it by its process. LOG: an open
    file that gets its request log (one line per S3 request), for counting requests."""
    port = free_port()
    proc = subprocess.Popen([str(PYTHON), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=log or subprocess.DEVNULL,
                            env={**os.environ, **env})
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.time() < deadline, "moto did not start"
            time.sleep(0.1)
    s3 = boto3.client("s3", endpoint_url=endpoint, **{
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
        "region_name": "us-east-1"})
    s3.create_bucket(Bucket=BUCKET)
    return proc, endpoint, s3


@pytest.fixture(scope="module")
def moto():
    proc, endpoint, s3 = start_moto()
    yield endpoint, s3
    proc.kill()
    proc.wait()


def env_for(endpoint, **extra):
    env = os.environ.copy()
    env.update(FAKE_AWS)
    env["AWS_ENDPOINT_URL_S3"] = endpoint
    env.update(extra)
    return env


def start(endpoint, bucket=BUCKET, prefix="t/", **extra):
    args = ["--workspace-bucket", bucket, "--workspace-prefix", prefix]
    return Server(extra_args=args, env=env_for(endpoint, **extra))


def text(result):
    return "".join(b.text for b in result.content if isinstance(b, TextContent))


def meta(result, key):
    return (result.meta or {}).get(f"jupyter-mcp-server/{key}")


async def call(server, tool, args):
    async with Client(server.url, mode="legacy", read_timeout_seconds=CALL_TIMEOUT) as c:
        return await c.call_tool(tool, args)


@pytest.fixture(scope="module")
def envs(moto):
    endpoint, _ = moto
    a = start(endpoint, prefix="pair/")
    b = start(endpoint, prefix="pair/")
    yield a, b
    a.stop()
    b.stop()


def test_a_notebook_created_in_one_environment_is_read_and_edited_in_the_other(envs):
    a, b = envs

    async def body():
        r = await call(a, "create_notebook", {"path": "shared.ipynb"})
        assert not r.is_error, text(r)
        r = await call(a, "insert_cell", {"path": "shared.ipynb", "cell_type": "code", "source": "x = 41"})
        assert not r.is_error, text(r)
        r = await call(b, "read_notebook", {"path": "shared.ipynb"})
        assert not r.is_error, text(r)
        assert "x = 41" in json.dumps(r.structured_content), text(r)
        r = await call(b, "edit_cell", {"path": "shared.ipynb", "cell": 0, "source": "x = 42"})
        assert not r.is_error, text(r)
        r = await call(a, "read_notebook", {"path": "shared.ipynb"})
        assert "x = 42" in json.dumps(r.structured_content), text(r)
    run(body)


def test_a_file_written_by_a_cell_in_one_environment_appears_in_the_other(envs):
    a, b = envs

    async def body():
        r = await call(a, "execute_code", {"code": "open('made_by_a.txt','w').write('hello from a')"})
        assert not r.is_error, text(r)
        r = await call(b, "read_file", {"path": "made_by_a.txt"})
        assert not r.is_error, text(r)
        assert "hello from a" in text(r)
        # A deletion in one is mirrored in the other.
        r = await call(a, "execute_code", {"code": "import os; os.remove('made_by_a.txt')"})
        assert not r.is_error, text(r)
        r = await call(b, "read_file", {"path": "made_by_a.txt"})
        assert r.is_error, text(r)
    run(body)


def test_what_an_execution_writes_after_its_call_answered_reaches_the_other(envs):
    """The call answers `running`, so its own write-through runs before the cell writes: the
    execution writes its files (and its history) through itself when it ends."""
    a, b = envs

    async def body():
        code = "import time\ntime.sleep(2)\nopen('late_from_a.txt','w').write('written late')"
        r = await call(a, "execute_code", {"code": code, "kernel": "late", "wait": 0.5})
        assert r.structured_content["status"] == "running", text(r)
        execution_id = r.structured_content["execution_id"]
        r = await call(a, "get_execution", {"execution_id": execution_id, "wait": 30})
        assert r.structured_content["status"] == "ok", text(r)
        r = await call(b, "read_file", {"path": "late_from_a.txt"})
        assert not r.is_error, text(r)
        assert "written late" in text(r)
        # Its cell is in the kernel's history too: b sees the state as lost elsewhere.
        r = await call(b, "get_kernel_status", {"kernel": "late"})
        assert r.structured_content["state_lost"]["cells_lost"] == 1, text(r)
    run(body)


def test_a_concurrent_edit_in_both_environments_keeps_both_versions(envs, moto):
    a, b = envs
    _, s3 = moto

    async def body():
        r = await call(a, "write_file", {"path": "both.txt", "content": "v0"})
        assert not r.is_error, text(r)
        r = await call(b, "read_file", {"path": "both.txt"})
        assert "v0" in text(r)
        # Both change it without seeing the other's change: a cell in `a` waits (for a file
        # the test drops into a's directory) while `b` saves its version; then the cell writes.
        wait_then_write = ("import os, time\nwhile not os.path.exists('go'): time.sleep(0.05)\n"
                           "os.remove('go')\nopen('both.txt','w').write('from a')")
        results = {}

        async def in_a():
            results["a"] = await call(a, "execute_code", {"code": wait_then_write})

        async with anyio.create_task_group() as tg:
            tg.start_soon(in_a)
            r = await call(b, "write_file", {"path": "both.txt", "content": "from b", "overwrite": True})
            assert not r.is_error, text(r)
            with open(os.path.join(a.workdir, "go"), "w") as f:
                f.write("")
        r = results["a"]
        conflict = meta(r, "workspace")
        assert conflict and conflict.get("conflicts"), (text(r), r.meta)
        assert "CONFLICT" in text(r) and "both.txt" in text(r)
    run(body)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="pair/")["Contents"]]
    copies = [k for k in keys if "both.conflict-" in k]
    assert copies, keys
    body_theirs = s3.get_object(Bucket=BUCKET, Key=[k for k in keys if k.endswith("/both.txt")][0])["Body"].read()
    body_ours = s3.get_object(Bucket=BUCKET, Key=copies[0])["Body"].read()
    assert (body_theirs, body_ours) == (b"from b", b"from a")


def test_state_lost_with_the_count_and_restore_kernel_brings_it_back(envs):
    a, b = envs

    async def body():
        r = await call(a, "install_package", {"package": "termcolor==3.3.0", "kernel": "k1"})
        assert not r.is_error, text(r)
        for code in ["import termcolor", "answer = 42", "words = ['a', 'b']"]:
            r = await call(a, "execute_code", {"code": code, "kernel": "k1"})
            assert not r.is_error, text(r)
        # A failing cell is not part of the state.
        r = await call(a, "execute_code", {"code": "1/0", "kernel": "k1"})
        assert r.is_error
        r = await call(b, "get_kernel_status", {"kernel": "k1"})
        lost = r.structured_content["state_lost"]
        assert lost["state_lost"] is True and lost["cells_lost"] == 3, lost
        assert lost["installs_lost"] == 1, lost
        assert "restore_kernel" in text(r)
        r = await call(b, "execute_code", {"code": "print(globals().get('answer'))", "kernel": "k1"})
        assert meta(r, "state_lost")["cells_lost"] == 3, r.meta
        assert "state_lost" in text(r)
        # restore_kernel re-runs the other environment's cells and install here, with progress.
        seen = []

        async def on_progress(progress, total, message):
            seen.append((progress, total, message))
        async with Client(b.url, mode="legacy", read_timeout_seconds=CALL_TIMEOUT) as c:
            r = await c.call_tool("restore_kernel", {"kernel": "k1"}, progress_callback=on_progress)
        assert not r.is_error, text(r)
        out = r.structured_content
        assert (out["cells_run"], out["installs_run"], out["failed"]) == (3, 1, None), out
        assert len(seen) == 4 and seen[-1][1] == 4, seen
        r = await call(b, "execute_code", {"code": "print(answer, words, termcolor.__name__)", "kernel": "k1"})
        assert "42 ['a', 'b'] termcolor" in text(r), text(r)
        # A third environment sees the restored generation, not a lost one to restore twice.
        r = await call(b, "get_kernel_status", {"kernel": "k1"})
        assert "state_lost" not in r.structured_content, r.structured_content
    run(body)


def test_restore_kernel_stops_at_the_first_failing_cell_and_honours_upto(envs):
    a, b = envs
    # The second cell holds only in `a` (its working directory), so its replay in `b` fails.
    cells = ["n = 1", f"assert __import__('os').getcwd() == {a.workdir!r}", "n = 3"]

    async def body():
        for code in cells:
            r = await call(a, "execute_code", {"code": code, "kernel": "k2"})
            assert not r.is_error, text(r)
        r = await call(b, "restore_kernel", {"kernel": "k2", "upto": 1})
        assert r.structured_content["cells_run"] == 1, r.structured_content
        r = await call(b, "restore_kernel", {"kernel": "k2"})
        out = r.structured_content
        assert out["cells_run"] == 1 and out["failed"]["step"] == 2, out
        assert "AssertionError" in out["failed"]["error"], out
        assert "step 2 failed" in text(r)
    run(body)


def test_histories_cached_by_etag_still_see_and_keep_another_environments_records(envs, moto):
    """Each environment keeps the history it last read or wrote: reads are conditional GETs and
    appends write on the cached ETag without reading first. Another environment's records are
    still seen at once, and an append on a stale ETag is refused by S3 and retried, so none is
    lost or written over."""
    a, b = envs
    _, s3 = moto

    async def body():
        async def status_in_b():
            r = await call(b, "get_kernel_status", {"kernel": "k3"})
            return r.structured_content["state_lost"]["cells_lost"]
        r = await call(a, "execute_code", {"code": "h1 = 1", "kernel": "k3"})
        assert not r.is_error, text(r)
        assert await status_in_b() == 1
        r = await call(a, "execute_code", {"code": "h2 = 2", "kernel": "k3"})
        assert not r.is_error, text(r)
        # b read the history before: its conditional GET gets a's new version, not its copy.
        assert await status_in_b() == 2
        assert await status_in_b() == 2
        # b appends on the ETag it read; then a appends on the ETag of its own last write,
        # which b's append made stale: S3 refuses it, a reads again and appends after b.
        r = await call(b, "execute_code", {"code": "h3 = 3", "kernel": "k3"})
        assert not r.is_error, text(r)
        r = await call(a, "execute_code", {"code": "h4 = 4", "kernel": "k3"})
        assert not r.is_error, text(r)
        assert "history" not in text(r), text(r)
    run(body)
    key = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="pair/")["Contents"]
           if o["Key"].endswith("/history/k3.jsonl")]
    assert len(key) == 1, key
    records = [json.loads(line) for line in
               s3.get_object(Bucket=BUCKET, Key=key[0])["Body"].read().decode().splitlines()]
    cells = [(r["generation"], r["code"]) for r in records if r["event"] == "cell"]
    assert [c for _, c in cells] == ["h1 = 1", "h2 = 2", "h3 = 3", "h4 = 4"], records
    gen_a, gen_b = cells[0][0], cells[2][0]
    assert gen_a != gen_b and [g for g, _ in cells] == [gen_a, gen_a, gen_b, gen_a], records


def test_a_list_cache_hides_another_environments_change_no_longer_than_its_bound(moto):
    """--workspace-list-cache-ms: a call within the bound of this environment's last LIST
    reuses it (so it may read a file another environment changed meanwhile in its older
    version); a call that starts the bound after the other environment saved reads the new one."""
    endpoint, _ = moto
    bound = 3.0
    cached = start(endpoint, prefix="listcache/", JUPYTER_MCP_WORKSPACE_LIST_CACHE_MS=str(int(bound * 1000)))
    other = start(endpoint, prefix="listcache/")

    async def body():
        before = time.monotonic()
        r = await call(cached, "write_file", {"path": "f.txt", "content": "v1"})
        assert not r.is_error, text(r)
        r = await call(other, "write_file", {"path": "f.txt", "content": "v2", "overwrite": True})
        assert not r.is_error, text(r)
        saved = time.monotonic()
        r = await call(cached, "read_file", {"path": "f.txt"})
        # The cached LIST was made after `before`: if this read ended within the bound of it,
        # it started within the bound of the LIST, so the LIST was reused (the cache is real).
        if time.monotonic() - before < bound:
            assert "v1" in text(r) and "v2" not in text(r), text(r)
        await anyio.sleep(max(0.0, saved + bound + 0.2 - time.monotonic()))
        r = await call(cached, "read_file", {"path": "f.txt"})
        assert "v2" in text(r), text(r)
    try:
        run(body)
    finally:
        cached.stop()
        other.stop()


def test_a_list_cache_over_a_minute_is_refused(moto):
    endpoint, _ = moto
    env = env_for(endpoint, JUPYTER_MCP_WORKSPACE_LIST_CACHE_MS="60001")
    out = subprocess.run([str(BIN), "--port", "0", "--workspace-bucket", BUCKET], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0, out
    assert "--workspace-list-cache-ms 60001 is over 60000" in out.stderr, out.stderr


def test_an_environment_restarted_restores_the_workspace(moto):
    endpoint, _ = moto

    async def body(s, code):
        return await call(s, "execute_code", {"code": code})
    first = start(endpoint, prefix="restart/")
    try:
        r = run(body, first, "open('kept.txt','w').write('survives')")
        assert not r.is_error, text(r)
    finally:
        first.stop()
    second = start(endpoint, prefix="restart/")
    try:
        r = run(body, second, "print(open('kept.txt').read())")
        assert "survives" in text(r), text(r)
    finally:
        second.stop()


@pytest.mark.parametrize("case", ["bucket_missing", "access_denied", "endpoint_down"])
def test_s3_trouble_is_told_and_the_local_work_is_kept(moto, case):
    endpoint, _ = moto
    strict = None
    if case == "bucket_missing":
        s = start(endpoint, bucket="jmcp-no-such-bucket")
    elif case == "access_denied":
        # A moto that checks IAM after its first request (the bucket's creation): the server's
        # key is unknown to it, so every S3 call is refused.
        strict = start_moto(INITIAL_NO_AUTH_ACTION_COUNT="1")
        s = start(strict[1], AWS_ACCESS_KEY_ID="AKIANOTAKEY00000000", AWS_SECRET_ACCESS_KEY="nope")
    else:
        s = start(f"http://127.0.0.1:{free_port()}")

    async def body():
        r = await call(s, "write_file", {"path": "local.txt", "content": "kept"})
        assert not r.is_error, text(r)
        assert "workspace" in text(r) and "S3" in text(r), text(r)
        r = await call(s, "read_file", {"path": "local.txt"})
        assert "kept" in text(r), text(r)
        r = await call(s, "execute_code", {"code": "print(1 + 1)"})
        assert "2" in text(r), text(r)
    try:
        run(body)
    finally:
        s.stop()
        if strict:
            strict[0].kill()
            strict[0].wait()


# --------------------------------------------------------------------------------------------
# Under the Lambda emulator: cold starts in a fresh /tmp. Last: they restart the emulator.
# --------------------------------------------------------------------------------------------

LAMBDA_PREFIX = "lambda/"


@pytest.fixture(scope="module")
def emulator(moto):
    """`cargo lambda watch` running the function with the workspace bucket on moto (its
    environment as test_lambda gives it, plus the bucket, the prefix and the S3 endpoint)."""
    endpoint, _ = moto
    emu = Emulator("streaming", free_port(), function_env={
        "JUPYTER_MCP_WORKSPACE_BUCKET": BUCKET,
        "JUPYTER_MCP_WORKSPACE_PREFIX": LAMBDA_PREFIX,
        "AWS_ENDPOINT_URL_S3": endpoint,
    })
    with emu.running():
        yield emu
    assert not emu.left, "left running after the emulator stopped:\n" + "\n".join(emu.left)


def cold_start(emulator):
    """Retires the execution environment and starts a new one with an empty /tmp; the first
    invocation after this is a cold start."""
    emulator.restart(fresh_tmp=True)
    assert not emulator.workdir.exists()
    emulator.wait_function_ready()


def local_files(emulator):
    """The files in the function's working directory (every principal's), by name."""
    if not emulator.workdir.exists():
        return set()
    return {p.name for p in emulator.workdir.rglob("*") if p.is_file()}


def with_log(emulator, body, *args):
    try:
        return run(body, *args)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- end of the emulator log ---\n{emulator.log_tail(30)}") from e


def test_lambda_cold_start_restores_the_workspace_and_restore_kernel_the_state(emulator, moto):
    _, s3 = moto
    nb_code = "answer = 6 * 7"
    cell_code = "words = open('data.txt').read().split()"

    async def warm():
        r = await call(emulator, "create_notebook", {"path": "cold.ipynb"})
        assert not r.is_error, text(r)
        r = await call(emulator, "insert_cell", {"path": "cold.ipynb", "cell_type": "code",
                                                 "source": nb_code})
        assert not r.is_error, text(r)
        r = await call(emulator, "write_file", {"path": "data.txt", "content": "alpha beta"})
        assert not r.is_error, text(r)
        r = await call(emulator, "execute_cell", {"path": "cold.ipynb", "cell": 0, "kernel": "k"})
        assert not r.is_error, text(r)
        r = await call(emulator, "execute_code", {"code": cell_code, "kernel": "k"})
        assert not r.is_error, text(r)
        # A failing cell is not part of the state to restore.
        r = await call(emulator, "execute_code", {"code": "1/0", "kernel": "k"})
        assert r.is_error, text(r)
        r = await call(emulator, "execute_code", {"code": "print(answer, words)", "kernel": "k"})
        assert "42 ['alpha', 'beta']" in text(r), text(r)
    with_log(emulator, warm)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=LAMBDA_PREFIX)["Contents"]}
    assert any(k.endswith("/files/cold.ipynb") for k in keys), keys
    assert any(k.endswith("/files/data.txt") for k in keys), keys
    assert any(k.endswith("/history/k.jsonl") for k in keys), keys

    cold_start(emulator)

    async def cold():
        # The first call of the new environment brings the notebook and the file from S3.
        r = await call(emulator, "read_notebook", {"path": "cold.ipynb"})
        assert not r.is_error, text(r)
        assert nb_code in json.dumps(r.structured_content), text(r)
        restored = meta(r, "workspace")
        assert restored and restored["restored"] == 2, (text(r), r.meta)
        assert "brought 2 file(s) of your workspace from S3" in text(r), text(r)
        assert {"cold.ipynb", "data.txt"} <= local_files(emulator)
        r = await call(emulator, "read_file", {"path": "data.txt"})
        assert "alpha beta" in text(r), text(r)
        # The kernel is new here: the call says its state is lost, with the count of cells.
        r = await call(emulator, "execute_code", {"code": "print(globals().get('answer'))",
                                                  "kernel": "k"})
        lost = meta(r, "state_lost")
        # The notebook's cell and the two execute_code cells that ran without error.
        assert lost and lost["cells_lost"] == 3 and lost["installs_lost"] == 0, (text(r), r.meta)
        assert "state_lost" in text(r) and "restore_kernel" in text(r), text(r)
        assert "None" in text(r), text(r)
        r = await call(emulator, "restore_kernel", {"kernel": "k"})
        assert not r.is_error, text(r)
        out = r.structured_content
        assert (out["cells_run"], out["installs_run"], out["failed"]) == (3, 0, None), out
        r = await call(emulator, "execute_code", {"code": "print(answer, words)", "kernel": "k"})
        assert not r.is_error and "42 ['alpha', 'beta']" in text(r), text(r)
        assert meta(r, "state_lost") is None, r.meta
        r = await call(emulator, "shutdown_kernel", {"kernel": "k"})
        assert not r.is_error, text(r)
    with_log(emulator, cold)


def test_lambda_cold_start_with_s3_unreachable_says_so_and_loses_nothing(emulator, moto):
    endpoint, s3 = moto

    def objects():
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=LAMBDA_PREFIX).get("Contents", [])
        return {o["Key"]: o["ETag"] for o in listed}

    async def seed():
        r = await call(emulator, "write_file", {"path": "before.txt", "content": "saved"})
        assert not r.is_error, text(r)
        r = await call(emulator, "execute_code", {"code": "kept = 1", "kernel": "down"})
        assert not r.is_error, text(r)
    with_log(emulator, seed)
    saved = objects()
    assert any(k.endswith("/files/before.txt") for k in saved), saved
    # The next environment cannot reach S3 (nothing listens on the endpoint's port).
    emulator.set_function_env(AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{free_port()}")
    try:
        cold_start(emulator)

        async def down():
            r = await call(emulator, "write_file", {"path": "offline.txt", "content": "local"})
            assert not r.is_error, text(r)
            t = text(r)
            assert "could not be restored from s3://" in t and "cannot reach S3" in t, t
            assert "kept" in t, t
            r = await call(emulator, "read_file", {"path": "offline.txt"})
            assert not r.is_error and "local" in text(r), text(r)
            # Whether the kernel's state lives elsewhere is unknown, and the call says that.
            r = await call(emulator, "execute_code", {"code": "print(1 + 1)", "kernel": "down"})
            assert not r.is_error and "2" in text(r), text(r)
            assert 'history of kernel "down" could not be read' in text(r), text(r)
            r = await call(emulator, "shutdown_kernel", {"kernel": "down"})
            assert not r.is_error, text(r)
        with_log(emulator, down)
        # Nothing in S3 was deleted or overwritten by the environment that could not see it.
        assert objects() == saved
    finally:
        emulator.set_function_env(AWS_ENDPOINT_URL_S3=endpoint)
    cold_start(emulator)

    async def back():
        r = await call(emulator, "read_file", {"path": "before.txt"})
        assert not r.is_error and "saved" in text(r), text(r)
        # The kernel's history is intact: its cell is still there to restore.
        r = await call(emulator, "get_kernel_status", {"kernel": "down"})
        assert r.structured_content["state_lost"]["cells_lost"] == 1, r.structured_content
        r = await call(emulator, "restore_kernel", {"kernel": "down"})
        assert r.structured_content["cells_run"] == 1, r.structured_content
        r = await call(emulator, "execute_code", {"code": "print(kept)", "kernel": "down"})
        assert not r.is_error and "1" in text(r), text(r)
        r = await call(emulator, "shutdown_kernel", {"kernel": "down"})
        assert not r.is_error, text(r)
    with_log(emulator, back)
