// Bench driver for the official TypeScript MCP SDK (@modelcontextprotocol/sdk, pinned in
// package.json): N timed execute_code calls per workload over one Streamable HTTP connection,
// as bench/bench.py's Python clients do, so the TypeScript SDK's share (JSON-RPC, HTTP, Ajv
// validation of every structuredContent against the tool's outputSchema) sits in the same table.
//
// Usage: node bench/ts_client.mjs URL WORKLOADS_JSON N WARMUP
//   WORKLOADS_JSON: {"name": {"code": "...", "text": "substring the text must hold",
//                             "image": true|false, "n": timed calls (default N)}, ...}
// Prints one JSON object on stdout: {ok, protocolVersion, samples_ms: {name: [...]}}; exits 1
// with {ok: false, message} when a call fails or a result does not hold what it should.
// Timing is performance.now() around client.callTool only; checks run after the clock stops.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { performance } from 'node:perf_hooks';

const [url, workloadsJson, nArg, warmupArg] = process.argv.slice(2);
const CALL = { timeout: 120_000 };

function fail(message) {
  process.stdout.write(JSON.stringify({ ok: false, message }) + '\n');
  process.exit(1);
}

function check(name, want, result) {
  if (result.isError || result.structuredContent?.status !== 'ok') {
    fail(`${name}: execute_code failed: ${JSON.stringify(result).slice(0, 1000)}`);
  }
  const text = (result.content ?? []).filter((b) => b.type === 'text').map((b) => b.text).join('\n');
  if (want.text && !text.includes(want.text)) fail(`${name}: text lacks ${want.text}: ${text.slice(0, 300)}`);
  if (want.image && !(result.content ?? []).some((b) => b.type === 'image' && b.mimeType === 'image/png')) {
    fail(`${name}: no image/png block: ${JSON.stringify(result.content).slice(0, 300)}`);
  }
}

try {
  const workloads = JSON.parse(workloadsJson);
  const n = Number(nArg);
  const warmup = Number(warmupArg);
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: 'jupyter-mcp-bench', version: '1.0.0' });
  await client.connect(transport);
  await client.listTools(); // caches the outputSchemas that callTool validates against
  const samples = {};
  for (const [name, want] of Object.entries(workloads)) {
    const call = () => client.callTool({ name: 'execute_code', arguments: { code: want.code } }, undefined, CALL);
    for (let i = 0; i < warmup; i++) check(name, want, await call());
    samples[name] = [];
    for (let i = 0; i < (want.n ?? n); i++) {
      const t = performance.now();
      const result = await call();
      samples[name].push(performance.now() - t);
      check(name, want, result);
    }
  }
  const protocolVersion = transport.protocolVersion ?? null;
  await client.close();
  process.stdout.write(JSON.stringify({ ok: true, protocolVersion, samples_ms: samples }) + '\n');
  process.exit(0);
} catch (e) {
  fail(String(e?.stack ?? e));
}
