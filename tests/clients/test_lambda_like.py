"""The Lambda front door with the function inside the Lambda-like sandbox (`make lambda-like`).

`cargo lambda watch` runs the real binary as in test_lambda.py, but cargo starts it through
tests/lambda-like (cargo's target runner), the same sandbox `make attacks-lambda-like` puts every
server of the Rust attack suite in: read-only root, only /tmp writable, uid 65534, a pid
namespace. The kernel Python is laid out as on Lambda: a bare interpreter (no ipykernel of its
own) at a read-only path, and the packages of a layer (this venv's site-packages) bound
read-only at /opt/python, which the server puts on the kernels' path by default on Lambda.

A few focused checks, one response mode (streaming, the default): the function starts and
answers initialize; execute_code gives text and a plot; a notebook round trip; install_package
installs from an index on loopback (tests/fixtures/local_index.py) and refuses a denied package
and a wheel over the download cap;
kernels see no AWS credentials and cannot read the function's environment; and the function
really ran confined. Skipped, saying why, without bwrap or root.
"""

import base64
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mcp_types import ImageContent

from sdk_helpers import run
from test_lambda import (FAKE_AWS, PNG_SIGNATURE, PYTHON, ROOT, Emulator, all_text,
                         connect, describe, execute, free_port, print_emulator_log_if_failed,
                         read_proc, stdout_of)

sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import local_index  # noqa: E402

sys.path.pop(0)

SANDBOX = ROOT / "tests" / "lambda-like"
SANDBOX_UID = 65534
PROBE = "jmcp-probe"  # served by the loopback index
BIG = "jmcp-big"  # served too, but its wheel is over the function's download cap
DENIED = "jmcp-denied"  # on the function's deny list
CAP_MB = 1

if shutil.which("bwrap") is None:
    pytest.skip("the Lambda-like sandbox needs bwrap (Debian: apt-get install bubblewrap)",
                allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("the Lambda-like sandbox needs root (it hands /tmp directories to uid 65534 "
                "and switches to it)", allow_module_level=True)


def interpreter_and_layer():
    """The venv's base interpreter (no ipykernel of its own) and its site-packages (the layer)."""
    out = subprocess.run(
        [str(PYTHON), "-c", "import sys, sysconfig; print(sys._base_executable); "
                            "print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.split("\n")
    return out[0], out[1]


@pytest.fixture(scope="module")
def index():
    idx = local_index.Index([f"{PROBE}==1.2:0.05", f"{BIG}==1.0:3"])
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def sandboxed(index):
    python, layer = interpreter_and_layer()
    emu = Emulator("streaming", free_port(), function_env={
        "JUPYTER_MCP_PYTHON": python,
        "JUPYTER_MCP_PACKAGE_INDEX_URL": index.url,
        "JUPYTER_MCP_PACKAGE_DENY": DENIED,
        "JUPYTER_MCP_PACKAGE_MAX_DOWNLOAD_MB": str(CAP_MB),
    })
    emu.runner = [SANDBOX, "--own", emu.tmp, "--own", emu.workdir, "--python", python,
                  "--layer", layer, "--"]
    with emu.running():
        yield emu
    assert not emu.left, "left running after the emulator stopped:\n" + "\n".join(emu.left)
    assert emu.seen_functions_stopped and emu.seen_kernels_stopped, (
        "never saw the function or its kernels in /proc: the leftover check found nothing")


@pytest.fixture(autouse=True)
def log_on_failure(request):
    yield
    print_emulator_log_if_failed(request, "sandboxed", lambda emu: "sandboxed")


def proc_status(pid):
    return dict(line.split(":\t", 1) for line in
                (read_proc(pid, "status") or b"").decode().splitlines() if ":\t" in line)


def test_initialize_text_and_plot(sandboxed):
    """`legacy` mode: initialize, then tools; a print and a matplotlib plot."""
    async def body():
        async with connect(sandboxed, "legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"execute_code", "install_package", "create_notebook"} <= names, names
            r = await execute(client, "print(6*7)")
            assert not r.is_error and stdout_of(r).strip() == "42", describe(r)
            r = await execute(client, "import matplotlib.pyplot as plt\n"
                                      "plt.plot([1, 2, 3]); plt.show()")
            assert not r.is_error, describe(r)
            images = [b for b in r.content if isinstance(b, ImageContent)]
            assert images and images[0].mime_type == "image/png", describe(r)
            raw = base64.b64decode(images[0].data, validate=True)
            assert raw.startswith(PNG_SIGNATURE) and len(raw) > 1000, raw[:16]
    run(body)


def test_the_function_runs_confined(sandboxed):
    """The function process runs as uid 65534 in its own mount and pid namespaces; its kernel
    imports ipykernel from the read-only layer at /opt/python and cannot write outside /tmp."""
    async def body():
        async with connect(sandboxed, "2026-07-28") as client:
            r = await execute(client, (
                "import sys, os, ipykernel\n"
                "print('KERNEL', ipykernel.__file__)\n"
                "print('UID', os.getuid())\n"
                "for p in ['/etc/jmcp-probe', '/opt/python/jmcp-probe', '/usr/jmcp-probe']:\n"
                "    try:\n"
                "        open(p, 'w').close(); print('WROTE', p)\n"
                "    except OSError as e:\n"
                "        print('REFUSED', p, e.errno)\n"), "confined")
            assert not r.is_error, describe(r)
            out = stdout_of(r)
            r = await client.call_tool("get_kernel_status", {"kernel": "confined"})
            assert not r.is_error, describe(r)
            status = r.structured_content
            r = await client.call_tool("shutdown_kernel", {"kernel": "confined"})
            assert not r.is_error, describe(r)
            return out, status

    out, status = run(body)
    assert "KERNEL /opt/python/ipykernel/" in out, out
    assert f"UID {SANDBOX_UID}" in out, out
    assert "WROTE" not in out and out.count("REFUSED") == 3, out
    # Defences the sandbox takes away are reported as not applied, not claimed.
    not_applied = status["security"]["not_applied"]
    assert any(n.startswith("unprivileged uid") for n in not_applied), status["security"]
    assert any(n.startswith("cgroup") for n in not_applied), status["security"]
    sandboxed.our_pids()
    assert sandboxed.seen_functions, "the function was not found in /proc"
    own_mnt = os.readlink("/proc/self/ns/mnt")
    for pid in sandboxed.seen_functions:
        st = proc_status(pid)
        if not st:
            continue  # an earlier instance, gone
        assert st["Uid"].split()[:2] == [str(SANDBOX_UID)] * 2, st["Uid"]
        assert st["CapEff"].strip("0\n") == "", st["CapEff"]
        assert len(st["NSpid"].split()) == 2, f"not in a pid namespace: {st['NSpid']}"
        assert os.readlink(f"/proc/{pid}/ns/mnt") != own_mnt, "not in its own mount namespace"


def test_notebook_round_trip(sandboxed):
    path = f"lambda-like-{uuid.uuid4().hex[:8]}.ipynb"

    async def body():
        async with connect(sandboxed, "2026-07-28") as client:
            r = await client.call_tool("create_notebook", {
                "path": path, "cells": [{"cell_type": "code", "source": "print(2 + 3)"}]})
            assert not r.is_error, describe(r)
            r = await client.call_tool("execute_notebook", {"path": path})
            assert not r.is_error, describe(r)
            r = await client.call_tool("read_notebook", {"path": path})
            assert not r.is_error, describe(r)
            return all_text(r)

    text = run(body)
    assert "print(2 + 3)" in text and "5" in text, text
    assert (sandboxed.workdir / path).exists() or any(sandboxed.workdir.rglob(path)), (
        "the notebook is not under the function's working directory in /tmp")


def test_install_from_the_configured_index_and_import(sandboxed):
    async def body():
        async with connect(sandboxed, "2026-07-28") as client:
            r = await client.call_tool("install_package", {"package": PROBE, "kernel": "pkg"})
            assert not r.is_error, describe(r)
            assert r.structured_content["version"] == "1.2", describe(r)
            r = await execute(client, "import jmcp_probe; print(jmcp_probe.VERSION)", "pkg")
            assert not r.is_error and stdout_of(r).strip() == "1.2", describe(r)
            await client.call_tool("shutdown_kernel", {"kernel": "pkg"})
    run(body)


def test_install_refuses_a_denied_package(sandboxed):
    async def body():
        async with connect(sandboxed, "2026-07-28") as client:
            r = await client.call_tool("install_package", {"package": DENIED})
            assert r.is_error, describe(r)
            assert "deny list" in all_text(r), describe(r)
    run(body)


def test_install_refuses_a_wheel_over_the_download_cap(sandboxed):
    async def body():
        async with connect(sandboxed, "2026-07-28") as client:
            r = await client.call_tool("install_package", {"package": BIG})
            assert r.is_error, describe(r)
            assert f"{CAP_MB} MiB cap (--package-max-download-mb)" in all_text(r), describe(r)
    run(body)


def test_kernels_see_no_aws_credentials(sandboxed):
    async def body():
        async with connect(sandboxed, "2026-07-28") as client:
            r = await execute(client, (
                "import os\n"
                "print(sorted(os.environ))\n"
                "print(' '.join(os.environ.values()))\n"
                "try:\n"
                "    open(f'/proc/{os.getppid()}/environ', 'rb').read(); print('READ')\n"
                "except OSError as e:\n"
                "    print('DENIED', e.errno)\n"), "env")
            assert not r.is_error, describe(r)
            out = stdout_of(r)
            await client.call_tool("shutdown_kernel", {"kernel": "env"})
            return out

    out = run(body)
    for name, value in FAKE_AWS.items():
        assert value not in out, f"{name}'s value is visible to user code"
    leaked = re.findall(r"'((?:AWS_|_LAMBDA|_X_AMZN|LAMBDA_)[A-Z0-9_]*)'", out)
    assert not leaked, f"Lambda variables visible to user code: {leaked}"
    assert "DENIED" in out and "READ" not in out, out
    # The credentials were there to leak: the function itself has them.
    environs = [read_proc(p, "environ") or b"" for p in sandboxed.seen_functions]
    assert any(FAKE_AWS["AWS_SECRET_ACCESS_KEY"].encode() in e for e in environs), (
        "the function did not have the fake credentials: the check above proves nothing")
