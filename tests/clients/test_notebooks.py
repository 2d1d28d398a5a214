"""The notebook workflow through the official Python MCP SDK, and notebooks written by Jupyter's
own tools (nbformat, nbclient) read, edited, run and re-validated.

Every notebook this server writes must load with `nbformat.read` and pass `nbformat.validate`
(against its own minor version: a 4.2 notebook must stay a valid 4.2 notebook).
"""

import json
import subprocess
import tarfile
from pathlib import Path

import anyio
import nbformat
import pytest
from mcp import Client
from nbclient import NotebookClient
from sdk_helpers import run

CALL_TIMEOUT = 120
MODES = ["legacy", "2026-07-28"]


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def validate(path):
    """The file as nbformat reads it (no conversion), after validating it."""
    nb = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    return nb


async def call(client, tool, **args):
    result = await client.call_tool(tool, args)
    return result, (result.structured_content or {})


def error_status(result):
    """A failed result's status: the first line of its text (`status: conflict`), since failures
    carry no structuredContent (src/mcp/error.rs)."""
    first = result.content[0].text.splitlines()[0] if result.content else ""
    return first.removeprefix("status: ")


def sources(nb):
    return [c.source for c in nb.cells]


def outputs_text(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


def test_a_timeout_and_a_crash_mid_notebook_keep_what_ran(server, mode):
    """execute_notebook stopped by a timeout, then by the kernel dying (os._exit): the cells
    that ran keep their outputs and execution counts, the cell that was cut keeps what it
    printed, the ones after it are left empty, and the file stays valid."""
    kernel = f"midway-{mode}"

    async def body():
        async with Client(server.url, mode=mode, read_timeout_seconds=CALL_TIMEOUT) as client:
            # Start the kernel first: the per-cell timeout also covers a kernel's start.
            r, _ = await call(client, "execute_code", code="1", kernel=kernel)
            assert not r.is_error, r
            name = f"slow-{mode}.ipynb"
            r, _ = await call(client, "create_notebook", path=name, cells=[
                {"cell_type": "code", "source": "print('kept')"},
                {"cell_type": "code",
                 "source": "import time\nprint('started', flush=True)\ntime.sleep(60)"},
                {"cell_type": "code", "source": "print('never')"}])
            assert not r.is_error, r
            r, s = await call(client, "execute_notebook", path=name, kernel=kernel, timeout=8)
            assert r.is_error and s["status"] == "timeout", r
            assert s["failed_cell"] == 1 and s["not_run"] == [2], s
            nb = validate(Path(server.workdir) / name)
            assert outputs_text(nb.cells[0]) == "kept\n"
            assert nb.cells[0].execution_count is not None
            assert outputs_text(nb.cells[1]).startswith("started\n")
            assert nb.cells[2].outputs == [] and nb.cells[2].execution_count is None

            name = f"crash-{mode}.ipynb"
            r, _ = await call(client, "create_notebook", path=name, cells=[
                {"cell_type": "code", "source": "print('kept')"},
                {"cell_type": "code", "source": "import os\nos._exit(1)"},
                {"cell_type": "code", "source": "print('never')"}])
            assert not r.is_error, r
            r, s = await call(client, "execute_notebook", path=name, kernel=kernel,
                              stop_on_error=False)
            assert r.is_error and s["status"] == "kernel_died", r
            assert s["failed_cell"] == 1 and s["not_run"] == [2], s
            nb = validate(Path(server.workdir) / name)
            assert outputs_text(nb.cells[0]) == "kept\n"
            assert nb.cells[0].execution_count is not None
            assert nb.cells[2].outputs == [] and nb.cells[2].execution_count is None
    run(body)


def test_two_concurrent_editors_lose_nothing(server, mode):
    """Two SDK clients edit one notebook at once: one runs a slow cell and then inserts, the
    other inserts above the running cell meanwhile. Every insert is there, the run's outputs
    land in the cell that ran (found by id, though it moved), and the file is valid."""
    name = f"two-{mode}.ipynb"
    path = Path(server.workdir) / name

    async def body():
        async with Client(server.url, mode=mode, read_timeout_seconds=CALL_TIMEOUT) as a, \
                Client(server.url, mode=mode, read_timeout_seconds=CALL_TIMEOUT) as b:
            r, s = await call(a, "create_notebook", path=name, cells=[
                {"cell_type": "code",
                 "source": "import time\ntime.sleep(2)\nprint('ran')"}])
            assert not r.is_error, r
            slow_id = s["cell_ids"][0]

            async def editor_a():
                r, s = await call(a, "execute_cell", path=name, cell=slow_id,
                                  kernel=f"two-{mode}")
                assert not r.is_error and s["status"] == "ok", r
                for i in range(15):
                    r, _ = await call(a, "insert_cell", path=name, cell_type="code",
                                      source=f"a{i}")
                    assert not r.is_error, r

            async def editor_b():
                for i in range(15):
                    r, _ = await call(b, "insert_cell", path=name, cell_type="markdown",
                                      source=f"b{i}", index=0)
                    assert not r.is_error, r

            async with anyio.create_task_group() as tg:
                tg.start_soon(editor_a)
                tg.start_soon(editor_b)
        nb = validate(path)
        got = sources(nb)
        assert sorted(got[:15] + got[16:]) == sorted(
            [f"a{i}" for i in range(15)] + [f"b{i}" for i in range(15)]), got
        assert [c.source for c in nb.cells if c.source.startswith("b")] == \
            [f"b{i}" for i in reversed(range(15))]
        assert [c.source for c in nb.cells if c.source.startswith("a")] == \
            [f"a{i}" for i in range(15)]
        slow = next(c for c in nb.cells if c.get("id") == slow_id)
        assert outputs_text(slow) == "ran\n" and slow.execution_count is not None
        assert got.index(slow.source) == 15
    run(body)


def test_a_stale_revision_is_refused_by_every_notebook_tool(server, mode):
    """A revision read before a change is refused by every tool that changes a notebook, the
    notebook is left as it was, and execute_code does not run its code."""
    name = f"stale-{mode}.ipynb"
    path = Path(server.workdir) / name
    marker = Path(server.workdir) / f"ran-{mode}"

    async def body():
        async with Client(server.url, mode=mode, read_timeout_seconds=CALL_TIMEOUT) as client:
            r, s = await call(client, "create_notebook", path=name,
                              cells=[{"cell_type": "code", "source": "1"}])
            stale = s["revision"]
            r, s = await call(client, "edit_cell", path=name, cell=0, source="2",
                              revision=stale)
            assert not r.is_error, r
            before = path.read_bytes()
            attempts = [
                ("edit_cell", dict(cell=0, source="3")),
                ("insert_cell", dict(cell_type="code", source="3")),
                ("delete_cell", dict(cell=0)),
                ("move_cell", dict(cell=0, to=0)),
                ("clear_outputs", dict()),
                ("execute_cell", dict(cell=0)),
                ("execute_notebook", dict()),
                ("create_notebook", dict(cells=[], overwrite=True)),
            ]
            for tool, args in attempts:
                r, _ = await call(client, tool, path=name, revision=stale, **args)
                assert r.is_error and error_status(r) == "conflict", (tool, r)
            r, _ = await call(client, "execute_code", notebook=name, revision=stale,
                              code=f"open({str(marker)!r}, 'w').close()")
            assert r.is_error and error_status(r) == "conflict", r
            assert not marker.exists(), "execute_code ran its code despite a stale revision"
            assert path.read_bytes() == before
    run(body)


def test_execute_notebook_reports_progress_per_cell(server, mode):
    """execute_notebook sends progress per cell: progress counts cells, total is the number of
    cells, and the messages name each cell with its status (merged ones keep one line each)."""
    name = f"progress-{mode}.ipynb"

    async def body():
        async with Client(server.url, mode=mode, read_timeout_seconds=CALL_TIMEOUT) as client:
            r, _ = await call(client, "create_notebook", path=name, cells=[
                {"cell_type": "code", "source": f"import time\ntime.sleep(0.5)\n{i}"}
                for i in range(3)])
            assert not r.is_error, r
            seen = []

            async def on_progress(progress, total, message):
                seen.append((progress, total, message))
            result = await client.call_tool("execute_notebook", {"path": name},
                                            progress_callback=on_progress)
            assert not result.is_error, result
            # The SDK runs callbacks as spawned tasks: let the last ones run (as test_sdk.py).
            await anyio.sleep(0.2)
            assert seen, "no progress notification"
            assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen), seen
            assert all(t == 3 for _, t, _ in seen), seen
            lines = "".join(m or "" for _, _, m in seen).splitlines()
            # The last cell's update can lose the race with the result (the forwarder sends
            # from its own task; see the final report): every update that arrives is in order.
            assert lines and lines == ["cell 0: ok", "cell 1: ok", "cell 2: ok"][:len(lines)], seen
            assert seen[-1][0] == len(lines), seen
    run(body)


def test_notebook_workflow(server, mode):
    """Create, insert, edit, run a cell, read it back; run the notebook with a failing cell in
    the middle, with stop_on_error both ways; move, delete, clear; a stale revision refused."""
    name = f"flow-{mode}.ipynb"
    path = Path(server.workdir) / name

    async def body():
        async with Client(server.url, mode=mode, read_timeout_seconds=CALL_TIMEOUT) as client:
            r, s = await call(client, "create_notebook", path=name,
                              cells=[{"cell_type": "markdown", "source": "# Flow"}])
            assert not r.is_error, r
            r, s = await call(client, "insert_cell", path=name, cell_type="code",
                              source="x = 6", revision=s["revision"])
            assert not r.is_error and s["index"] == 1, r
            cell_id = s["id"]
            r, s = await call(client, "edit_cell", path=name, cell=cell_id,
                              source="x = 6\nprint('x is', x)\nx * 7")
            assert not r.is_error, r
            stale = s["revision"]
            r, s = await call(client, "execute_cell", path=name, cell=cell_id)
            assert not r.is_error and s["status"] == "ok", r
            assert s["notebook"]["id"] == cell_id

            r, s = await call(client, "read_notebook", path=name)
            cell = s["cells"][1]
            assert cell["execution_count"] is not None
            assert [o["type"] for o in cell["outputs"]] == ["stream", "execute_result"]
            nb = validate(path)
            outputs = nb.cells[1].outputs
            assert outputs[0].text == "x is 6\n"
            assert outputs[1].data["text/plain"] == "42"

            # The revision read before execute_cell saved outputs is stale now.
            r, s = await call(client, "edit_cell", path=name, cell=1, source="y", revision=stale)
            assert r.is_error and error_status(r) == "conflict", r

            for src in ["raise RuntimeError('middle')", "print('last', x)"]:
                r, _ = await call(client, "insert_cell", path=name, cell_type="code", source=src)
                assert not r.is_error, r
            r, s = await call(client, "execute_notebook", path=name)
            assert r.is_error and s["status"] == "error" and s["failed_cell"] == 2, r
            assert s["not_run"] == [3]
            assert any("middle" in getattr(b, "text", "") for b in r.content)
            nb = validate(path)
            assert nb.cells[3].outputs == []
            assert nb.cells[2].outputs[0].output_type == "error"

            r, s = await call(client, "execute_notebook", path=name, stop_on_error=False)
            assert s["status"] == "error" and s["not_run"] == [], r
            assert [c["status"] for c in s["cells"]] == ["ok", "error", "ok"]
            nb = validate(path)
            assert nb.cells[3].outputs[0].text == "last 6\n"

            r, s = await call(client, "move_cell", path=name, cell=3, to=0)
            assert not r.is_error, r
            assert sources(validate(path)) == [
                "print('last', x)", "# Flow", "x = 6\nprint('x is', x)\nx * 7",
                "raise RuntimeError('middle')"]
            r, s = await call(client, "delete_cell", path=name, cell=3)
            assert not r.is_error and s["total_cells"] == 3, r
            assert sources(validate(path)) == [
                "print('last', x)", "# Flow", "x = 6\nprint('x is', x)\nx * 7"]
            r, s = await call(client, "clear_outputs", path=name)
            assert not r.is_error and s["cleared"] == 2, r
            nb = validate(path)
            assert all(c.get("outputs", []) == [] for c in nb.cells)
    run(body)


def jupyter_notebooks(workdir):
    """Five notebooks written by Jupyter's tools: executed by nbclient (outputs as Jupyter stores
    them: streams, results, an image, an error), then saved by nbformat as 4.5 and as the older
    minor versions 4.0, 4.1, 4.2 and 4.4 (ids dropped, as those versions have none), each
    validated against its own version before the server sees it. Returns {name: minor}."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.metadata["vscode"] = {"interpreter": {"hash": "abc"}}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Report\n\nSome *text*.\n\n![img](attachment:a.png)",
                                      attachments={"a.png": {"image/png": "iVBORw0KGgo="}}),
        nbformat.v4.new_code_cell("import sys\nvalues = [1, 2, 3]\nprint(sum(values))\n"
                                  "print('warn', file=sys.stderr)\nvalues"),
        nbformat.v4.new_code_cell(
            "from IPython.display import display\n"
            "display({'image/png': 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
            "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'text/plain': 'dot'}, raw=True)"),
        nbformat.v4.new_code_cell("1 / 0"),
        nbformat.v4.new_raw_cell("raw text"),
    ]
    nb.cells[1].metadata["tags"] = ["parameters"]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": workdir}}).execute()
    made = {}
    for minor in [5, 4, 2, 1, 0]:
        copy = nbformat.from_dict(json.loads(nbformat.writes(nb)))
        copy.nbformat_minor = minor
        if minor < 5:
            for cell in copy.cells:
                cell.pop("id", None)
            if minor < 2:
                # nbformat 4.0/4.1 have no attachments.
                copy.cells[0].pop("attachments", None)
                copy.cells[0].source = "# Report\n\nSome *text*."
        nbformat.validate(copy, version=4, version_minor=minor)
        name = f"jupyter-4{minor}.ipynb"
        (Path(workdir) / name).write_text(nbformat.writes(copy, version=nbformat.NO_CONVERT))
        made[name] = minor
    return made


def test_notebooks_written_by_jupyter_tools(server):
    """Each is read, edited, run and re-validated against its own version, keeping what the
    server does not know (metadata, attachments, tags)."""
    made = jupyter_notebooks(server.workdir)
    assert len(made) == 5

    async def body():
        async with Client(server.url, mode="legacy", read_timeout_seconds=CALL_TIMEOUT) as client:
            for name, minor in made.items():
                path = Path(server.workdir) / name
                raw = json.loads(path.read_text())
                assert isinstance(raw["cells"][1]["source"], list), "nbformat writes list sources"
                r, s = await call(client, "read_notebook", path=name)
                assert not r.is_error and s["total_cells"] == 5, (name, r)
                assert s["cells"][1]["outputs"][0]["text"] == "6\n"
                assert any(getattr(b, "type", "") == "image" for b in r.content), name
                r, s = await call(client, "insert_cell", path=name, cell_type="code",
                                  source="values.append(4)\nlen(values)", index=2)
                assert not r.is_error, (name, r)
                assert (s["id"] is None) == (minor < 5), (name, s)
                r, s = await call(client, "edit_cell", path=name, cell=0, source="# Edited")
                assert not r.is_error, (name, r)
                r, s = await call(client, "execute_notebook", path=name, stop_on_error=False)
                assert s["status"] == "error" and s["failed_cell"] == 4, (name, r)
                nb = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
                assert (nb.nbformat, nb.nbformat_minor) == (4, minor), name
                nbformat.validate(nb)
                assert nb.cells[0].source == "# Edited"
                assert nb.cells[2].outputs[0].data["text/plain"] == "4"
                assert nb.cells[1].metadata["tags"] == ["parameters"]
                assert nb.metadata["vscode"]["interpreter"]["hash"] == "abc"
                assert "widgets" in nb.metadata
                if minor >= 2:
                    assert "a.png" in nb.cells[0].attachments
                # nbformat's own reader upgrades old minors to 4.5 with ids: that must work too.
                nbformat.validate(nbformat.read(str(path), as_version=4))
    run(body)


ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "notebooks"
# nbformat's own test notebooks, from its pinned sdist on PyPI (`make nbformat-samples`, part
# of `make test`): written by Jupyter tooling over the years, at nbformat 4.0, 4.2, 4.4, 4.5.
NBFORMAT_SDIST = ROOT / "target" / "nbformat-samples" / "nbformat-5.11.1.tar.gz"
NBFORMAT_SAMPLES = ["test4.ipynb", "test4docinfo.ipynb", "test4custom.ipynb",
                    "test4jupyter_metadata_timings.ipynb", "many_tracebacks.ipynb",
                    "test4.5.ipynb"]


def outside_notebooks():
    """{name: bytes} of notebooks this server did not write: nbformat's test corpus from its
    sdist, and two hand-made fixtures in VS Code's and JupyterLab's layouts."""
    if not NBFORMAT_SDIST.exists():
        subprocess.run(["make", "--no-print-directory", "nbformat-samples"], cwd=ROOT,
                       check=True)
    found = {}
    with tarfile.open(NBFORMAT_SDIST) as tar:
        for name in NBFORMAT_SAMPLES:
            found[f"nbformat-{name}"] = tar.extractfile(f"nbformat-5.11.1/tests/{name}").read()
    for f in sorted(FIXTURES.glob("*.ipynb")):
        found[f.name] = f.read_bytes()
    return found


def test_real_notebooks_from_outside(server):
    """Each notebook written elsewhere (nbformat 4.0 to 4.5) is read, gets a cell inserted,
    edited and run, and is then still valid at its own minor version, with its metadata and
    every original cell (sources, outputs, attachments, cell metadata) exactly as they were."""
    found = outside_notebooks()
    assert len(found) >= 8, sorted(found)

    async def body():
        async with Client(server.url, mode="legacy", read_timeout_seconds=CALL_TIMEOUT) as client:
            minors = set()
            for name, raw in found.items():
                path = Path(server.workdir) / "outside" / name
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(raw)
                orig = validate(path)
                minors.add(orig.nbformat_minor)
                rel = f"outside/{name}"
                r, s = await call(client, "read_notebook", path=rel)
                assert not r.is_error, (name, r)
                assert s["total_cells"] == len(orig.cells), name
                end = len(orig.cells)
                r, s = await call(client, "insert_cell", path=rel, cell_type="code",
                                  source="print('added')")
                assert not r.is_error and s["index"] == end, (name, r)
                assert (s["id"] is None) == (orig.nbformat_minor < 5), (name, s)
                r, s = await call(client, "edit_cell", path=rel, cell=end,
                                  source="print('edited', 6 * 7)")
                assert not r.is_error, (name, r)
                r, s = await call(client, "execute_cell", path=rel, cell=end,
                                  kernel="outside")
                assert not r.is_error and s["status"] == "ok", (name, r)
                nb = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
                assert (nb.nbformat, nb.nbformat_minor) == (4, orig.nbformat_minor), name
                nbformat.validate(nb)
                assert nb.metadata == orig.metadata, name
                assert nb.cells[:end] == orig.cells, name
                assert nb.cells[end].source == "print('edited', 6 * 7)"
                assert outputs_text(nb.cells[end]) == "edited 42\n", name
            assert {0, 2, 4, 5} <= minors, minors
    run(body)


def test_resources_listed_and_read_through_the_sdk(server, mode):
    """The working directory's files as resources: listed with MIME type and size, read as text
    or a base64 blob; a file written by write_file shows up."""
    async def body():
        async with Client(server.url, mode=mode, read_timeout_seconds=CALL_TIMEOUT) as client:
            r, s = await call(client, "write_file", path=f"res-{mode}/table.csv",
                              content="a,b\n1,2\n")
            assert not r.is_error, r
            r, s = await call(client, "write_file", path=f"res-{mode}/raw.bin",
                              content="AAEC", encoding="base64")
            assert not r.is_error, r
            listed = await client.list_resources()
            by_name = {res.name: res for res in listed.resources}
            csv = by_name[f"res-{mode}/table.csv"]
            assert (csv.mime_type, csv.size) == ("text/csv", 8)
            read = await client.read_resource(str(csv.uri))
            assert read.contents[0].text == "a,b\n1,2\n"
            blob = await client.read_resource(str(by_name[f"res-{mode}/raw.bin"].uri))
            assert blob.contents[0].blob == "AAEC"
    run(body)
