#!/usr/bin/env python3
"""Smoke test of a running jupyter-mcp-server endpoint: a deployed Lambda Function URL or API
Gateway stage, the `cargo lambda watch` emulator, or a local server.

    python scripts/smoke.py URL [--header K=V ...] [--timeout SECONDS]

URL is the full MCP endpoint, e.g. https://abcdefg.lambda-url.us-east-1.on.aws/mcp,
https://ID.execute-api.REGION.amazonaws.com/mcp or
http://127.0.0.1:9000/lambda-url/jupyter-mcp-server/mcp. `--header` adds a request header
(an API key, an Authorization header); repeat it for more.

`--sigv4` signs every request with AWS Signature Version 4, as an endpoint with IAM auth
(template.yaml's default, for the Function URL and the HTTP API) requires: credentials from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else from botocore's chain
(profiles, SSO) when botocore is installed; service and region from the host name
(`lambda` for *.lambda-url.REGION.on.aws, `execute-api` for *.execute-api.REGION.amazonaws.com)
unless --service / --region say otherwise.

Steps, in order, one line each with its latency: server/discover (2026-07-28), tools/list,
execute_code of `print(6*7)`, a matplotlib plot (the PNG must decode), and a notebook round
trip (create_notebook with a unique name, then read_notebook). The first failure stops the run
with a message saying what was expected and what came back, and exit status 1 (2 for bad
arguments).

Why plain HTTP from the standard library and not the `mcp` SDK: this runs against a deployed
endpoint from wherever the deploy happens, with nothing but python3 (no venv, no SDK); each
step is exactly one POST, so the latency printed is one invocation's round trip and not the
SDK's handshake; and the 2026-07-28 requests are spelled out (`_meta`, `MCP-Protocol-Version`,
`Mcp-Method`, `Mcp-Name`), so a failure shows the request the server got. One keep-alive
connection is reused, so TLS set-up is paid once, by the first step.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import struct
import sys
import time
import uuid
import zlib
from urllib.parse import parse_qsl, quote, urlsplit

PROTOCOL = "2026-07-28"
CLIENT_INFO = {"name": "jupyter-mcp-smoke", "version": "1"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOT = ("import matplotlib.pyplot as plt\n"
        "plt.plot([1, 4, 9, 16])\nplt.title('smoke')\nplt.show()")


class Failure(Exception):
    pass


# --------------------------------------------------------------------------------------------
# AWS Signature Version 4 (for IAM-authenticated Function URLs and API Gateway routes)
# --------------------------------------------------------------------------------------------


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_sign(method, url, headers, body, *, access_key, secret_key, token=None, region,
               service, now=None):
    """Returns `headers` plus X-Amz-Date, X-Amz-Security-Token (with a session token),
    X-Amz-Content-Sha256 and Authorization. Every header passed in is signed, and Host (from
    the URL) with them."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    parts = urlsplit(url)
    out = dict(headers)
    out["Host"] = parts.netloc
    out["X-Amz-Date"] = amz_date
    if token:
        out["X-Amz-Security-Token"] = token
    payload_hash = _sha256(body)
    out["X-Amz-Content-Sha256"] = payload_hash
    canonical = {}
    for k, v in out.items():
        canonical[k.strip().lower()] = re.sub(r"\s+", " ", str(v).strip())
    signed_headers = ";".join(sorted(canonical))
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                     for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    canonical_request = "\n".join([
        method,
        quote(parts.path or "/", safe="/-_.~"),
        query,
        "".join(f"{k}:{canonical[k]}\n" for k in sorted(canonical)),
        signed_headers,
        payload_hash,
    ])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                _sha256(canonical_request.encode())])
    key = _hmac(("AWS4" + secret_key).encode(), amz_date[:8])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={signed_headers}, Signature={signature}")
    return out


def sigv4_target(host):
    """(service, region) for a Function URL or API Gateway host name, else (None, None)."""
    m = re.match(r"^[^.]+\.lambda-url\.([a-z0-9-]+)\.on\.aws$", host)
    if m:
        return "lambda", m.group(1)
    m = re.match(r"^[^.]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$", host)
    if m:
        return "execute-api", m.group(1)
    return None, None


def aws_credentials():
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret, os.environ.get("AWS_SESSION_TOKEN")
    try:
        import botocore.session
    except ImportError:
        return None
    creds = botocore.session.get_session().get_credentials()
    if creds is None:
        return None
    frozen = creds.get_frozen_credentials()
    return frozen.access_key, frozen.secret_key, frozen.token


class Endpoint:
    def __init__(self, url, headers, timeout, sigv4=None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.sigv4 = sigv4  # None, or the keyword arguments of sigv4_sign
        self.url = url
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = headers
        self.timeout = timeout
        self.conn = None
        self.next_id = 0

    def _connect(self):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(self.netloc, timeout=self.timeout)

    def post(self, body, headers):
        """One POST; reconnects once if a kept-alive connection was closed by the far end."""
        for attempt in (1, 2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request("POST", self.path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, resp.getheader("content-type", ""), data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def request(self, method, params=None):
        """A stateless 2026-07-28 request; returns the JSON-RPC `result` or raises Failure."""
        self.next_id += 1
        params = dict(params or {})
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": PROTOCOL,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        }
        body = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                           "params": params}).encode()
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL,
            "Mcp-Method": method,
        }
        if method == "tools/call":
            headers["Mcp-Name"] = params["name"]
        headers.update(self.headers)
        if self.sigv4:
            headers = sigv4_sign("POST", self.url, headers, body, **self.sigv4)
        status, content_type, data = self.post(body, headers)
        text = data.decode("utf-8", "replace")
        if status != 200:
            raise Failure(f"HTTP {status} ({content_type or 'no content-type'}): {text[:800]}")
        message = parse_reply(text, content_type)
        if message is None:
            raise Failure(f"no JSON-RPC reply in the body ({content_type}): {text[:800]}")
        if "error" in message:
            raise Failure(f"JSON-RPC error: {json.dumps(message['error'])[:800]}")
        if message.get("id") != self.next_id:
            raise Failure(f"reply id {message.get('id')!r}, sent {self.next_id}")
        return message["result"]

    def call_tool(self, name, arguments):
        result = self.request("tools/call", {"name": name, "arguments": arguments})
        if result.get("isError"):
            raise Failure(f"{name} returned isError: {describe(result)}")
        return result


def parse_reply(text, content_type):
    """The JSON-RPC response: the body itself, or the last reply event of an SSE stream."""
    if "text/event-stream" not in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return None
    reply = None
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.split("\n")
                         if line.startswith("data:"))
        if not data:
            continue
        try:
            message = json.loads(data)
        except ValueError:
            continue
        if isinstance(message, dict) and ("result" in message or "error" in message):
            reply = message
    return reply


def describe(result):
    return json.dumps(result)[:800]


def stdout_of(result):
    outputs = (result.get("structuredContent") or {}).get("outputs", [])
    return "".join(o.get("text", "") for o in outputs
                   if o.get("type") == "stream" and o.get("name") == "stdout")


def check_png(raw):
    """Decodes a PNG far enough to trust it: signature, chunk CRCs, IHDR, and IDAT data that
    inflates to exactly the scanlines IHDR promises. Returns (width, height)."""
    if not raw.startswith(PNG_SIGNATURE):
        raise Failure(f"not a PNG (starts with {raw[:8]!r})")
    pos, chunks = len(PNG_SIGNATURE), []
    while pos < len(raw):
        if pos + 12 > len(raw):
            raise Failure("PNG truncated inside a chunk header")
        (length,) = struct.unpack(">I", raw[pos:pos + 4])
        kind = raw[pos + 4:pos + 8]
        data = raw[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", raw[pos + 8 + length:pos + 12 + length])
        if len(data) != length or zlib.crc32(kind + data) != crc:
            raise Failure(f"PNG chunk {kind!r} is corrupt")
        chunks.append((kind, data))
        pos += 12 + length
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise Failure("PNG lacks IHDR first or IEND last")
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color)
    if not (width and height and channels) or interlace:
        raise Failure(f"unexpected PNG header: {width}x{height}, color type {color}, "
                      f"interlace {interlace}")
    pixels = zlib.decompress(b"".join(d for k, d in chunks if k == b"IDAT"))
    row = (width * channels * depth + 7) // 8
    if len(pixels) != height * (row + 1):
        raise Failure(f"PNG image data is {len(pixels)} bytes, expected {height * (row + 1)}")
    return width, height


def step_discover(ep):
    result = ep.request("server/discover")
    versions = result.get("supportedVersions", [])
    if PROTOCOL not in versions:
        raise Failure(f"{PROTOCOL} not in supportedVersions {versions}")
    if not isinstance(result.get("capabilities", {}).get("tools"), dict):
        raise Failure(f"no tools capability: {describe(result)}")
    return f"versions {', '.join(versions)}"


def step_tools(ep):
    names = [t.get("name") for t in ep.request("tools/list").get("tools", [])]
    missing = {"execute_code", "create_notebook", "read_notebook"} - set(names)
    if missing:
        raise Failure(f"tools missing: {sorted(missing)} (listed: {names})")
    return f"{len(names)} tools"


def step_execute(ep):
    result = ep.call_tool("execute_code", {"code": "print(6*7)"})
    status = (result.get("structuredContent") or {}).get("status")
    if status != "ok" or stdout_of(result).strip() != "42":
        raise Failure(f"expected status ok and stdout 42: {describe(result)}")
    return "stdout 42"


def step_plot(ep):
    result = ep.call_tool("execute_code", {"code": PLOT})
    images = [c for c in result.get("content", [])
              if c.get("type") == "image" and c.get("mimeType") == "image/png"]
    if not images:
        raise Failure(f"no image/png content: {describe(result)}")
    try:
        raw = base64.b64decode(images[0]["data"], validate=True)
    except ValueError as e:
        raise Failure(f"image data is not base64: {e}") from None
    width, height = check_png(raw)
    return f"PNG {width}x{height}, {len(raw)} bytes"


def step_notebook(ep):
    path = f"smoke-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.ipynb"
    cells = [{"cell_type": "markdown", "source": "# smoke"},
             {"cell_type": "code", "source": "print(6*7)"}]
    created = ep.call_tool("create_notebook", {"path": path, "cells": cells})
    if (created.get("structuredContent") or {}).get("path") != path:
        raise Failure(f"create_notebook did not report {path}: {describe(created)}")
    read = ep.call_tool("read_notebook", {"path": path})
    got = (read.get("structuredContent") or {}).get("cells", [])
    sources = ["".join(c["source"]) if isinstance(c.get("source"), list) else c.get("source")
               for c in got]
    if [c.get("cell_type") for c in got] != ["markdown", "code"] or \
            sources != [c["source"] for c in cells]:
        raise Failure(f"read_notebook gave other cells than written: {describe(read)}")
    return f"{path} ({len(got)} cells)"


STEPS = [
    ("server/discover", step_discover),
    ("tools/list", step_tools),
    ("execute_code text", step_execute),
    ("execute_code plot", step_plot),
    ("notebook round trip", step_notebook),
]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the MCP endpoint, ending in /mcp")
    parser.add_argument("--header", action="append", default=[], metavar="K=V",
                        help="extra request header (repeatable)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds to wait for each step (default 120)")
    parser.add_argument("--sigv4", action="store_true",
                        help="sign requests with AWS SigV4 (IAM auth on the Function URL or API)")
    parser.add_argument("--region", help="SigV4 region (default: from the host name)")
    parser.add_argument("--service", help="SigV4 service (default: from the host name)")
    args = parser.parse_args(argv)
    headers = {}
    for item in args.header:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--header wants K=V, got {item!r}")
        headers[key.strip()] = value.strip()
    args.headers = headers
    args.sign = None
    if args.sigv4:
        service, region = sigv4_target(urlsplit(args.url).hostname or "")
        service = args.service or service
        region = args.region or region or os.environ.get("AWS_REGION")
        if not service or not region:
            parser.error("--sigv4: cannot tell the service and region from the host; "
                         "pass --service (lambda or execute-api) and --region")
        creds = aws_credentials()
        if creds is None:
            parser.error("--sigv4: no AWS credentials (set AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY, or configure a profile for botocore)")
        args.sign = {"access_key": creds[0], "secret_key": creds[1], "token": creds[2],
                     "region": region, "service": service}
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        ep = Endpoint(args.url, args.headers, args.timeout, args.sign)
    except ValueError as e:
        print(f"smoke: {e}", file=sys.stderr)
        return 2
    signed = f" (SigV4, {args.sign['service']} in {args.sign['region']})" if args.sign else ""
    print(f"smoke: {args.url}{signed}", flush=True)
    total = time.monotonic()
    for name, step in STEPS:
        start = time.monotonic()
        try:
            detail = step(ep)
        except Failure as e:
            ms = (time.monotonic() - start) * 1000
            print(f"FAIL {name:<22} {ms:8.1f} ms  {e}", flush=True)
            print(f"smoke: FAILED at {name}", file=sys.stderr)
            return 1
        except (OSError, http.client.HTTPException) as e:
            ms = (time.monotonic() - start) * 1000
            print(f"FAIL {name:<22} {ms:8.1f} ms  cannot reach {args.url}: "
                  f"{type(e).__name__}: {e}", flush=True)
            print(f"smoke: FAILED at {name}", file=sys.stderr)
            return 1
        ms = (time.monotonic() - start) * 1000
        print(f"ok   {name:<22} {ms:8.1f} ms  {detail}", flush=True)
    print(f"smoke: all {len(STEPS)} steps passed in {(time.monotonic() - total):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
