// The official TypeScript MCP SDK (@modelcontextprotocol/sdk, pinned in package.json) as a
// client of the real server. It validates every structuredContent against the tool's
// outputSchema (with Ajv) and throws when one does not match, which the Python SDK does not.
//
// Usage: node client.mjs SCENARIO (http URL | stdio BIN ARG...)
// Prints one JSON object (what the scenario saw) on stdout; exits 1 with a message on failure.
// Everything the SDK or Ajv prints through console.* is captured and reported as `console`,
// so the pytest driver can assert that no schema warning was printed.
// Driven by tests/clients/test_typescript.py.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const printed = [];
for (const level of ['log', 'warn', 'error', 'info', 'debug']) {
  console[level] = (...args) => printed.push(`${level}: ${args.map(String).join(' ')}`);
}

const [scenario, kind, ...target] = process.argv.slice(2);
const CALL = { timeout: 120_000 }; // the first call also starts a kernel

function fail(message) {
  process.stdout.write(JSON.stringify({ ok: false, message, console: printed }) + '\n');
  process.exit(1);
}

function assert(cond, message) {
  if (!cond) fail(message);
}

function text(result) {
  return (result.content ?? []).filter((b) => b.type === 'text').map((b) => b.text).join('\n');
}

function status(result) {
  return result.structuredContent?.status ?? text(result).split('\n')[0].replace(/^status: /, '');
}

async function connect() {
  const transport =
    kind === 'stdio'
      ? new StdioClientTransport({ command: target[0], args: target.slice(1), stderr: 'ignore' })
      : new StreamableHTTPClientTransport(new URL(target[0]));
  const client = new Client({ name: 'jupyter-mcp-ts-test', version: '1.0.0' });
  await client.connect(transport);
  // listTools caches each tool's outputSchema; callTool validates results against it.
  const { tools } = await client.listTools();
  return { client, tools };
}

// Each tool's success and failure, as in tests/results.rs: [tool, case, args, isError, status].
const CASES = [
  ['execute_code', 'ok', { code: 'x = 41\nx + 1' }, false, 'ok'],
  ['execute_code', 'raises', { code: '1/0' }, true, 'error'],
  ['execute_code', 'times out', { code: 'import time\ntime.sleep(30)', timeout: 0.5 }, true, 'timeout'],
  ['execute_code', 'bad timeout', { code: '1', timeout: -1 }, true, 'invalid_argument'],
  ['execute_code', 'missing code', {}, true, 'invalid_argument'],
  ['get_variables', 'ok', {}, false, ''],
  ['get_variables', 'bad kernel name', { kernel: 'no/such' }, true, 'invalid_argument'],
  ['inspect_variable', 'ok', { name: 'x' }, false, ''],
  ['inspect_variable', 'missing name', { name: 'nope' }, true, ''],
  ['inspect_variable', 'kernel not running', { name: 'x', kernel: 'other' }, true, 'not_found'],
  ['install_package', 'ok', { package: 'termcolor==3.3.0' }, false, ''],
  ['install_package', 'refused', { package: 'git+https://example.com/x' }, true, 'refused'],
  ['get_kernel_status', 'ok', {}, false, ''],
  ['get_kernel_status', 'bad kernel name', { kernel: '' }, true, 'invalid_argument'],
  ['list_kernels', 'ok', {}, false, ''],
  ['interrupt_kernel', 'ok', {}, false, ''],
  ['interrupt_kernel', 'unknown kernel', { kernel: 'ghost' }, true, 'not_found'],
  ['create_notebook', 'ok', { path: 'ts.ipynb', cells: [{ cell_type: 'code', source: '1' }] }, false, ''],
  ['create_notebook', 'exists', { path: 'ts.ipynb' }, true, 'already_exists'],
  ['create_notebook', 'outside', { path: '../ts.ipynb' }, true, 'invalid_argument'],
  ['create_notebook', 'stale revision', { path: 'ts.ipynb', overwrite: true, revision: '0000000000000000' }, true, 'conflict'],
  ['execute_code', 'stale notebook revision', { code: '1', notebook: 'ts.ipynb', revision: '0000000000000000' }, true, 'conflict'],
  ['read_notebook', 'ok', { path: 'ts.ipynb' }, false, ''],
  ['read_notebook', 'missing', { path: 'missing.ipynb' }, true, 'not_found'],
  ['list_notebooks', 'ok', {}, false, ''],
  // ts.ipynb holds one code cell, `1`; the cases below edit and run it.
  ['insert_cell', 'ok', { path: 'ts.ipynb', cell_type: 'code', source: '1/0' }, false, ''],
  ['insert_cell', 'missing notebook', { path: 'missing.ipynb', cell_type: 'code', source: '1' }, true, 'not_found'],
  ['edit_cell', 'ok', { path: 'ts.ipynb', cell: 0, source: 'y = 2\ny' }, false, ''],
  ['edit_cell', 'no such cell', { path: 'ts.ipynb', cell: 99, source: '1' }, true, 'not_found'],
  ['execute_cell', 'ok', { path: 'ts.ipynb', cell: 0 }, false, 'ok'],
  ['execute_cell', 'raises', { path: 'ts.ipynb', cell: 1 }, true, 'error'],
  ['execute_cell', 'no such cell', { path: 'ts.ipynb', cell: 99 }, true, 'not_found'],
  ['execute_notebook', 'ok', { path: 'ts.ipynb', stop: 1 }, false, 'ok'],
  ['execute_notebook', 'a cell raises', { path: 'ts.ipynb' }, true, 'error'],
  ['execute_notebook', 'missing notebook', { path: 'missing.ipynb' }, true, 'not_found'],
  ['read_notebook', 'with outputs', { path: 'ts.ipynb' }, false, ''],
  ['clear_outputs', 'ok', { path: 'ts.ipynb' }, false, ''],
  ['clear_outputs', 'no such cell', { path: 'ts.ipynb', cell: 99 }, true, 'not_found'],
  ['move_cell', 'ok', { path: 'ts.ipynb', cell: 1, to: 0 }, false, ''],
  ['move_cell', 'stale revision', { path: 'ts.ipynb', cell: 1, to: 0, revision: 'stale' }, true, 'conflict'],
  ['delete_cell', 'ok', { path: 'ts.ipynb', cell: 0 }, false, ''],
  ['delete_cell', 'no such cell id', { path: 'ts.ipynb', cell: 'no-such-id' }, true, 'not_found'],
  ['write_file', 'ok', { path: 'ts-notes/a.txt', content: 'hello\n' }, false, ''],
  ['write_file', 'exists', { path: 'ts-notes/a.txt', content: 'again' }, true, 'already_exists'],
  ['write_file', 'outside', { path: '../a.txt', content: 'x' }, true, 'invalid_argument'],
  ['write_file', 'not a notebook', { path: 'ts-notes/bad.ipynb', content: '{}' }, true, 'invalid_argument'],
  ['write_file', 'image', { path: 'ts-notes/dot.png', content: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', encoding: 'base64' }, false, ''],
  ['write_file', 'binary', { path: 'ts-notes/blob.bin', content: 'AAECA/8=', encoding: 'base64' }, false, ''],
  ['write_file', 'empty', { path: 'ts-notes/empty.txt', content: '' }, false, ''],
  ['read_file', 'ok', { path: 'ts-notes/a.txt' }, false, ''],
  ['read_file', 'image', { path: 'ts-notes/dot.png' }, false, ''],
  ['read_file', 'image, max_image_px', { path: 'ts-notes/dot.png', max_image_px: 100 }, false, ''],
  ['read_file', 'binary', { path: 'ts-notes/blob.bin' }, false, ''],
  ['read_file', 'past the end', { path: 'ts-notes/a.txt', offset: 10 }, false, ''],
  ['read_file', 'empty', { path: 'ts-notes/empty.txt' }, false, ''],
  ['read_file', 'a notebook', { path: 'ts.ipynb' }, false, ''],
  ['read_file', 'missing', { path: 'ts-notes/missing.txt' }, true, 'not_found'],
  ['list_files', 'ok', {}, false, ''],
  ['list_files', 'recursive', { recursive: true }, false, ''],
  ['list_files', 'missing directory', { path: 'nope' }, true, 'not_found'],
  ['restart_kernel', 'ok', {}, false, ''],
  ['restore_kernel', 'nothing recorded without a bucket', { kernel: 'restored' }, false, ''],
  ['restore_kernel', 'bad kernel name', { kernel: 'a b' }, true, 'invalid_argument'],
  ['restart_kernel', 'bad kernel name', { kernel: 'a b' }, true, 'invalid_argument'],
  ['shutdown_kernel', 'ok', {}, false, ''],
  ['shutdown_kernel', 'unknown kernel', { kernel: 'ghost' }, true, 'not_found'],
  ['execute_code', 'kernel dies', { code: 'import os\nos._exit(1)', kernel: 'dies' }, true, 'kernel_died'],
];

// A cell that says it started, then runs for 30 s unless interrupted; `finished` tells whether
// it ran to its end.
const LONG_CELL =
  "import sys, time\nfinished = False\nprint('started', flush=True)\nfor _ in range(300):\n    time.sleep(0.1)\nfinished = True";

const scenarios = {
  async tools() {
    const { client, tools } = await connect();
    await client.close();
    return { tools: tools.map((t) => t.name).sort() };
  },

  async calls() {
    const { client, tools } = await connect();
    const seen = [];
    const run = async (cases) => {
      for (const [name, label, args, isError, want] of cases) {
        let result;
        try {
          result = await client.callTool({ name, arguments: args }, undefined, CALL);
        } catch (e) {
          fail(`${name} ${label}: callTool threw: ${e}`);
        }
        assert(!!result.isError === isError, `${name} ${label}: isError ${result.isError}: ${JSON.stringify(result)}`);
        assert(text(result).length > 0, `${name} ${label}: no text content`);
        if (want) assert(status(result) === want, `${name} ${label}: status ${status(result)}, want ${want}`);
        seen.push(`${name}:${isError ? 'error' : 'ok'}`);
      }
    };
    await run(CASES);
    // The execution tools take an id a call gave: a cell still running after its wait.
    await run([['execute_code', 'running', { code: LONG_CELL, kernel: 'exec', wait: 0.5 }, false, 'running']]);
    const listed = await client.callTool({ name: 'list_executions', arguments: {} }, undefined, CALL);
    const id = listed.structuredContent.executions[0].execution_id;
    await run([
      ['get_execution', 'running', { execution_id: id, wait: 0 }, false, 'running'],
      ['list_executions', 'ok', {}, false, ''],
      ['cancel_execution', 'ok', { execution_id: id }, false, 'cancelled'],
      ['get_execution', 'ended', { execution_id: id, wait: 0, all_output: true }, false, 'cancelled'],
      ['get_execution', 'unknown id', { execution_id: 'nope' }, true, 'not_found'],
      ['cancel_execution', 'unknown id', { execution_id: 'nope' }, true, 'not_found'],
    ]);
    await client.close();
    return { seen, tools: tools.map((t) => t.name) };
  },

  async progress() {
    const { client } = await connect();
    const progress = [];
    const result = await client.callTool(
      { name: 'execute_code', arguments: { code: "import time\nfor i in range(4):\n    print('tick', i, flush=True)\n    time.sleep(0.4)", kernel: 'progress' } },
      undefined,
      { ...CALL, onprogress: (p) => progress.push(p) },
    );
    await client.close();
    assert(status(result) === 'ok', `status ${status(result)}`);
    return { progress: progress.length, messages: progress.map((p) => p.message ?? '') };
  },

  async plot() {
    const { client } = await connect();
    const result = await client.callTool(
      { name: 'execute_code', arguments: { code: 'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()', kernel: 'plot' } },
      undefined,
      CALL,
    );
    await client.close();
    const images = result.content.filter((b) => b.type === 'image');
    assert(images.length === 1, `images: ${JSON.stringify(result.content).slice(0, 500)}`);
    const png = Buffer.from(images[0].data, 'base64');
    return { mimeType: images[0].mimeType, pngSignature: png.subarray(0, 8).toString('hex') };
  },

  // Abort a running cell with an AbortSignal once it printed, then see whether the next call on
  // that kernel found it interrupted.
  async abort() {
    const { client } = await connect();
    const kernel = 'abort';
    await client.callTool({ name: 'execute_code', arguments: { code: 'finished = None', kernel } }, undefined, CALL);
    const controller = new AbortController();
    let error = null;
    try {
      await client.callTool(
        { name: 'execute_code', arguments: { code: LONG_CELL, kernel } },
        undefined,
        { ...CALL, signal: controller.signal, onprogress: () => controller.abort('the user gave up') },
      );
    } catch (e) {
      error = String(e);
    }
    return await afterCancel(client, kernel, error);
  },

  // A short client-side timeout (the SDK sends notifications/cancelled when it expires).
  async timeout() {
    const { client } = await connect();
    const kernel = 'client-timeout';
    await client.callTool({ name: 'execute_code', arguments: { code: 'finished = None', kernel } }, undefined, CALL);
    let error = null;
    try {
      await client.callTool({ name: 'execute_code', arguments: { code: LONG_CELL, kernel } }, undefined, { timeout: 2000 });
    } catch (e) {
      error = String(e);
    }
    return await afterCancel(client, kernel, error);
  },
};

async function afterCancel(client, kernel, error) {
  const next = await client.callTool(
    { name: 'execute_code', arguments: { code: 'print(finished)', kernel } },
    undefined,
    CALL,
  );
  await client.close();
  return { error, nextStatus: status(next), nextText: text(next) };
}

const run = scenarios[scenario];
if (!run) fail(`unknown scenario ${scenario}`);
try {
  const seen = await run();
  process.stdout.write(JSON.stringify({ ok: true, ...seen, console: printed }) + '\n');
  process.exit(0);
} catch (e) {
  fail(`${scenario}: ${e?.stack ?? e}`);
}
