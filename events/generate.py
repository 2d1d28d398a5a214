#!/usr/bin/env python3
"""Writes the Lambda event fixtures in this folder (events/*.json).

Each fixture is one HTTP request to `/mcp` as Lambda hands it to the function: a Function URL
event (payload format 2.0), or an API Gateway REST (v1) or HTTP API (v2) proxy event. They are
plain JSON objects, so they work unchanged with

    cargo lambda invoke jupyter-mcp-server --data-file events/X.json   (cargo lambda watch running)
    sam local invoke -e events/X.json

Every fixture needs an entry in expect.json (status and JSON-RPC result or error);
tests/clients/test_lambda.py fails on a fixture without one. Edit the table below and run
`python events/generate.py` rather than editing the JSON by hand: the JSON-RPC body is a string
inside the event, and the 2026-07-28 headers (MCP-Protocol-Version, Mcp-Method, Mcp-Name) must
agree with it, which the test also checks.

The Host header of every event must be in JUPYTER_MCP_ALLOWED_HOSTS, or the server answers 403
(DNS-rebinding protection): the test allows exactly the hosts found here.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

MODERN = "2026-07-28"
LEGACY = "2025-11-25"

FUNCTION_URL_ID = "abcdefg"  # the url-id part of a Function URL
FUNCTION_URL_HOST = f"{FUNCTION_URL_ID}.lambda-url.us-east-1.on.aws"
REST_API_ID = "r3stapi123"
REST_API_HOST = f"{REST_API_ID}.execute-api.us-east-1.amazonaws.com"
REST_API_STAGE = "Prod"  # SAM's stage for an implicit REST API
HTTP_API_ID = "h77papi456"
HTTP_API_HOST = f"{HTTP_API_ID}.execute-api.us-east-1.amazonaws.com"

CLIENT_INFO = {"name": "lambda-events", "version": "0.0.0"}
USER_AGENT = "lambda-events/0.0.0"
SOURCE_IP = "203.0.113.10"  # TEST-NET-3: documentation address, never routed
TIME = "26/Nov/2026:12:00:00 +0000"
TIME_EPOCH_MS = 1795694400000


def modern_meta():
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
    }


def modern(method, params=None, rpc_id=1):
    """A 2026-07-28 request: `_meta` in the params and the Mcp-* headers."""
    params = dict(params or {})
    params["_meta"] = modern_meta()
    headers = {"mcp-protocol-version": MODERN, "mcp-method": method}
    if method == "tools/call":
        headers["mcp-name"] = params["name"]
    body = json.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params})
    return headers, body


def legacy(method, params, rpc_id=1):
    body = json.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params})
    return {"mcp-protocol-version": LEGACY}, body


def tool_call(name, arguments):
    return modern("tools/call", {"name": name, "arguments": arguments})


def base_headers(host):
    return {
        "host": host,
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "user-agent": USER_AGENT,
        "x-amzn-trace-id": "Root=1-6745b840-0123456789abcdef01234567",
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }


# Callers of the IAM events: what a Function URL with AuthType AWS_IAM (and API Gateway with IAM
# authorization) puts in the request context after checking the SigV4 signature.
IAM_USER_ARN = "arn:aws:iam::123456789012:user/alice"
IAM_ROLE_ARN = "arn:aws:sts::123456789012:assumed-role/ci/bob"
IAM_HTTP_API_ARN = "arn:aws:sts::123456789012:assumed-role/analyst/carol"


def principal_dir(name):
    """The server's directory name for a principal (src/principal.rs `dir_name`): 16 hex digits
    of the name's SHA-256, `-`, and the name with everything but [A-Za-z0-9._-] as `_`, cut at
    40 characters. The IAM events print their working directory, so a divergence fails them."""
    import hashlib
    import re
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:40]
    return hashlib.sha256(name.encode()).hexdigest()[:16] + "-" + readable


def iam_authorizer(arn):
    return {"iam": {"accessKey": "AKIAEXAMPLEEXAMPLE00", "accountId": "123456789012",
                    "callerId": "AIDAEXAMPLEEXAMPLE001", "cognitoIdentity": None,
                    "principalOrgId": None, "userArn": arn, "userId": "AIDAEXAMPLEEXAMPLE001"}}


def v2_event(host, api_id, mcp_headers, body, request_id, route_key="$default", iam_arn=None):
    """Payload format 2.0: what a Function URL and an HTTP API send."""
    headers = base_headers(host)
    headers.update(mcp_headers)
    headers["content-length"] = str(len(body.encode()))
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": "/mcp",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous" if "lambda-url" in host else "123456789012",
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": api_id,
            "http": {
                "method": "POST",
                "path": "/mcp",
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": USER_AGENT,
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": TIME,
            "timeEpoch": TIME_EPOCH_MS,
        },
        "body": body,
        "isBase64Encoded": False,
    }
    if iam_arn:
        event["requestContext"]["authorizer"] = iam_authorizer(iam_arn)
        event["requestContext"]["accountId"] = "123456789012"
    return event


def v1_event(mcp_headers, body, request_id, iam_arn=None):
    """API Gateway REST API proxy integration (payload format 1.0), stage `Prod`, as a SAM
    `Api` event with `Path: /mcp` sends it. Headers keep the client's case, as REST APIs do."""
    headers = {
        "Host": REST_API_HOST,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "User-Agent": USER_AGENT,
        "X-Amzn-Trace-Id": "Root=1-6745b840-0123456789abcdef01234567",
        "X-Forwarded-For": SOURCE_IP,
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    spelled = {"mcp-protocol-version": "MCP-Protocol-Version", "mcp-method": "Mcp-Method",
               "mcp-name": "Mcp-Name"}
    headers.update({spelled[k]: v for k, v in mcp_headers.items()})
    headers["Content-Length"] = str(len(body.encode()))
    return {
        "resource": "/mcp",
        "path": "/mcp",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": REST_API_ID,
            "domainName": REST_API_HOST,
            "domainPrefix": REST_API_ID,
            "extendedRequestId": "Bo4hXF2xIAMF8Rw=",
            "httpMethod": "POST",
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": SOURCE_IP,
                "user": None,
                "userAgent": USER_AGENT,
                "userArn": iam_arn,
            },
            "path": f"/{REST_API_STAGE}/mcp",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": TIME,
            "requestTimeEpoch": TIME_EPOCH_MS,
            "resourceId": "a1b2c3",
            "resourcePath": "/mcp",
            "stage": REST_API_STAGE,
        },
        "body": body,
        "isBase64Encoded": False,
    }


NOTEBOOK = "events-roundtrip.ipynb"
PLOT = ("import matplotlib.pyplot as plt\n"
        "plt.plot([1, 4, 9, 16])\nplt.title('events')\nplt.show()")

FUNCTION_URL_EVENTS = {
    "function-url-server-discover.json": modern("server/discover"),
    "function-url-initialize.json": legacy("initialize", {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": CLIENT_INFO,
    }),
    "function-url-tools-list.json": modern("tools/list"),
    "function-url-execute-text.json": tool_call("execute_code", {"code": "print(6*7)"}),
    "function-url-execute-plot.json": tool_call("execute_code", {"code": PLOT}),
    "function-url-notebook-create.json": tool_call("create_notebook", {
        "path": NOTEBOOK,
        "overwrite": True,  # so the event can be sent again
        "cells": [
            {"cell_type": "markdown", "source": "# From a Lambda event"},
            {"cell_type": "code", "source": "print(6*7)"},
        ],
    }),
    "function-url-notebook-read.json": tool_call("read_notebook", {"path": NOTEBOOK}),
    # Cut short: not JSON at all. The server must answer 400 with -32700 (parse error).
    "function-url-malformed-json.json": (
        {"mcp-protocol-version": LEGACY},
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {',
    ),
}


def build():
    """Every fixture, by file name, in the order expect.json runs them."""
    events = {}
    for n, (name, (mcp_headers, body)) in enumerate(FUNCTION_URL_EVENTS.items(), start=1):
        events[name] = v2_event(FUNCTION_URL_HOST, FUNCTION_URL_ID, mcp_headers, body,
                                f"fnurl-{n:04d}-0000-4000-8000-000000000000")
    headers, body = modern("tools/list")
    events["apigw-rest-v1-tools-list.json"] = v1_event(
        headers, body, "rest-0001-0000-4000-8000-000000000000")
    events["apigw-http-v2-tools-list.json"] = v2_event(
        HTTP_API_HOST, HTTP_API_ID, headers, body, "http-0001-0000-4000-8000-000000000000",
        route_key="ANY /mcp")  # template.yaml: Path /mcp, Method ANY
    # A Function URL event with no IAM identity and no Authorization header: where credentials
    # are required (always on Lambda, unless JUPYTER_MCP_INSECURE_NO_AUTH) it is refused with 401
    # and runs nothing; the code would leave a file if it ran.
    headers, body = tool_call("execute_code", {
        "code": "open('ran-without-credentials.txt', 'w').write('ran')\nprint('ran')"})
    events["function-url-no-credentials.json"] = v2_event(
        FUNCTION_URL_HOST, FUNCTION_URL_ID, headers, body,
        "nocred-0001-0000-4000-8000-000000000000")
    # IAM callers, last: with the default single tenancy, each call ends the previous caller's
    # tenancy, and the previous caller's directory must be gone by then. Each prints the name of
    # its working directory (its principal's directory).
    cwd = "import os; print(os.path.basename(os.getcwd()))"
    headers, body = tool_call("execute_code", {"code": cwd})
    events["function-url-iam-alice.json"] = v2_event(
        FUNCTION_URL_HOST, FUNCTION_URL_ID, headers, body,
        "iam-0001-0000-4000-8000-000000000000", iam_arn=IAM_USER_ARN)
    # Also whether alice's directory still exists, by its full name: a stat, which the kernel
    # sandbox allows, where listing the parent directory is refused by Landlock.
    code = (f"{cwd}\n"
            f"print(os.path.exists(os.path.join('..', {principal_dir(IAM_USER_ARN)!r})))")
    headers, body = tool_call("execute_code", {"code": code})
    events["apigw-rest-v1-iam-bob.json"] = v1_event(
        headers, body, "iam-0002-0000-4000-8000-000000000000", iam_arn=IAM_ROLE_ARN)
    # The HTTP API of template.yaml (payload 2.0, route `ANY /mcp`, AWS_IAM authorizer).
    headers, body = tool_call("execute_code", {"code": cwd})
    events["apigw-http-v2-iam-carol.json"] = v2_event(
        HTTP_API_HOST, HTTP_API_ID, headers, body, "iam-0003-0000-4000-8000-000000000000",
        route_key="ANY /mcp", iam_arn=IAM_HTTP_API_ARN)
    return events


def render(event):
    return json.dumps(event, indent=2) + "\n"


def main():
    for name, event in build().items():
        (HERE / name).write_text(render(event))
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
