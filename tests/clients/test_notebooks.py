"""The notebook workflow through the official Python MCP SDK, and notebooks written by Jupyter's
own tools (nbformat, nbclient) read, edited, run and re-validated.

Every notebook this server writes must load with `nbformat.read` and pass `nbformat.validate`
(against its own minor version: a 4.2 notebook must stay a valid 4.2 notebook).
"""

import json
from pathlib import Path

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
            r, s = await call(client, "delete_cell", path=name, cell=3)
            assert not r.is_error and s["total_cells"] == 3, r
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
