#!/bin/sh
# AWS_LAMBDA_EXEC_WRAPPER for the managed python3.13 runtime (shipped in the layer as
# /opt/jupyter-mcp/wrapper.sh; see docs/lambda.md).
#
# The runtime's own bootstrap calls us as
#     wrapper.sh /var/lang/bin/python3.13 [flags] /var/runtime/bootstrap.py
# to start its Python runtime client. We drop those arguments and exec the Rust server instead,
# shipped in the function zip as $LAMBDA_TASK_ROOT/bootstrap: it talks to the Runtime API
# ($AWS_LAMBDA_RUNTIME_API) itself, and starts ipykernels with /var/lang/bin/python3.13 and the
# layer's packages (/opt/python). `exec` keeps the PID, so Lambda's SIGTERM reaches the server.
set -eu

server="${LAMBDA_TASK_ROOT:-/var/task}/bootstrap"
if [ ! -x "$server" ]; then
    echo "jupyter-mcp wrapper: $server is missing or not executable; deploy the function zip" \
        "built by \`make build-lambda\` (it holds the Rust binary as \`bootstrap\`)" >&2
    exit 127
fi
exec "$server"
