"""Shared fixtures for the client tests: start the real server binary on a free
loopback port with a temporary working directory, and stop it by PID afterwards."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("JUPYTER_MCP_BIN", ROOT / "target" / "debug" / "jupyter-mcp-server"))
PYTHON = Path(os.environ.get("JUPYTER_MCP_TEST_PYTHON", ROOT / ".venv" / "bin" / "python"))
URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)/mcp")


class Server:
    """One running server process; `url` is its MCP endpoint."""

    def __init__(self, extra_args=(), env=None):
        self.workdir = tempfile.mkdtemp(prefix="jmcp-test-")
        args = [str(BIN), "--port", "0", "--host", "127.0.0.1",
                "--working-dir", self.workdir, "--python", str(PYTHON), *extra_args]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env if env is not None else os.environ.copy())
        self.log = []
        found = threading.Event()
        self.url = None

        def pump():
            for line in self.proc.stdout:
                self.log.append(line)
                if self.url is None:
                    m = URL_RE.search(line)
                    if m:
                        self.url = m.group(0)
                        found.set()
        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(60):
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.log))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failed test in
    teardown (test_lambda.py prints the emulator's log then)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
