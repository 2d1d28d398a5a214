//! Load and bad input against one real server (issue 12).
//!
//! Load: 40 concurrent clients x 25 `execute_code` calls on 8 kernel names, both protocol eras
//! mixed; every call must be answered with the value it computed, and no answer may be a 5xx.
//! Latency percentiles are printed, never asserted (timing belongs to `make bench`).
//!
//! Bad input: a few thousand malformed or hostile bodies, generated from a fixed seed so a
//! failure replays. For each kind the server must answer with a 4xx or a JSON-RPC / tool error,
//! never a 5xx or a dropped connection, keep running code, and end with its resident memory
//! within a bound of where it started.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

const CLIENTS: usize = 40;
const CALLS_PER_CLIENT: usize = 25;
const KERNELS: usize = 8;

const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";

fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "load-tests", "version": "0.0.0"},
    })
}

/// One `tools/call` in either era; returns the HTTP status and the body.
async fn call_tool(
    http: &reqwest::Client,
    url: &str,
    modern: bool,
    id: u64,
    name: &str,
    args: Value,
) -> (u16, String) {
    let mut params = json!({"name": name, "arguments": args});
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if modern {
        params["_meta"] = modern_meta();
        req = req
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", name);
    } else {
        req = req.header("mcp-protocol-version", LEGACY);
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let resp = req.body(body.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_clients_on_eight_kernels_all_get_their_own_answers() {
    let server = Server::start_with(&["--max-kernels", &KERNELS.to_string()], &[]);
    let url = server.url.clone();
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            for call in 0..CALLS_PER_CLIENT {
                let kernel = format!("k{}", (client + call) % KERNELS);
                let modern = (client + call) % 2 == 0;
                let expected = client * 1000 + call;
                let code = format!("{client} * 1000 + {call}");
                let t = Instant::now();
                let (status, body) = call_tool(
                    &http,
                    &url,
                    modern,
                    expected as u64,
                    "execute_code",
                    json!({"code": code, "kernel": kernel, "timeout": 300}),
                )
                .await;
                latencies.push(t.elapsed());
                assert_eq!(status, 200, "client {client} call {call}: {body}");
                let reply = parse_body(&body);
                assert_eq!(reply["id"], expected, "answer to another request: {body}");
                let result = &reply["result"];
                assert_eq!(crate::common::status(result), "ok", "{body}");
                assert_eq!(text(result), expected.to_string(), "wrong answer: {body}");
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    let total = started.elapsed();
    all.sort();
    assert_eq!(all.len(), CLIENTS * CALLS_PER_CLIENT);
    println!(
        "load: {} calls from {CLIENTS} clients on {KERNELS} kernels in {:.1} s: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        all.len(),
        total.as_secs_f64(),
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.9).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all[all.len() - 1].as_secs_f64() * 1e3,
    );
    // The kernel limit is full of load kernels: check on one of them.
    let result = server.exec_on("k0", "1+1").await;
    assert_eq!(text(&result), "2");
}

/// A small deterministic generator (xorshift64*), so a failing body can be replayed from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Every tool and the fields of its input schema, read from the golden `tools/list`
/// (tests/fixtures/tools_list.json), so a new tool or field is covered without editing this.
static TOOL_FIELDS: std::sync::LazyLock<Vec<(String, Vec<String>)>> =
    std::sync::LazyLock::new(|| {
        let text = std::fs::read_to_string("tests/fixtures/tools_list.json")
            .expect("the golden tools list is readable");
        let list: Value = serde_json::from_str(&text).expect("the golden tools list is JSON");
        let tools = list["tools"].as_array().expect("a tools array");
        tools
            .iter()
            .map(|tool| {
                let name = tool["name"].as_str().expect("a tool name").to_string();
                let fields = tool["inputSchema"]["properties"]
                    .as_object()
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                (name, fields)
            })
            .collect()
    });

/// Values of the wrong type (or hostile values of the right type) for any field.
fn hostile_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(1e308),
        4 => json!(u64::MAX),
        5 => json!([1, 2, 3]),
        6 => json!({"nested": {"deeper": [1]}}),
        7 => json!("x".repeat(70_000)),
        8 => json!("../../../../etc/passwd"),
        9 => json!("\u{0000}nul"),
        10 => json!("/etc/shadow"),
        _ => json!("ok; rm -rf / $(id) `id` | cat"),
    }
}

/// One hostile body and a label saying what kind it is.
fn hostile_body(rng: &mut Rng) -> (&'static str, Vec<u8>, &'static str) {
    let version = match rng.below(4) {
        0 => "2025-03-26",
        1 => LEGACY,
        2 => MODERN,
        _ => "1999-01-01",
    };
    match rng.below(8) {
        0 => (
            "random bytes",
            {
                let n = 1 + rng.below(2048);
                rng.bytes(n)
            },
            version,
        ),
        1 => {
            let full = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "execute_code", "arguments": {"code": "1+1"}}})
            .to_string();
            let cut = rng.below(full.len());
            ("truncated JSON", full.as_bytes()[..cut].to_vec(), version)
        }
        2 => {
            let depth = 200 + rng.below(5000);
            let mut s = "[".repeat(depth);
            s.push_str(&"]".repeat(depth));
            ("deeply nested JSON", s.into_bytes(), version)
        }
        3 | 4 => {
            let (tool, fields) = &TOOL_FIELDS[rng.below(TOOL_FIELDS.len())];
            let mut args = serde_json::Map::new();
            for field in fields.iter() {
                if rng.below(2) == 0 {
                    args.insert(field.clone(), hostile_value(rng));
                }
            }
            let body = json!({"jsonrpc": "2.0", "id": rng.below(1000), "method": "tools/call",
                "params": {"name": tool, "arguments": args}});
            (
                "wrong types in tool fields",
                body.to_string().into_bytes(),
                version,
            )
        }
        5 => {
            let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "x".repeat(100_000), "arguments": {}}});
            ("huge tool name", body.to_string().into_bytes(), version)
        }
        6 => {
            let n = 33 + rng.below(500);
            let batch: Vec<Value> = (0..n)
                .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "tools/list"}))
                .collect();
            (
                "oversized batch",
                Value::Array(batch).to_string().into_bytes(),
                "2025-03-26",
            )
        }
        _ => {
            let body = json!({"jsonrpc": rng.below(3), "id": {"obj": 1},
                "method": hostile_value(rng), "params": hostile_value(rng)});
            ("malformed envelope", body.to_string().into_bytes(), version)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_bad_bodies_get_clear_errors_and_leave_the_server_serving() {
    const BODIES: usize = 3000;
    const SEED: u64 = 0x5eed_1234_abcd_0001;
    let server = Server::start();
    let first = server.exec("1+1").await;
    assert_eq!(text(&first), "2");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_bytes(server.pid());

    let mut rng = Rng(SEED);
    let bodies: Vec<_> = (0..BODIES).map(|_| hostile_body(&mut rng)).collect();
    let http = reqwest::Client::new();
    let mut kinds: std::collections::BTreeMap<&str, (usize, std::collections::BTreeSet<u16>)> =
        Default::default();
    for chunk in bodies.chunks(16) {
        let sends = chunk.iter().map(|(kind, body, version)| {
            let http = http.clone();
            let url = server.url.clone();
            async move {
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", *version)
                    .body(body.clone())
                    .send()
                    .await;
                (*kind, resp.map(|r| r.status().as_u16()))
            }
        });
        for (kind, status) in futures::future::join_all(sends).await {
            let status = status.unwrap_or_else(|e| panic!("{kind}: connection failed: {e}"));
            assert!(status < 500, "{kind}: HTTP {status}");
            let entry = kinds.entry(kind).or_default();
            entry.0 += 1;
            entry.1.insert(status);
        }
    }
    for (kind, (count, statuses)) in &kinds {
        println!("bad input: {count} x {kind}: HTTP {statuses:?}");
    }
    // The server answers normally afterwards, on the default kernel and a new one.
    let result = server.exec("1+1").await;
    assert_eq!(text(&result), "2", "{result}");
    let result = server.exec_on("after-bad-input", "2+2").await;
    assert_eq!(text(&result), "4", "{result}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = rss_bytes(server.pid());
    let grown = rss_after.saturating_sub(rss_before);
    println!(
        "bad input: server RSS {} -> {} MiB",
        rss_before / (1024 * 1024),
        rss_after / (1024 * 1024)
    );
    assert!(
        grown < 48 * 1024 * 1024,
        "RSS grew by {} MiB",
        grown / (1024 * 1024)
    );
}
